package translate

import (
	"fmt"
	"net/netip"
	"sort"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/switchyard/switchyard/internal/config"
)

// ExtProcCluster is the cluster Envoy reaches switchyard's ext_proc on.
const ExtProcCluster = "switchyard_extproc"

// ClusterName is the Envoy cluster of a pool.
func ClusterName(pool string) string { return "pool_" + pool }

// Input is everything a translation depends on.
type Input struct {
	Config    *config.Config
	Endpoints map[string][]Endpoint // by pool
}

// Endpoint is what Envoy needs to know of a runner.
type Endpoint struct {
	Address  string
	Draining bool // listed as DRAINING: no new requests, in-flight ones finish
}

// Resources is one complete, consistent set of Envoy resources.
type Resources struct {
	Listeners []*listenerv3.Listener
	Routes    []*routev3.RouteConfiguration
	Clusters  []*clusterv3.Cluster
	Endpoints []*endpointv3.ClusterLoadAssignment
	// Secrets name the files of Envoy's side of grpc_tls (SDS over ADS).
	Secrets []*tlsv3.Secret
	// Extensions are HTTP filter configs served by ECDS: switchyard's
	// module's (server.edge_module).
	Extensions []*corev3.TypedExtensionConfig
}

// Translate builds the resources for in. Errors mean a bug or an input the
// config package should have refused; the caller keeps its last good set.
func Translate(in Input) (*Resources, error) {
	cfg := in.Config
	out := &Resources{}
	for _, l := range cfg.Listeners {
		lis, err := listener(cfg, l)
		if err != nil {
			return nil, fmt.Errorf("listener %q: %w", l.Name, err)
		}
		out.Listeners = append(out.Listeners, lis)
		out.Routes = append(out.Routes, routeConfig(cfg, l))
	}
	for _, t := range fallbackTargets(cfg) {
		out.Clusters = append(out.Clusters, fallbackCluster(t))
	}
	for _, p := range cfg.Pools {
		out.Clusters = append(out.Clusters, poolCluster(p))
		cla, err := loadAssignment(p, in.Endpoints[p.Name])
		if err != nil {
			return nil, fmt.Errorf("pool %q: %w", p.Name, err)
		}
		out.Endpoints = append(out.Endpoints, cla)
	}
	ext, err := extProcCluster(cfg.Server.GRPC, cfg.Server.GRPCTLS)
	if err != nil {
		return nil, err
	}
	out.Clusters = append(out.Clusters, ext)
	if cfg.HasPipelines() {
		pc, err := pipelinesCluster(cfg.Server.Pipelines)
		if err != nil {
			return nil, err
		}
		out.Clusters = append(out.Clusters, pc)
	}
	if tracingEnvoy(cfg) {
		tc, err := tracingCluster(cfg.Observe.Tracing)
		if err != nil {
			return nil, fmt.Errorf("observe.tracing: %w", err)
		}
		out.Clusters = append(out.Clusters, tc)
	}
	out.Secrets = Secrets(cfg.Server.GRPCTLS)
	out.Extensions = moduleExtensions(cfg, in.Endpoints)
	sortByName(out.Listeners, (*listenerv3.Listener).GetName)
	sortByName(out.Routes, (*routev3.RouteConfiguration).GetName)
	sortByName(out.Clusters, (*clusterv3.Cluster).GetName)
	sortByName(out.Endpoints, (*endpointv3.ClusterLoadAssignment).GetClusterName)
	return out, nil
}

func sortByName[T any](s []T, name func(T) string) {
	sort.SliceStable(s, func(i, j int) bool { return name(s[i]) < name(s[j]) })
}

// mustAny packs a config message; the types are all linked in, so it cannot fail.
// mustAny packs m with a deterministic encoding: the same config gives the
// same bytes (map fields, such as a Struct's, in key order), so a
// resource's version changes only when its content does and Envoy is not
// sent an unchanged listener again.
func mustAny(m proto.Message) *anypb.Any {
	a := &anypb.Any{}
	if err := anypb.MarshalFrom(a, m, proto.MarshalOptions{Deterministic: true}); err != nil {
		panic(err)
	}
	return a
}

func socketAddress(ap netip.AddrPort) *corev3.Address {
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Address:       ap.Addr().String(),
		PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: uint32(ap.Port())},
	}}}
}

// adsSource is the config source for resources fetched over the ADS stream.
func adsSource() *corev3.ConfigSource {
	return &corev3.ConfigSource{
		ResourceApiVersion:    corev3.ApiVersion_V3,
		ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}},
	}
}
