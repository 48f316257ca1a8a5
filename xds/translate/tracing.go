package translate

import (
	"net"
	"net/netip"
	"strconv"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	tracev3 "github.com/envoyproxy/go-control-plane/envoy/config/trace/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/switchyard/switchyard/internal/config"
)

// TracingCluster is the cluster Envoy exports its spans on: the OTLP/gRPC
// collector of observe.tracing.
const TracingCluster = "switchyard_tracing"

// EnvoyServiceSuffix follows the service name in Envoy's spans, so a trace
// shows Envoy's work apart from switchyard's decision.
const EnvoyServiceSuffix = "-envoy"

// tracingEnvoy says Envoy traces requests.
func tracingEnvoy(cfg *config.Config) bool {
	return cfg.Observe.Tracing != nil && cfg.Observe.Tracing.Envoy
}

// hcmTracing has Envoy trace every request with OpenTelemetry: a span for
// the request (continuing the client's W3C traceparent when it sent one),
// a child for the ext_proc stream, whose trace context goes to switchyard
// in the stream's gRPC metadata, and one per upstream attempt, whose
// context goes to the runner. Requests without a parent are sampled at
// sample_ratio, as switchyard samples them.
func hcmTracing(t *config.Tracing) *hcmv3.HttpConnectionManager_Tracing {
	return &hcmv3.HttpConnectionManager_Tracing{
		RandomSampling:    &typev3.Percent{Value: t.SampleRatio * 100},
		SpawnUpstreamSpan: wrapperspb.Bool(true),
		Provider: &tracev3.Tracing_Http{
			Name: "envoy.tracers.opentelemetry",
			ConfigType: &tracev3.Tracing_Http_TypedConfig{TypedConfig: mustAny(&tracev3.OpenTelemetryConfig{
				GrpcService: &corev3.GrpcService{
					TargetSpecifier: &corev3.GrpcService_EnvoyGrpc_{EnvoyGrpc: &corev3.GrpcService_EnvoyGrpc{ClusterName: TracingCluster}},
					Timeout:         durationpb.New(5 * time.Second),
				},
				ServiceName: t.Service() + EnvoyServiceSuffix,
			})},
		},
	}
}

// tracingCluster reaches the collector over HTTP/2 (plain: config refuses
// Envoy tracing without insecure). An IP address is a STATIC cluster, a
// host name a STRICT_DNS one.
func tracingCluster(t *config.Tracing) (*clusterv3.Cluster, error) {
	host, portStr, err := net.SplitHostPort(t.Endpoint)
	if err != nil {
		return nil, err
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return nil, err
	}
	kind := clusterv3.Cluster_STRICT_DNS
	if ip, err := netip.ParseAddr(host); err == nil {
		kind = clusterv3.Cluster_STATIC
		host = ip.Unmap().String()
	}
	return &clusterv3.Cluster{
		Name:                          TracingCluster,
		ClusterDiscoveryType:          &clusterv3.Cluster_Type{Type: kind},
		ConnectTimeout:                durationpb.New(time.Second),
		TypedExtensionProtocolOptions: http2Only(),
		LoadAssignment: &endpointv3.ClusterLoadAssignment{
			ClusterName: TracingCluster,
			Endpoints: []*endpointv3.LocalityLbEndpoints{{LbEndpoints: []*endpointv3.LbEndpoint{{
				HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{
					Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
						Address:       host,
						PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: uint32(port)},
					}}},
				}},
			}}}},
		},
	}, nil
}
