package translate

import (
	"time"

	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	grpclogv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/grpc/v3"
	headertometadatav3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/header_to_metadata/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/switchyard/switchyard/internal/config"
	"github.com/switchyard/switchyard/internal/contract"
)

// A request's end reaches switchyard through Envoy's gRPC access log, not a
// response-phase exchange: nothing of the response waits on switchyard.
// Envoy sends each entry as soon as the request ends (a buffer of
// AccessLogBufferBytes: nothing waits for a batch), on one long-lived
// stream per worker, so a client's next request finds the runner's slot
// free and its report learnt. AccessLogFlushInterval only bounds what a
// busy stream holds back.
const (
	AccessLogFlushInterval = 5 * time.Millisecond
	AccessLogBufferBytes   = 0
)

// accessLog streams every finished request's entry to switchyard: the
// runner that served it, its status, the time to its response headers, and
// the request's dynamic metadata (the decision's flight key, the runner's
// hints copied by hintsToMetadata).
func accessLogs(cfg *config.Config) []*accesslogv3.AccessLog {
	var logs []*accesslogv3.AccessLog
	if cfg.Server.EdgeModule == "" {
		// The module sees each response and end in process.
		logs = append(logs, accessLog())
	}
	if cfg.Observe.AccessLog != nil {
		logs = append(logs, decisionLog(cfg.Observe.AccessLog))
	}
	return logs
}

func accessLog() *accesslogv3.AccessLog {
	return &accesslogv3.AccessLog{
		Name: "envoy.access_loggers.http_grpc",
		ConfigType: &accesslogv3.AccessLog_TypedConfig{TypedConfig: mustAny(&grpclogv3.HttpGrpcAccessLogConfig{
			CommonConfig: &grpclogv3.CommonGrpcAccessLogConfig{
				LogName: contract.AccessLogName,
				GrpcService: &corev3.GrpcService{
					TargetSpecifier: &corev3.GrpcService_EnvoyGrpc_{EnvoyGrpc: &corev3.GrpcService_EnvoyGrpc{ClusterName: ExtProcCluster}},
				},
				TransportApiVersion: corev3.ApiVersion_V3,
				BufferFlushInterval: durationpb.New(AccessLogFlushInterval),
				BufferSizeBytes:     wrapperspb.UInt32(AccessLogBufferBytes),
			},
		})},
	}
}

// hintsToMetadataFilter names the filter that copies the runner's hints
// header into the request's dynamic metadata on the way back, and removes
// it from the client's response unless the config passes it on.
const hintsToMetadataFilter = "switchyard.runner_hints"

func hintsToMetadata(cfg *config.Config) *headertometadatav3.Config {
	return &headertometadatav3.Config{ResponseRules: []*headertometadatav3.Config_Rule{{
		Header: cfg.Hints.ResponseHeader,
		OnHeaderPresent: &headertometadatav3.Config_KeyValuePair{
			MetadataNamespace: contract.MetadataNamespace,
			Key:               contract.MetaRunnerHints,
			Type:              headertometadatav3.Config_STRING,
		},
		Remove: !cfg.Responses.RunnerHints,
	}}}
}

// decisionHeaders tell the client what was decided, built by Envoy from the
// decision's dynamic metadata and the serving runner: the pool (from the
// runner's endpoint metadata, so a fallback names its own pool) and runner
// only when a runner was reached, the hint outcome and the variant only
// when switchyard decided. An empty value adds no header.
func decisionHeaders() []*corev3.HeaderValueOption {
	add := func(name, format string) *corev3.HeaderValueOption {
		return &corev3.HeaderValueOption{
			Header:       &corev3.HeaderValue{Key: name, Value: format},
			AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
		}
	}
	meta := func(ns, key string) string { return ns + ":" + key }
	return []*corev3.HeaderValueOption{
		add(contract.HeaderPool, "%UPSTREAM_METADATA("+meta(contract.MetadataNamespace, contract.EndpointPoolKey)+")%"),
		add(contract.HeaderRunner, "%UPSTREAM_HOST%"),
		add(contract.HeaderHint, "%DYNAMIC_METADATA("+meta(contract.MetadataNamespace, contract.MetaOutcome)+")%"),
		add(contract.HeaderVariant, "%DYNAMIC_METADATA("+meta(contract.MetadataNamespace, contract.MetaVariant)+")%"),
	}
}

// withDecisionHeaders adds the decision headers to a route's responses
// when the config asks for them.
func withDecisionHeaders(cfg *config.Config, r *routev3.Route) {
	if cfg.Responses.DecisionHeaders {
		r.ResponseHeadersToAdd = decisionHeaders()
	}
	if cfg.Responses.Explain {
		r.ResponseHeadersToAdd = append(r.ResponseHeadersToAdd, explainHeader())
	}
}
