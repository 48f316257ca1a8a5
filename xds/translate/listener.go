package translate

import (
	"net/netip"
	"strings"
	"time"

	xdscorev3 "github.com/cncf/xds/go/xds/core/v3"
	xdsmatcherv3 "github.com/cncf/xds/go/xds/type/matcher/v3"
	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	mutationv3 "github.com/envoyproxy/go-control-plane/envoy/config/common/mutation_rules/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	matchingv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/common/matching/v3"
	skipactionv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/common/matcher/action/v3"
	setfilterstatecommonv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/common/set_filter_state/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	setfilterstatev3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/set_filter_state/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	earlymutationv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/http/early_header_mutation/header_mutation/v3"
	networkinputsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/matching/common_inputs/network/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/switchyard/switchyard/internal/bodyfields"
	"github.com/switchyard/switchyard/internal/config"
	"github.com/switchyard/switchyard/internal/contract"
)

// ExtProcMessageTimeout bounds each ext_proc exchange. Envoy's default of
// 200 ms is tight for a buffered multi-megabyte body on a busy machine; past
// the timeout the request fails open to its route's default pool.
const ExtProcMessageTimeout = time.Second

// RequestUploadTimeout bounds how long a client may take to send its
// request (headers and body).
const RequestUploadTimeout = 2 * time.Minute

// bufferedBody is the per-route ext_proc mode of routes whose rules read
// the body.
func bufferedBody() *extprocv3.ExtProcPerRoute {
	mode := processingMode()
	mode.RequestBodyMode = extprocv3.ProcessingMode_BUFFERED
	return &extprocv3.ExtProcPerRoute{Override: &extprocv3.ExtProcPerRoute_Overrides{Overrides: &extprocv3.ExtProcOverrides{
		ProcessingMode: mode,
	}}}
}

// extProcOff turns ext_proc off on a route switchyard has nothing to
// decide for.
func extProcOff() *extprocv3.ExtProcPerRoute {
	return &extprocv3.ExtProcPerRoute{Override: &extprocv3.ExtProcPerRoute_Disabled{Disabled: true}}
}

func processingMode() *extprocv3.ProcessingMode {
	return &extprocv3.ProcessingMode{
		RequestHeaderMode:   extprocv3.ProcessingMode_SEND,
		ResponseHeaderMode:  extprocv3.ProcessingMode_SKIP,
		RequestBodyMode:     extprocv3.ProcessingMode_NONE,
		ResponseBodyMode:    extprocv3.ProcessingMode_NONE,
		RequestTrailerMode:  extprocv3.ProcessingMode_SKIP,
		ResponseTrailerMode: extprocv3.ProcessingMode_SKIP,
	}
}

func listener(cfg *config.Config, l config.Listener) (*listenerv3.Listener, error) {
	ip, err := netip.ParseAddr(l.Address)
	if err != nil {
		return nil, err
	}
	hcm := &hcmv3.HttpConnectionManager{
		StatPrefix: l.Name,
		CodecType:  hcmv3.HttpConnectionManager_AUTO,
		RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{
			RouteConfigName: l.Name,
			ConfigSource:    adsSource(),
		}},
		// An edge proxy: the client's address is the peer, and Envoy
		// sanitises x-envoy-* and x-forwarded-* headers from it.
		UseRemoteAddress: wrapperspb.Bool(true),
		NormalizePath:    wrapperspb.Bool(true),
		// Bounds the upload of a request (not its answer): a client that
		// stalls mid-body is cut off instead of holding a buffer.
		RequestTimeout:   durationpb.New(RequestUploadTimeout),
		MergeSlashes:     true,
		AccessLog:        accessLogs(cfg),
		LocalReplyConfig: bodyTooLarge(cfg.Server.MaxBodyBytes),
		EarlyHeaderMutationExtensions: []*corev3.TypedExtensionConfig{{
			Name:        "switchyard.strip_internal_headers",
			TypedConfig: mustAny(stripInternalHeaders(cfg)),
		}},
		HttpFilters: []*hcmv3.HttpFilter{
			{Name: decodedMarkFilter, ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(decodedMark())}},
			{Name: bodyFieldsFilter, ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(bodyFieldsOff())}, Disabled: true},
			decisionFilter(cfg, l.Name),
			{Name: hintsToMetadataFilter, ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(hintsToMetadata(cfg))}},
			{Name: "envoy.filters.http.router", ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(&routerv3.Router{})}},
		},
	}
	if cfg.HasPipelines() {
		hcm.LocalReplyConfig.Mappers = append(hcm.LocalReplyConfig.Mappers, pipelinesUnavailable())
	}
	if tracingEnvoy(cfg) {
		hcm.Tracing = hcmTracing(cfg.Observe.Tracing)
	}
	chain := &listenerv3.FilterChain{
		Filters: []*listenerv3.Filter{{
			Name:       "envoy.filters.network.http_connection_manager",
			ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(hcm)},
		}},
	}
	if l.TLS != nil {
		chain.TransportSocket = &corev3.TransportSocket{
			Name: "envoy.transport_sockets.tls",
			ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: mustAny(&tlsv3.DownstreamTlsContext{
				CommonTlsContext: &tlsv3.CommonTlsContext{
					TlsCertificates: []*tlsv3.TlsCertificate{{
						CertificateChain: &corev3.DataSource{Specifier: &corev3.DataSource_Filename{Filename: l.TLS.CertFile}},
						PrivateKey:       &corev3.DataSource{Specifier: &corev3.DataSource_Filename{Filename: l.TLS.KeyFile}},
					}},
					AlpnProtocols: []string{"h2", "http/1.1"},
				},
			})},
		}
	}
	return &listenerv3.Listener{
		Name:         l.Name,
		Address:      socketAddress(netip.AddrPortFrom(ip, uint16(l.Port))),
		FilterChains: []*listenerv3.FilterChain{chain},
	}, nil
}

// bodyTooLarge gives Envoy's own 413 (a body over the route's buffer
// limit, refused before switchyard sees the request) the JSON reason
// switchyard's own 413 has.
func bodyTooLarge(maxBody int) *hcmv3.LocalReplyConfig {
	reason, _ := structpb.NewStruct(map[string]any{
		"error":   "body_too_large",
		"message": bodyfields.TooLargeMessage(maxBody),
	})
	return &hcmv3.LocalReplyConfig{Mappers: []*hcmv3.ResponseMapper{{
		Filter: &accesslogv3.AccessLogFilter{FilterSpecifier: &accesslogv3.AccessLogFilter_StatusCodeFilter{StatusCodeFilter: &accesslogv3.StatusCodeFilter{
			Comparison: &accesslogv3.ComparisonFilter{Op: accesslogv3.ComparisonFilter_EQ, Value: &corev3.RuntimeUInt32{DefaultValue: 413, RuntimeKey: "switchyard.body_too_large"}},
		}}},
		BodyFormatOverride: &corev3.SubstitutionFormatString{
			Format:      &corev3.SubstitutionFormatString_JsonFormat{JsonFormat: reason},
			ContentType: "application/json",
		},
	}}}
}

// stripInternalHeaders removes client copies of switchyard's internal
// headers before route matching and before any HTTP filter runs, so they are
// gone even when ext_proc is down and the request fails open. With
// responses.explain, a client's x-switchyard-explain stays: it asks for the
// decision record (the route removes it before the runner).
func stripInternalHeaders(cfg *config.Config) *earlymutationv3.HeaderMutation {
	m := &earlymutationv3.HeaderMutation{}
	for _, prefix := range contract.ReservedHeaderPrefixes {
		keep := ""
		if cfg.Responses.Explain && strings.HasPrefix(contract.HeaderExplain, prefix) {
			keep = strings.TrimPrefix(contract.HeaderExplain, prefix)
		}
		m.Mutations = append(m.Mutations, &mutationv3.HeaderMutation{
			Action: &mutationv3.HeaderMutation_RemoveOnMatch_{RemoveOnMatch: &mutationv3.HeaderMutation_RemoveOnMatch{
				KeyMatcher: reservedMatcher(prefix, keep),
			}},
		})
	}
	return m
}

// decodedMarkFilter marks, in filter state, a request whose headers Envoy
// decoded. A request Envoy's HTTP/1 codec rejects (control characters,
// oversized headers, a malformed request line) never gets the mark.
const (
	decodedMarkFilter = "switchyard.decoded_mark"
	decodedMarkKey    = "switchyard.request_decoded"
)

func decodedMark() *setfilterstatev3.Config {
	return &setfilterstatev3.Config{OnRequestHeaders: []*setfilterstatecommonv3.FilterStateValue{{
		Key:        &setfilterstatecommonv3.FilterStateValue_ObjectKey{ObjectKey: decodedMarkKey},
		FactoryKey: "envoy.string",
		Value: &setfilterstatecommonv3.FilterStateValue_FormatString{FormatString: &corev3.SubstitutionFormatString{
			Format: &corev3.SubstitutionFormatString_TextFormatSource{TextFormatSource: &corev3.DataSource{
				Specifier: &corev3.DataSource_InlineString{InlineString: "1"},
			}},
		}},
	}}}
}

// extProcUnlessUndecoded skips ext_proc on streams without the decoded
// mark. Envoy answers a codec error with a local reply (400, 431, ...) and
// closes the connection at once; an ext_proc filter on that reply would
// hold it for a response-headers exchange that the close cuts off, and the
// client would get no answer at all.
func extProcUnlessUndecoded(filter *extprocv3.ExternalProcessor) *matchingv3.ExtensionWithMatcher {
	decoded := &xdsmatcherv3.Matcher_MatcherList_Predicate{MatchType: &xdsmatcherv3.Matcher_MatcherList_Predicate_SinglePredicate_{
		SinglePredicate: &xdsmatcherv3.Matcher_MatcherList_Predicate_SinglePredicate{
			Input: &xdscorev3.TypedExtensionConfig{
				Name:        "request_decoded",
				TypedConfig: mustAny(&networkinputsv3.FilterStateInput{Key: decodedMarkKey}),
			},
			Matcher: &xdsmatcherv3.Matcher_MatcherList_Predicate_SinglePredicate_ValueMatch{ValueMatch: &xdsmatcherv3.StringMatcher{
				MatchPattern: &xdsmatcherv3.StringMatcher_Exact{Exact: "1"},
			}},
		},
	}}
	return &matchingv3.ExtensionWithMatcher{
		ExtensionConfig: &corev3.TypedExtensionConfig{Name: contract.ExtProcFilterName, TypedConfig: mustAny(filter)},
		XdsMatcher: &xdsmatcherv3.Matcher{MatcherType: &xdsmatcherv3.Matcher_MatcherList_{MatcherList: &xdsmatcherv3.Matcher_MatcherList{
			Matchers: []*xdsmatcherv3.Matcher_MatcherList_FieldMatcher{{
				Predicate: &xdsmatcherv3.Matcher_MatcherList_Predicate{MatchType: &xdsmatcherv3.Matcher_MatcherList_Predicate_NotMatcher{NotMatcher: decoded}},
				OnMatch: &xdsmatcherv3.Matcher_OnMatch{OnMatch: &xdsmatcherv3.Matcher_OnMatch_Action{Action: &xdscorev3.TypedExtensionConfig{
					Name:        "skip",
					TypedConfig: mustAny(&skipactionv3.SkipFilter{}),
				}}},
			}},
		}}},
	}
}

// extProcFilter sends headers only, and only those switchyard reads for
// the listener's routes; routes whose rules read the whole body switch to
// a buffered body in their per-route config. If switchyard is unreachable,
// requests continue to their route's default.
func extProcFilter(cfg *config.Config, listener string) *extprocv3.ExternalProcessor {
	f := &extprocv3.ExternalProcessor{
		GrpcService: &corev3.GrpcService{
			TargetSpecifier: &corev3.GrpcService_EnvoyGrpc_{EnvoyGrpc: &corev3.GrpcService_EnvoyGrpc{ClusterName: ExtProcCluster}},
		},
		FailureModeAllow:  true,
		ProcessingMode:    processingMode(),
		AllowModeOverride: true,
		MessageTimeout:    durationpb.New(ExtProcMessageTimeout),
		// Envoy drops dynamic metadata from the processor unless its
		// namespace is listed here; the runner list lives in envoy.lb, the
		// decision's own keys in switchyard's namespace.
		// The body fields Envoy extracted travel with the request headers.
		MetadataOptions: &extprocv3.MetadataOptions{
			ForwardingNamespaces: &extprocv3.MetadataOptions_MetadataNamespaces{Untyped: []string{contract.BodyNamespace}},
			ReceivingNamespaces:  &extprocv3.MetadataOptions_MetadataNamespaces{Untyped: []string{contract.LBNamespace, contract.MetadataNamespace}},
		},
		RequestAttributes: []string{contract.AttrRouteName},
	}
	if names, ok := cfg.RequestHeadersRead(listener); ok {
		allowed := &matcherv3.ListStringMatcher{}
		for _, n := range names {
			allowed.Patterns = append(allowed.Patterns, &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: n}})
		}
		f.ForwardRules = &extprocv3.HeaderForwardingRules{AllowedHeaders: allowed}
	}
	return f
}
