package translate

import (
	"net/netip"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/switchyard/switchyard/internal/config"
	"github.com/switchyard/switchyard/internal/contract"
)

// loadAssignment lists a pool's runners. Draining runners stay listed as
// DRAINING so that Envoy sends them nothing new while their in-flight
// requests finish on the connections they already have.
func loadAssignment(p config.Pool, eps []Endpoint) (*endpointv3.ClusterLoadAssignment, error) {
	lbs := make([]*endpointv3.LbEndpoint, 0, len(eps))
	for _, ep := range eps {
		ap, err := netip.ParseAddrPort(ep.Address)
		if err != nil {
			return nil, err
		}
		lbs = append(lbs, poolEndpoint(p.Name, ap, ep.Draining))
	}
	return &endpointv3.ClusterLoadAssignment{
		ClusterName: ClusterName(p.Name),
		Endpoints:   []*endpointv3.LocalityLbEndpoints{{LbEndpoints: lbs}},
	}, nil
}

func lbEndpoint(ap netip.AddrPort, draining bool) *endpointv3.LbEndpoint {
	status := corev3.HealthStatus_HEALTHY
	if draining {
		status = corev3.HealthStatus_DRAINING
	}
	return &endpointv3.LbEndpoint{
		HealthStatus: status,
		HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{
			Address: socketAddress(ap),
		}},
	}
}

// poolEndpoint is a runner of pool: its metadata names the pool, which the
// route's response header reads (%UPSTREAM_METADATA%) to tell the client
// which pool served, fallbacks included.
func poolEndpoint(pool string, ap netip.AddrPort, draining bool) *endpointv3.LbEndpoint {
	ep := lbEndpoint(ap, draining)
	ep.Metadata = &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{
		contract.MetadataNamespace: {Fields: map[string]*structpb.Value{contract.EndpointPoolKey: structpb.NewStringValue(pool)}},
	}}
	return ep
}
