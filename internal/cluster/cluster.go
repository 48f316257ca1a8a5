package cluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard/switchyard/internal/affinity"
	"github.com/switchyard/switchyard/internal/config"
	"github.com/switchyard/switchyard/internal/registry"
	"github.com/switchyard/switchyard/internal/runner"
)

// Timings of the shared state.
const (
	// FlushInterval is the most often a replica writes its coalesced
	// changes (hints, load, registrations); a change after a quiet spell
	// is written at once.
	FlushInterval = 50 * time.Millisecond
	// LoadHeartbeat is the most a replica's load share goes unwritten.
	LoadHeartbeat = time.Second
	// LoadExpiry is how long a replica's load share counts after it was
	// last received: a replica that died stops counting by then.
	LoadExpiry = 3 * LoadHeartbeat
	// retryWait is the pause before a broken session with NATS restarts;
	// it doubles while sessions keep breaking at once, up to maxRetryWait.
	retryWait    = 500 * time.Millisecond
	maxRetryWait = 10 * time.Second
	// opTimeout bounds one write or bucket operation.
	opTimeout = 2 * time.Second
)

// Registry is what the cluster reads and changes of the runner registry.
type Registry interface {
	Register(pool, address string, ttl time.Duration) (registry.Info, error)
	Deregister(pool, address string) (registry.Info, error)
	List() []registry.Info
	Runner(pool, address string) (*runner.Runner, bool)
	EachActive(fn func(*runner.Runner))
}

// Engine is what the cluster reads and changes of the routing policy.
type Engine interface {
	Hints() *affinity.Index
	Jobs() map[string][]affinity.JobInfo
	SetRemote(replica string, jobs map[string][]affinity.JobInfo)
}

// Options configure a Cluster.
type Options struct {
	Config   *config.Cluster
	Registry Registry
	Engine   Engine
	Log      *slog.Logger
	Metrics  *Metrics
}

// Cluster is this replica's part of the shared state. Its Register and
// Deregister are the admin API's; Reported is the policy's hint hook.
type Cluster struct {
	o       Options
	replica string
	log     *slog.Logger
	m       *Metrics

	reset chan struct{} // a reconnect: start a new session
	kick  chan struct{} // a write was queued

	mu sync.Mutex
	// pending holds the writes not yet made, the latest value per key.
	pending map[string]map[string][]byte // bucket → key → value
	// owned are the registrations made through this replica, written
	// again when a session starts (NATS may have lost them).
	owned map[string][]byte
	// lastHints is the hints value last seen in the bucket per runner,
	// written or read, so an unchanged report is not written again.
	lastHints map[string]string
	// lastLoad is the share last written, without the ages, and when.
	lastLoad    string
	lastLoadAt  time.Time
	peers       map[string]*peer // other replicas' load shares
	remoteCount map[runnerKey]bool
}

type runnerKey struct{ pool, addr string }

type peer struct {
	share    loadShare
	received time.Time
}

// New makes this replica's Cluster; Run connects it.
func New(o Options) *Cluster {
	replica := o.Config.Replica
	if replica == "" {
		replica = defaultReplica()
	}
	return &Cluster{
		o: o, replica: replica, log: o.Log.With("replica", replica), m: o.Metrics,
		reset:       make(chan struct{}, 1),
		kick:        make(chan struct{}, 1),
		pending:     map[string]map[string][]byte{},
		owned:       map[string][]byte{},
		lastHints:   map[string]string{},
		peers:       map[string]*peer{},
		remoteCount: map[runnerKey]bool{},
	}
}

// Replica is this replica's name.
func (c *Cluster) Replica() string { return c.replica }

// defaultReplica is the host name with a random suffix: unique even for
// several replicas on one host.
func defaultReplica() string {
	host, _ := os.Hostname()
	host = strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' {
			return r
		}
		return '-'
	}, host)
	var b [3]byte
	_, _ = rand.Read(b[:])
	if host == "" {
		host = "switchyard"
	}
	if len(host) > 56 {
		host = host[:56]
	}
	return host + "-" + hex.EncodeToString(b[:])
}

// Run connects to NATS and keeps this replica in the shared state until ctx
// ends. NATS being unreachable is not an error: the replica routes on what
// it knows, and catches up once NATS answers.
func (c *Cluster) Run(ctx context.Context) error {
	nc, err := c.connect()
	if err != nil {
		return err
	}
	defer nc.Close()
	go c.expireLoop(ctx)
	wait := retryWait
	for {
		if !nc.IsConnected() {
			c.m.Connected.Set(0)
			select {
			case <-ctx.Done():
				return nil
			case <-c.reset:
			case <-time.After(retryWait):
			}
			continue
		}
		began := time.Now()
		err := c.session(ctx, nc)
		c.m.Connected.Set(0)
		if ctx.Err() != nil {
			return nil
		}
		// A session that broke at once (JetStream off, no permission)
		// is retried less and less often, up to maxRetryWait.
		if time.Since(began) > maxRetryWait {
			wait = retryWait
		} else {
			wait = min(2*wait, maxRetryWait)
		}
		if err != nil {
			c.m.Errors.WithLabelValues("session").Inc()
			c.log.Warn("cluster: shared state interrupted; routing on what this replica knows", "error", err, "retry_in", wait)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
	}
}

func (c *Cluster) connect() (*nats.Conn, error) {
	cfg := c.o.Config
	opts := []nats.Option{
		nats.Name("switchyard " + c.replica),
		nats.RetryOnFailedConnect(true),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(retryWait),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			c.m.Connected.Set(0)
			c.log.Warn("cluster: NATS disconnected; routing on what this replica knows", "error", err)
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			c.log.Info("cluster: NATS reconnected", "server", nc.ConnectedUrlRedacted())
			select {
			case c.reset <- struct{}{}:
			default:
			}
		}),
	}
	if cfg.CredentialsFile != "" {
		opts = append(opts, nats.UserCredentials(cfg.CredentialsFile))
	}
	if t := cfg.TLS; t != nil {
		if t.CAFile != "" {
			opts = append(opts, nats.RootCAs(t.CAFile))
		}
		if t.CertFile != "" {
			opts = append(opts, nats.ClientCert(t.CertFile, t.KeyFile))
		}
	}
	nc, err := nats.Connect(strings.Join(cfg.NATS, ","), opts...)
	if err != nil {
		return nil, fmt.Errorf("cluster: %w", err)
	}
	return nc, nil
}

// buckets are the session's key-value stores.
type buckets map[string]jetstream.KeyValue

// Bucket suffixes.
const (
	bucketRunners = "runners"
	bucketHints   = "hints"
	bucketLoad    = "load"
)

// session runs one connected period: makes sure the buckets exist, writes
// this replica's own state again, watches the others' and flushes writes,
// until something breaks (returned) or ctx ends (nil).
func (c *Cluster) session(ctx context.Context, nc *nats.Conn) error {
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	kv := buckets{}
	for _, b := range []struct {
		name   string
		maxAge time.Duration
	}{{bucketRunners, 0}, {bucketHints, 0}, {bucketLoad, time.Minute}} {
		octx, ocancel := context.WithTimeout(sctx, opTimeout)
		store, err := js.CreateOrUpdateKeyValue(octx, jetstream.KeyValueConfig{
			Bucket: c.o.Config.Prefix + "_" + b.name, History: 1, Storage: jetstream.FileStorage, TTL: b.maxAge,
		})
		ocancel()
		if err != nil {
			return fmt.Errorf("bucket %s: %w", b.name, err)
		}
		kv[b.name] = store
	}
	c.startSession()
	c.m.Connected.Set(1)
	c.log.Info("cluster: sharing runner state", "nats", nc.ConnectedUrlRedacted(), "prefix", c.o.Config.Prefix)

	errc := make(chan error, len(kv))
	for name, store := range kv {
		go func() { errc <- c.watch(sctx, name, store) }()
	}
	flush := time.NewTicker(FlushInterval)
	defer flush.Stop()
	var flushed time.Time
	health := time.NewTicker(LoadHeartbeat)
	defer health.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-c.reset:
			return errors.New("reconnected to NATS")
		case err := <-errc:
			return err
		case <-c.kick:
			// A write after a quiet spell goes at once; in a busy one,
			// at the next tick, so writes stay at most one a tick.
			if time.Since(flushed) < FlushInterval {
				continue
			}
			if err := c.flush(sctx, kv, &flushed); err != nil {
				return err
			}
		case <-flush.C:
			if err := c.flush(sctx, kv, &flushed); err != nil {
				return err
			}
		case <-health.C:
			// A NATS that restarted without its store has lost the
			// buckets: start again, which recreates them.
			octx, ocancel := context.WithTimeout(sctx, opTimeout)
			_, err := kv[bucketRunners].Status(octx)
			ocancel()
			if err != nil {
				return fmt.Errorf("bucket check: %w", err)
			}
		}
	}
}

// startSession queues this replica's own state for writing again and
// forgets what the last session saw written.
func (c *Cluster) startSession() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, v := range c.owned {
		c.queueLocked(bucketRunners, k, v)
	}
	clear(c.lastHints)
	c.lastLoad = ""
}

func (c *Cluster) queueLocked(bucket, key string, value []byte) {
	m := c.pending[bucket]
	if m == nil {
		m = map[string][]byte{}
		c.pending[bucket] = m
	}
	m[key] = value
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// flush writes the pending changes and, when it changed or is due, this
// replica's load share, and sets *wrote when it wrote anything. A failed
// write stays pending.
func (c *Cluster) flush(ctx context.Context, kv buckets, wrote *time.Time) error {
	c.queueLoad()
	c.mu.Lock()
	pending := c.pending
	c.pending = map[string]map[string][]byte{}
	c.mu.Unlock()
	if len(pending) > 0 {
		*wrote = time.Now()
	}
	var failed error
	for bucket, m := range pending {
		for key, value := range m {
			if failed == nil {
				octx, cancel := context.WithTimeout(ctx, opTimeout)
				_, err := kv[bucket].Put(octx, key, value)
				cancel()
				if err == nil {
					c.m.Writes.WithLabelValues(bucket).Inc()
					continue
				}
				c.m.Errors.WithLabelValues("write").Inc()
				failed = fmt.Errorf("write %s: %w", bucket, err)
			}
			// Keep it for the next session, unless a newer value came.
			c.mu.Lock()
			if _, newer := c.pending[bucket][key]; !newer {
				c.queueLocked(bucket, key, value)
			}
			c.mu.Unlock()
		}
	}
	return failed
}

// watch applies the bucket's entries as they come: first every current
// one, then each change, until ctx ends or the watch breaks.
func (c *Cluster) watch(ctx context.Context, bucket string, kv jetstream.KeyValue) error {
	w, err := kv.WatchAll(ctx)
	if err != nil {
		return fmt.Errorf("watch %s: %w", bucket, err)
	}
	defer w.Stop()
	initial := true
	for {
		select {
		case <-ctx.Done():
			return nil
		case e, ok := <-w.Updates():
			if !ok {
				return fmt.Errorf("watch %s: closed", bucket)
			}
			if e == nil {
				initial = false
				continue
			}
			if err := c.apply(bucket, e, initial); err != nil {
				c.m.Errors.WithLabelValues("apply").Inc()
				c.log.Debug("cluster: entry ignored", "bucket", bucket, "key", e.Key(), "error", err)
				continue
			}
			c.m.Updates.WithLabelValues(bucket).Inc()
		}
	}
}

func (c *Cluster) apply(bucket string, e jetstream.KeyValueEntry, initial bool) error {
	switch bucket {
	case bucketRunners:
		return c.applyRunner(e, initial)
	case bucketHints:
		return c.applyHints(e)
	case bucketLoad:
		return c.applyLoad(e)
	}
	return nil
}
