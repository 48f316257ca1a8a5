package translate

import (
	"slices"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	previoushostsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/retry/host/previous_hosts/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/switchyard/switchyard/internal/config"
	"github.com/switchyard/switchyard/internal/contract"
)

// RouteRetryOn are the failures Envoy retries on another runner of the same
// pool. They all happen before the runner saw the request, so a retry never
// runs an inference twice.
const RouteRetryOn = "connect-failure,refused-stream,reset-before-request"

// routeConfig is the route table of one listener. For each config route, in
// file order, it has one entry per pool the route can use, selected by the
// pool header ext_proc sets, then the route's default entry without the
// header. Only pools the route names are reachable, whatever the header says.
func routeConfig(cfg *config.Config, l config.Listener) *routev3.RouteConfiguration {
	vh := &routev3.VirtualHost{Name: l.Name, Domains: []string{"*"}, RetryPolicy: retryPolicy()}
	for _, r := range cfg.Routes {
		if !slices.Contains(r.Listeners, l.Name) {
			continue
		}
		if r.Pipeline != nil {
			vh.Routes = append(vh.Routes, pipelineRoute(cfg, l, r))
			continue
		}
		for _, target := range r.Targets() {
			m := pathMatch(r.Match)
			m.Headers = []*routev3.HeaderMatcher{{
				Name: contract.HeaderPool,
				HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: &matcherv3.StringMatcher{
					MatchPattern: &matcherv3.StringMatcher_Exact{Exact: target.Name()},
				}},
			}}
			vh.Routes = append(vh.Routes, route(cfg, r.Name+"/"+target.Name(), m, target, r))
		}
		// Named after the config route: ext_proc learns which config route
		// matched from this name (the pool header is never set yet then).
		vh.Routes = append(vh.Routes, route(cfg, r.Name, pathMatch(r.Match), r.DefaultTarget(), r))
	}
	remove := []string{contract.HeaderPool}
	if cfg.Responses.Explain {
		remove = append(remove, contract.HeaderExplain) // the runner need not see it
	}
	return &routev3.RouteConfiguration{
		Name:                     l.Name,
		VirtualHosts:             []*routev3.VirtualHost{vh},
		RequestHeadersToRemove:   remove,
		ValidateClusters:         wrapperspb.Bool(false),
		IgnorePortInHostMatching: true,
	}
}

func route(cfg *config.Config, name string, m *routev3.RouteMatch, target config.Target, r config.Route) *routev3.Route {
	maxBody := cfg.Server.MaxBodyBytes
	action := &routev3.RouteAction{
		ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: ClusterName(target.Name())},
		Timeout:          durationpb.New(r.Timeout.Std()),
	}
	if p, ok := cfg.Pool(target.Pool); ok && p.LoadBalancer.HashesOnHint() {
		// Envoy's consistent hashing keys on the client's hint header.
		for _, h := range cfg.Hints.RequestHeaders {
			action.HashPolicy = append(action.HashPolicy, &routev3.RouteAction_HashPolicy{
				PolicySpecifier: &routev3.RouteAction_HashPolicy_Header_{Header: &routev3.RouteAction_HashPolicy_Header{HeaderName: h}},
			})
		}
	}
	if len(target.Fallback) > 0 {
		action.RetryPolicy = fallbackRetryPolicy(FallbackAttempts(target) - 1)
	}
	out := &routev3.Route{Name: name, Match: m, Action: &routev3.Route_Route{Route: action}}
	withDecisionHeaders(cfg, out)
	out.TypedPerFilterConfig = map[string]*anypb.Any{}
	switch {
	case !cfg.Decides(&r):
		// Nothing to decide: Envoy routes to the one pool by itself, with
		// no exchange at all.
		out.TypedPerFilterConfig[contract.ExtProcFilterName] = mustAny(extProcOff())
	case r.BodyPath() == config.BodyMetadata && cfg.Server.EdgeModule == "":
		// Envoy extracts the fields the rules read and ext_proc gets them
		// with the headers; the body goes to switchyard only when Envoy
		// cannot extract them (switchyard then asks for it). The module
		// reads the fields from the body itself: cheaper than Envoy's
		// json_to_metadata, which parses the whole body.
		out.TypedPerFilterConfig[bodyFieldsFilter] = bodyFieldsRoute(r)
	case r.BodyPath() == config.BodyBuffered:
		// Rules read the whole body: Envoy buffers it and sends it to
		// ext_proc. Set per route, before the request starts.
		out.TypedPerFilterConfig[contract.ExtProcFilterName] = mustAny(bufferedBody())
	}
	if len(out.TypedPerFilterConfig) == 0 {
		out.TypedPerFilterConfig = nil
	}
	if r.NeedsBody() {
		// Envoy holds the body (up to max_body_bytes, 413 beyond) until
		// the decision is made.
		out.RequestBodyBufferLimit = wrapperspb.UInt64(uint64(maxBody))
	}
	// A retry re-sends the body from Envoy's buffer; without a buffer as
	// large as the body allows, it could not.
	if len(target.Fallback) > 0 {
		out.RequestBodyBufferLimit = wrapperspb.UInt64(uint64(maxBody))
	}
	return out
}

// FallbackRetryOn are the failures after which a request with fallback
// pools is sent, body intact, to the next pool: the runner was unreachable,
// reset the stream, or answered 503 (overloaded or unavailable).
const FallbackRetryOn = "connect-failure,refused-stream,reset,retriable-status-codes"

// fallbackRetryPolicy walks the target's composite cluster: attempt n
// goes to its entry n.
func fallbackRetryPolicy(retries int) *routev3.RetryPolicy {
	return &routev3.RetryPolicy{
		RetryOn:              FallbackRetryOn,
		RetriableStatusCodes: []uint32{503},
		NumRetries:           wrapperspb.UInt32(uint32(retries)),
		RetryHostPredicate: []*routev3.RetryPolicy_RetryHostPredicate{{
			Name:       "envoy.retry_host_predicates.previous_hosts",
			ConfigType: &routev3.RetryPolicy_RetryHostPredicate_TypedConfig{TypedConfig: mustAny(&previoushostsv3.PreviousHostsPredicate{})},
		}},
		HostSelectionRetryMaxAttempts: 3,
	}
}

// retryPolicy retries on another runner of the same pool.
func retryPolicy() *routev3.RetryPolicy {
	return &routev3.RetryPolicy{
		RetryOn:    RouteRetryOn,
		NumRetries: wrapperspb.UInt32(contract.RouteRetries),
		RetryHostPredicate: []*routev3.RetryPolicy_RetryHostPredicate{{
			Name:       "envoy.retry_host_predicates.previous_hosts",
			ConfigType: &routev3.RetryPolicy_RetryHostPredicate_TypedConfig{TypedConfig: mustAny(&previoushostsv3.PreviousHostsPredicate{})},
		}},
		HostSelectionRetryMaxAttempts: 3,
	}
}

func pathMatch(m config.Match) *routev3.RouteMatch {
	if m.Path != "" {
		return &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Path{Path: m.Path}}
	}
	return &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: m.Prefix}}
}
