package xds

import (
	"context"
	"log/slog"
	"maps"
	"sync"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"google.golang.org/grpc"
)

// ServerOptions configure Register.
type ServerOptions struct {
	// Context bounds the ADS server's streams.
	Context   context.Context
	Publisher *Publisher
	Log       *slog.Logger
	Metrics   *Metrics
}

// Register serves ADS from the publisher's cache on g. Envoy's ACKs and
// NACKs are logged and counted: go-control-plane itself ignores NACKs.
func Register(g *grpc.Server, o ServerOptions) *Acks {
	log, m := o.Log, o.Metrics
	acks := &Acks{acked: map[string]string{}}
	cb := serverv3.CallbackFuncs{
		StreamOpenFunc: func(context.Context, int64, string) error {
			m.Clients.Inc()
			return nil
		},
		StreamClosedFunc: func(id int64, node *corev3.Node) {
			m.Clients.Dec()
			log.Info("envoy disconnected", "stream", id, "node", node.GetId())
		},
		StreamRequestFunc: func(id int64, req *discoveryv3.DiscoveryRequest) error {
			typ := shortType(req.GetTypeUrl())
			if st := req.GetErrorDetail(); st != nil {
				m.Nacks.WithLabelValues(typ).Inc()
				log.Warn("envoy rejected config", "type", typ, "node", req.GetNode().GetId(),
					"rejected_nonce", req.GetResponseNonce(), "kept_version", req.GetVersionInfo(), "error", st.GetMessage())
				return nil
			}
			if req.GetVersionInfo() != "" {
				acks.record(typ, req.GetVersionInfo())
			}
			return nil
		},
		StreamResponseFunc: func(_ context.Context, id int64, _ *discoveryv3.DiscoveryRequest, resp *discoveryv3.DiscoveryResponse) {
			typ := shortType(resp.GetTypeUrl())
			m.Pushes.WithLabelValues(typ).Inc()
			log.Debug("pushed", "stream", id, "type", typ, "version", resp.GetVersionInfo(), "resources", len(resp.GetResources()))
		},
	}
	srv := serverv3.NewServer(o.Context, o.Publisher.Cache(), cb)
	discoveryv3.RegisterAggregatedDiscoveryServiceServer(g, srv)
	return acks
}

// Acks remembers the last version Envoys acknowledged per resource type.
type Acks struct {
	mu    sync.Mutex
	acked map[string]string
}

func (a *Acks) record(typ, version string) {
	a.mu.Lock()
	a.acked[typ] = version
	a.mu.Unlock()
}

// Versions returns the last acknowledged version of each resource type.
func (a *Acks) Versions() map[string]string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return maps.Clone(a.acked)
}
