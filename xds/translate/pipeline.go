package translate

import (
	"time"

	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/switchyard/switchyard/internal/config"
	"github.com/switchyard/switchyard/internal/contract"
)

// PipelinesCluster is the cluster Envoy reaches switchyard's pipeline
// executor on (server.pipelines); published only while a route declares a
// pipeline.
const PipelinesCluster = "switchyard_pipelines"

// PipelineTimeoutMargin is how much longer Envoy waits for a pipeline's
// answer than the pipeline may run, so that switchyard's own 504 (naming
// the step that was running) reaches the client rather than Envoy's.
const PipelineTimeoutMargin = 5 * time.Second

// pipelineRoute sends a pipeline route's requests to the executor, with
// the route's name and the listener's URL, where the steps go back in.
// %DOWNSTREAM_LOCAL_ADDRESS% is the address the client reached, also on
// a listener bound to 0.0.0.0. ext_proc has nothing to decide: each step
// is decided when it comes back in as a request of its own.
func pipelineRoute(cfg *config.Config, l config.Listener, r config.Route) *routev3.Route {
	scheme := "http://"
	if l.TLS != nil {
		scheme = "https://"
	}
	add := func(k, v string) *corev3.HeaderValueOption {
		return &corev3.HeaderValueOption{Header: &corev3.HeaderValue{Key: k, Value: v}, AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD}
	}
	return &routev3.Route{
		Name:  r.Name,
		Match: pathMatch(r.Match),
		Action: &routev3.Route_Route{Route: &routev3.RouteAction{
			ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: PipelinesCluster},
			Timeout:          durationpb.New(r.Pipeline.Timeout.Std() + PipelineTimeoutMargin),
		}},
		RequestHeadersToAdd: []*corev3.HeaderValueOption{
			add(contract.HeaderPipelineRoute, r.Name),
			add(contract.HeaderPipelineEdge, scheme+"%DOWNSTREAM_LOCAL_ADDRESS%"),
		},
		TypedPerFilterConfig: map[string]*anypb.Any{contract.ExtProcFilterName: mustAny(extProcOff())},
	}
}

// pipelinesCluster reaches the executor over HTTP/1.1.
func pipelinesCluster(addr string) (*clusterv3.Cluster, error) {
	ap, err := config.ParseHostPort(addr)
	if err != nil {
		return nil, err
	}
	return &clusterv3.Cluster{
		Name:                 PipelinesCluster,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC},
		ConnectTimeout:       durationpb.New(time.Second),
		LoadAssignment: &endpointv3.ClusterLoadAssignment{
			ClusterName: PipelinesCluster,
			Endpoints:   []*endpointv3.LocalityLbEndpoints{{LbEndpoints: []*endpointv3.LbEndpoint{lbEndpoint(ConnectAddr(ap), false)}}},
		},
		CircuitBreakers: circuitBreakers(),
	}, nil
}

// pipelinesUnavailable gives Envoy's own 503 on a pipeline route (the
// executor unreachable: switchyard down) a JSON reason. Pipelines do not
// fail open: without the executor there is nobody to run the steps.
func pipelinesUnavailable() *hcmv3.ResponseMapper {
	reason, _ := structpb.NewStruct(map[string]any{
		"error":   "pipelines_unavailable",
		"message": "switchyard's pipeline executor is unreachable (server.pipelines); pipeline routes need it",
	})
	return &hcmv3.ResponseMapper{
		Filter: &accesslogv3.AccessLogFilter{FilterSpecifier: &accesslogv3.AccessLogFilter_AndFilter{AndFilter: &accesslogv3.AndFilter{Filters: []*accesslogv3.AccessLogFilter{
			{FilterSpecifier: &accesslogv3.AccessLogFilter_StatusCodeFilter{StatusCodeFilter: &accesslogv3.StatusCodeFilter{
				Comparison: &accesslogv3.ComparisonFilter{Op: accesslogv3.ComparisonFilter_EQ, Value: &corev3.RuntimeUInt32{DefaultValue: 503, RuntimeKey: "switchyard.pipelines_unavailable"}},
			}}},
			// Only a pipeline route adds this header (clients' copies are
			// stripped before routing).
			{FilterSpecifier: &accesslogv3.AccessLogFilter_HeaderFilter{HeaderFilter: &accesslogv3.HeaderFilter{Header: &routev3.HeaderMatcher{
				Name:                 contract.HeaderPipelineRoute,
				HeaderMatchSpecifier: &routev3.HeaderMatcher_PresentMatch{PresentMatch: true},
			}}}},
		}}}},
		BodyFormatOverride: &corev3.SubstitutionFormatString{
			Format:      &corev3.SubstitutionFormatString_JsonFormat{JsonFormat: reason},
			ContentType: "application/json",
		},
	}
}
