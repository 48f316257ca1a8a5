package xds

import (
	"cmp"
	"context"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

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
	acks := &Acks{acked: map[string]string{}, streams: map[int64]*stream{}}
	cb := serverv3.CallbackFuncs{
		StreamOpenFunc: func(_ context.Context, id int64, _ string) error {
			m.Clients.Inc()
			acks.open(id)
			return nil
		},
		StreamClosedFunc: func(id int64, node *corev3.Node) {
			m.Clients.Dec()
			acks.close(id)
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
			if v := req.GetVersionInfo(); v != "" && acks.record(id, req.GetNode().GetId(), typ, v) && req.GetResponseNonce() != "" {
				// This Envoy applied a version pushed to it (not one it
				// had before it connected): the push took from the
				// version's publication to here.
				if at, ok := o.Publisher.PublishedAt(typ, v); ok {
					m.PushDuration.WithLabelValues(typ).Observe(time.Since(at).Seconds())
				}
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

// Acks remembers the last version Envoys acknowledged per resource type,
// overall and per connected Envoy.
type Acks struct {
	mu      sync.Mutex
	acked   map[string]string
	streams map[int64]*stream
}

// stream is one connected Envoy's ADS stream.
type stream struct {
	node  string
	since time.Time
	acked map[string]string
}

func (a *Acks) open(id int64) {
	a.mu.Lock()
	a.streams[id] = &stream{since: time.Now(), acked: map[string]string{}}
	a.mu.Unlock()
}

func (a *Acks) close(id int64) {
	a.mu.Lock()
	delete(a.streams, id)
	a.mu.Unlock()
}

// record notes an ACK on stream id and says whether the version is new to
// that Envoy (Envoy repeats its version in every request of a type).
func (a *Acks) record(id int64, node, typ, version string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.acked[typ] = version
	s, ok := a.streams[id]
	if !ok {
		return false
	}
	if node != "" {
		s.node = node
	}
	if s.acked[typ] == version {
		return false
	}
	s.acked[typ] = version
	return true
}

// Envoy is a connected Envoy and the versions it acknowledged.
type Envoy struct {
	Node      string            `json:"node"`
	Connected time.Time         `json:"connected"`
	Acked     map[string]string `json:"acked"`
}

// Envoys lists the connected Envoys, oldest connection first.
func (a *Acks) Envoys() []Envoy {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]Envoy, 0, len(a.streams))
	for _, s := range a.streams {
		out = append(out, Envoy{Node: s.node, Connected: s.since, Acked: maps.Clone(s.acked)})
	}
	slices.SortFunc(out, func(x, y Envoy) int { return cmp.Or(x.Connected.Compare(y.Connected), strings.Compare(x.Node, y.Node)) })
	return out
}

// Versions returns the last acknowledged version of each resource type.
func (a *Acks) Versions() map[string]string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return maps.Clone(a.acked)
}
