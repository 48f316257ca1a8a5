package translate

import (
	"net/netip"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	compositev3 "github.com/envoyproxy/go-control-plane/envoy/extensions/clusters/composite/v3"
	commonlbv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/load_balancing_policies/common/v3"
	leastrequestv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/load_balancing_policies/least_request/v3"
	maglevv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/load_balancing_policies/maglev/v3"
	overridehostv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/load_balancing_policies/override_host/v3"
	ringhashv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/load_balancing_policies/ring_hash/v3"
	roundrobinv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/load_balancing_policies/round_robin/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	upstreamhttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	metadatav3 "github.com/envoyproxy/go-control-plane/envoy/type/metadata/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/switchyard/switchyard/internal/config"
	"github.com/switchyard/switchyard/internal/contract"
	"github.com/switchyard/switchyard/internal/mtls"
)

const (
	runnerConnectTimeout = 2 * time.Second
	poolMaxRequests      = 100_000
)

// poolCluster is a pool's EDS cluster. Runner choice is ext_proc's: the
// override_host policy takes the ordered runner list from dynamic metadata
// (only hosts in the EDS set are used, the next ones on retry) and falls
// back to least_request when the list is missing or stale.
func poolCluster(p config.Pool) *clusterv3.Cluster {
	name := ClusterName(p.Name)
	return &clusterv3.Cluster{
		Name:                 name,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS},
		EdsClusterConfig:     &clusterv3.Cluster_EdsClusterConfig{EdsConfig: adsSource(), ServiceName: name},
		ConnectTimeout:       durationpb.New(runnerConnectTimeout),
		LoadBalancingPolicy:  &clusterv3.LoadBalancingPolicy{Policies: []*clusterv3.LoadBalancingPolicy_Policy{{TypedExtensionConfig: loadBalancer(p.LoadBalancer)}}},
		// Draining runners are excluded as unhealthy; never send traffic to
		// them in panic mode, even when most of a pool is draining.
		CommonLbConfig:  &clusterv3.Cluster_CommonLbConfig{HealthyPanicThreshold: &typev3.Percent{Value: 0}},
		CircuitBreakers: circuitBreakers(),
	}
}

// loadBalancer is the pool's Envoy load-balancing policy. With switchyard
// picking, override_host takes the runner list from ext_proc and falls back
// to least_request when the list is missing or stale; the other policies
// are Envoy's own.
func loadBalancer(lb config.LoadBalancer) *corev3.TypedExtensionConfig {
	leastRequest := &corev3.TypedExtensionConfig{
		Name:        "envoy.load_balancing_policies.least_request",
		TypedConfig: mustAny(&leastrequestv3.LeastRequest{}),
	}
	var hashing *commonlbv3.ConsistentHashingLbConfig
	if lb.HashBalanceFactor > 0 {
		hashing = &commonlbv3.ConsistentHashingLbConfig{HashBalanceFactor: wrapperspb.UInt32(uint32(lb.HashBalanceFactor))}
	}
	switch lb.Policy {
	case config.LBLeastRequest:
		return leastRequest
	case config.LBRoundRobin:
		return &corev3.TypedExtensionConfig{Name: "envoy.load_balancing_policies.round_robin", TypedConfig: mustAny(&roundrobinv3.RoundRobin{})}
	case config.LBRingHash:
		return &corev3.TypedExtensionConfig{Name: "envoy.load_balancing_policies.ring_hash", TypedConfig: mustAny(&ringhashv3.RingHash{ConsistentHashingLbConfig: hashing})}
	case config.LBMaglev:
		return &corev3.TypedExtensionConfig{Name: "envoy.load_balancing_policies.maglev", TypedConfig: mustAny(&maglevv3.Maglev{ConsistentHashingLbConfig: hashing})}
	}
	return &corev3.TypedExtensionConfig{
		Name: "envoy.load_balancing_policies.override_host",
		TypedConfig: mustAny(&overridehostv3.OverrideHost{
			OverrideHostSources: []*overridehostv3.OverrideHost_OverrideHostSource{{
				Metadata: &metadatav3.MetadataKey{
					Key:  contract.LBNamespace,
					Path: []*metadatav3.MetadataKey_PathSegment{{Segment: &metadatav3.MetadataKey_PathSegment_Key{Key: contract.EndpointKey}}},
				},
			}},
			FallbackPolicy: &clusterv3.LoadBalancingPolicy{Policies: []*clusterv3.LoadBalancingPolicy_Policy{{TypedExtensionConfig: leastRequest}}},
		}),
	}
}

// fallbackTargets lists every target with fallback pools that a route uses.
func fallbackTargets(cfg *config.Config) []config.Target {
	seen := map[string]bool{}
	var out []config.Target
	for _, r := range cfg.Routes {
		if r.Pipeline != nil {
			continue // no pools: the executor answers
		}
		for _, t := range append(r.Targets(), r.DefaultTarget()) {
			if len(t.Fallback) > 0 && !seen[t.Name()] {
				seen[t.Name()] = true
				out = append(out, t)
			}
		}
	}
	return out
}

// fallbackCluster chains a pool and its fallbacks: Envoy's composite
// cluster sends attempt n to entry n, so attempts 1 and 2 go to the pool
// and each retry after that to the next fallback pool. (An aggregate
// cluster would not pass the runner list to the pools' override_host.)
func fallbackCluster(t config.Target) *clusterv3.Cluster {
	var entries []*compositev3.ClusterConfig_ClusterEntry
	for range contract.PrimaryAttempts {
		entries = append(entries, &compositev3.ClusterConfig_ClusterEntry{Name: ClusterName(t.Pool)})
	}
	for _, f := range t.Fallback {
		entries = append(entries, &compositev3.ClusterConfig_ClusterEntry{Name: ClusterName(f)})
	}
	return &clusterv3.Cluster{
		Name: ClusterName(t.Name()),
		ClusterDiscoveryType: &clusterv3.Cluster_ClusterType{ClusterType: &clusterv3.Cluster_CustomClusterType{
			Name:        "envoy.clusters.composite",
			TypedConfig: mustAny(&compositev3.ClusterConfig{Clusters: entries}),
		}},
		ConnectTimeout:  durationpb.New(runnerConnectTimeout),
		LbPolicy:        clusterv3.Cluster_CLUSTER_PROVIDED,
		CircuitBreakers: circuitBreakers(),
	}
}

// FallbackAttempts is the number of attempts of a target: one per entry of
// its composite cluster.
func FallbackAttempts(t config.Target) int { return contract.PrimaryAttempts + len(t.Fallback) }

// circuitBreakers lift Envoy's defaults (1,024 requests and 3 concurrent
// retries per cluster), which slow inference and fallback retries would hit
// at modest request rates.
func circuitBreakers() *clusterv3.CircuitBreakers {
	return &clusterv3.CircuitBreakers{Thresholds: []*clusterv3.CircuitBreakers_Thresholds{{
		MaxConnections:     wrapperspb.UInt32(poolMaxRequests),
		MaxPendingRequests: wrapperspb.UInt32(poolMaxRequests),
		MaxRequests:        wrapperspb.UInt32(poolMaxRequests),
		MaxRetries:         wrapperspb.UInt32(poolMaxRequests),
	}}}
}

// extProcCluster reaches switchyard's gRPC port over HTTP/2 (ext_proc and
// the access log), under mutual TLS when the config has grpc_tls.
func extProcCluster(grpcAddr string, t *config.GRPCTLS) (*clusterv3.Cluster, error) {
	ap, err := config.ParseHostPort(grpcAddr)
	if err != nil {
		return nil, err
	}
	ap = ConnectAddr(ap)
	c := &clusterv3.Cluster{
		Name:                          ExtProcCluster,
		ClusterDiscoveryType:          &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC},
		ConnectTimeout:                durationpb.New(time.Second),
		TypedExtensionProtocolOptions: http2Only(),
		LoadAssignment: &endpointv3.ClusterLoadAssignment{
			ClusterName: ExtProcCluster,
			Endpoints:   []*endpointv3.LocalityLbEndpoints{{LbEndpoints: []*endpointv3.LbEndpoint{lbEndpoint(ap, false)}}},
		},
	}
	if t != nil {
		// The certificate, key and CA come by SDS over ADS ([Secrets]):
		// Envoy then watches the files they name and re-reads them when
		// they are replaced, whether or not the cluster is republished.
		c.TransportSocket = mtls.EnvoyTransportSocket(t.Envoy, func(string) *corev3.ConfigSource { return adsSource() })
	}
	return c, nil
}

// Secrets are the SDS secrets the ext_proc cluster refers to: none
// without grpc_tls.
func Secrets(t *config.GRPCTLS) []*tlsv3.Secret {
	if t == nil {
		return nil
	}
	return mtls.EnvoySecrets(t.Envoy)
}

// ConnectAddr turns a listen address into one a client can connect to:
// the unspecified address means this host's loopback.
func ConnectAddr(ap netip.AddrPort) netip.AddrPort {
	switch {
	case ap.Addr() == netip.IPv4Unspecified():
		return netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), ap.Port())
	case ap.Addr() == netip.IPv6Unspecified():
		return netip.AddrPortFrom(netip.IPv6Loopback(), ap.Port())
	}
	return ap
}

// http2Only has Envoy speak HTTP/2 to a cluster (gRPC: ext_proc, the
// access log, an OTLP collector).
func http2Only() map[string]*anypb.Any {
	return map[string]*anypb.Any{
		"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": mustAny(&upstreamhttpv3.HttpProtocolOptions{
			UpstreamProtocolOptions: &upstreamhttpv3.HttpProtocolOptions_ExplicitHttpConfig_{ExplicitHttpConfig: &upstreamhttpv3.HttpProtocolOptions_ExplicitHttpConfig{
				ProtocolConfig: &upstreamhttpv3.HttpProtocolOptions_ExplicitHttpConfig_Http2ProtocolOptions{Http2ProtocolOptions: &corev3.Http2ProtocolOptions{}},
			}},
		}),
	}
}
