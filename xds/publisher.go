package xds

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"strconv"
	"sync"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/proto"

	"github.com/switchyard/switchyard/xds/translate"
)

// nodeGroup is the one snapshot every Envoy gets: all edges served by one
// switchyard route the same way.
const nodeGroup = "switchyard"

type sameForAll struct{}

func (sameForAll) ID(*corev3.Node) string { return nodeGroup }

// Publisher holds the snapshot cache the ADS server serves from.
type Publisher struct {
	cache   cachev3.SnapshotCache
	log     *slog.Logger
	metrics *Metrics
	boot    string // makes versions unique across restarts

	mu       sync.Mutex
	seq      map[resourcev3.Type]uint64
	digest   map[resourcev3.Type][32]byte
	versions map[resourcev3.Type]string
	last     *translate.Resources
	ready    chan struct{}
	// since is when each type's current version was published, by short
	// type name: an Envoy's ACK of it measures the push.
	since map[string]published
}

type published struct {
	version string
	at      time.Time
}

// NewPublisher makes a publisher; its Cache is what the ADS server serves.
func NewPublisher(log *slog.Logger, m *Metrics) *Publisher {
	return &Publisher{
		cache:    cachev3.NewSnapshotCache(true, sameForAll{}, cacheLogger{log}),
		log:      log,
		metrics:  m,
		boot:     strconv.FormatInt(time.Now().UnixNano(), 36),
		seq:      map[resourcev3.Type]uint64{},
		digest:   map[resourcev3.Type][32]byte{},
		versions: map[resourcev3.Type]string{},
		ready:    make(chan struct{}),
		since:    map[string]published{},
	}
}

// PublishedAt is when version of the resource type (short name) was
// published, while it is the current one.
func (p *Publisher) PublishedAt(typ, version string) (time.Time, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	s, ok := p.since[typ]
	if !ok || s.version != version {
		return time.Time{}, false
	}
	return s.at, true
}

// Cache is the snapshot cache to serve.
func (p *Publisher) Cache() cachev3.SnapshotCache { return p.cache }

// Ready is closed once a first snapshot is published.
func (p *Publisher) Ready() <-chan struct{} { return p.ready }

// Versions returns the published version of each resource type.
func (p *Publisher) Versions() map[string]string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return maps.Clone(p.versions)
}

// Publish validates res and makes it the served snapshot. On error the last
// good snapshot stays served and nothing changes.
func (p *Publisher) Publish(ctx context.Context, res *translate.Resources) error {
	err := p.publish(ctx, res)
	result := "ok"
	if err != nil {
		result = "error"
		p.log.Warn("snapshot rejected, keeping the last good one", "error", err)
	}
	p.metrics.Snapshots.WithLabelValues(result).Inc()
	return err
}

func (p *Publisher) publish(ctx context.Context, res *translate.Resources) error {
	byType := map[resourcev3.Type][]types.Resource{
		resourcev3.ListenerType: toResources(res.Listeners),
		resourcev3.RouteType:    toResources(res.Routes),
		resourcev3.ClusterType:  toResources(res.Clusters),
		resourcev3.EndpointType: toResources(res.Endpoints),
		resourcev3.SecretType:   toResources(res.Secrets),
		// ECDS: the module's filter config (server.edge_module).
		resourcev3.ExtensionConfigType: toResources(res.Extensions),
	}
	var errs []error
	for typ, items := range byType {
		for _, r := range items {
			if err := validate(r); err != nil {
				errs = append(errs, fmt.Errorf("%s %q: %w", shortType(typ), cachev3.GetResourceName(r), err))
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}

	p.mu.Lock()
	defer p.mu.Unlock()
	versions := map[resourcev3.Type]string{}
	for typ, items := range byType {
		d, err := digest(items)
		if err != nil {
			return err
		}
		if _, seen := p.digest[typ]; !seen || d != p.digest[typ] {
			p.seq[typ]++
		}
		versions[typ] = fmt.Sprintf("%s-%d", p.boot, p.seq[typ])
		p.digest[typ] = d
	}
	snap := &cachev3.Snapshot{}
	for typ, items := range byType {
		snap.Resources[cachev3.GetResponseType(typ)] = cachev3.NewResources(versions[typ], items)
	}
	if err := snap.Consistent(); err != nil {
		return fmt.Errorf("inconsistent snapshot: %w", err)
	}
	if err := p.cache.SetSnapshot(ctx, nodeGroup, snap); err != nil {
		return err
	}
	now := time.Now()
	for typ, v := range versions {
		if p.versions[typ] != v {
			p.since[shortType(typ)] = published{version: v, at: now}
		}
	}
	p.versions = versions
	p.last = res
	select {
	case <-p.ready:
	default:
		close(p.ready)
	}
	return nil
}

// validate runs the protoc-gen-validate rules of the resource.
func validate(r types.Resource) error {
	v, ok := r.(interface{ ValidateAll() error })
	if !ok {
		return fmt.Errorf("%T has no validation", r)
	}
	return v.ValidateAll()
}

// digest fingerprints resources so a type's version changes only when its
// content does: Envoy is not sent identical resources again.
func digest(items []types.Resource) ([32]byte, error) {
	h := sha256.New()
	opts := proto.MarshalOptions{Deterministic: true}
	for _, r := range items {
		b, err := opts.Marshal(r)
		if err != nil {
			return [32]byte{}, err
		}
		fmt.Fprintf(h, "%d:", len(b))
		h.Write(b)
	}
	var out [32]byte
	copy(out[:], h.Sum(nil))
	return out, nil
}

func toResources[T types.Resource](in []T) []types.Resource {
	out := make([]types.Resource, len(in))
	for i, r := range in {
		out[i] = r
	}
	return out
}

// shortType turns a type URL into its message name, for logs and labels.
func shortType(typeURL string) string {
	for i := len(typeURL) - 1; i >= 0; i-- {
		if typeURL[i] == '.' {
			return typeURL[i+1:]
		}
	}
	return typeURL
}

// cacheLogger sends go-control-plane's logs to slog at debug level.
type cacheLogger struct{ l *slog.Logger }

func (c cacheLogger) Debugf(f string, a ...any) { c.l.Debug(fmt.Sprintf(f, a...)) }
func (c cacheLogger) Infof(f string, a ...any)  { c.l.Debug(fmt.Sprintf(f, a...)) }
func (c cacheLogger) Warnf(f string, a ...any)  { c.l.Warn(fmt.Sprintf(f, a...)) }
func (c cacheLogger) Errorf(f string, a ...any) { c.l.Error(fmt.Sprintf(f, a...)) }
