package cluster_test

import (
	"context"
	"io"
	"log/slog"
	neturl "net/url"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/switchyard/switchyard/internal/cluster"
	"github.com/switchyard/switchyard/internal/config"
	"github.com/switchyard/switchyard/internal/dev/natsserver"
	"github.com/switchyard/switchyard/internal/policy"
	"github.com/switchyard/switchyard/internal/registry"
)

// replica is one switchyard's state, in process: registry, policy engine
// and its part of the cluster.
type replica struct {
	cfg     *config.Config
	runners *registry.Registry
	engine  *policy.Engine
	cluster *cluster.Cluster
	metrics *cluster.Metrics
	stop    context.CancelFunc
	done    chan error
}

func startReplica(t *testing.T, name, url string) *replica {
	t.Helper()
	return startReplicaWith(t, name, url, "p")
}

// startReplicaWith starts a replica whose config has one pool, named pool.
func startReplicaWith(t *testing.T, name, url, pool string) *replica {
	t.Helper()
	cfg, err := config.Parse("c.yaml", []byte(`
listeners: [{name: l, address: 127.0.0.1, port: 10000}]
pools: [{name: `+pool+`, max_concurrency: 1}]
routes: [{name: r, match: {prefix: /}, rules: [{pool: `+pool+`}]}]
cluster: {nats: ['`+url+`'], replica: `+name+`}
`))
	if err != nil {
		t.Fatal(err)
	}
	r := &replica{cfg: cfg, runners: registry.New(registry.Options{InFlightTracked: true}), done: make(chan error, 1)}
	r.runners.ApplyConfig(cfg)
	r.engine = policy.New(policy.Options{Runners: r.runners, Reported: func(addr, hints string) { r.cluster.Reported(addr, hints) }})
	r.metrics = cluster.NewMetrics(prometheus.NewRegistry())
	r.cluster = cluster.New(cluster.Options{Config: cfg.Cluster, Registry: r.runners, Engine: r.engine,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Metrics: r.metrics})
	ctx, cancel := context.WithCancel(context.Background())
	r.stop = cancel
	go func() { r.done <- r.cluster.Run(ctx) }()
	t.Cleanup(r.halt)
	eventually(t, 10*time.Second, name+" connected", func() bool { return testutil.ToFloat64(r.metrics.Connected) == 1 })
	return r
}

// halt stops the replica's part of the cluster, as a crash would.
func (r *replica) halt() {
	r.stop()
	<-r.done
	r.done <- nil // a second halt returns at once
}

func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, timeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func startNATS(t *testing.T, dir string) *natsserver.Server {
	t.Helper()
	ns, err := natsserver.Start(natsserver.Options{StoreDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ns.Stop)
	return ns
}

func state(r *replica, addr string) registry.State {
	for _, in := range r.runners.List() {
		if in.Address == addr {
			return in.State
		}
	}
	return ""
}

// What one replica learns, the others know: registrations, drains, hints
// and the work in flight, which a replica that dies stops counting.
func TestSharedState(t *testing.T) {
	ns := startNATS(t, t.TempDir())
	a := startReplica(t, "edge-a", ns.URL())
	b := startReplica(t, "edge-b", ns.URL())

	const addr = "10.0.0.7:8000"
	if _, err := a.cluster.Register("p", addr, time.Minute); err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Second, "a runner registered at A active at B", func() bool { return state(b, addr) == registry.Active })

	a.engine.Observe(policy.Response{Runner: addr, Status: 200, Hints: "flux,sdxl", HintsReported: true})
	eventually(t, time.Second, "hints reported through A known at B", func() bool { return b.engine.Hints().Has(addr, "sdxl") })

	// Work A sends the runner counts at B, in flight and in soonest's backlog.
	route, _ := a.cfg.Route("r")
	d, err := a.engine.Decide(a.cfg, route, policy.Request{Headers: map[string]string{"x-fal-runner-hint": "flux"}})
	if err != nil || len(d.Runners) == 0 || d.Runners[0].Address != addr {
		t.Fatalf("decision at A: %+v, %v", d, err)
	}
	flight := a.engine.Dispatch(a.cfg, d)
	rb, _ := b.runners.Runner("p", addr)
	eventually(t, time.Second, "A's request in flight seen at B", func() bool { return rb.Remote() == 1 && rb.InFlight() == 1 })
	if jobs := b.engine.Jobs(); len(jobs) != 0 {
		t.Errorf("B's own jobs %v: another replica's work is not B's to share", jobs)
	}
	flight.End()
	eventually(t, time.Second, "A's request ended, seen at B", func() bool { return rb.Remote() == 0 })

	// A replica that dies with work in flight stops counting within LoadExpiry.
	flight = a.engine.Dispatch(a.cfg, d)
	eventually(t, time.Second, "A's second request seen at B", func() bool { return rb.Remote() == 1 })
	a.halt()
	start := time.Now()
	eventually(t, cluster.LoadExpiry+2*time.Second, "the dead replica's share forgotten", func() bool { return rb.Remote() == 0 })
	t.Logf("a dead replica's share forgotten after %v", time.Since(start).Round(10*time.Millisecond))
	flight.End()

	// A drain at one replica is a drain everywhere.
	c := startReplica(t, "edge-c", ns.URL())
	eventually(t, time.Second, "a new replica reads the registrations", func() bool { return state(c, addr) == registry.Active })
	// Each bucket is replayed by a watch of its own.
	eventually(t, time.Second, "a new replica reads the hints", func() bool { return c.engine.Hints().Has(addr, "flux") })
	if _, err := b.cluster.Deregister("p", addr); err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Second, "a drain at B seen at C", func() bool { s := state(c, addr); return s == registry.Draining || s == "" })
}

// NATS going away changes nothing for routing; once it is back (with its
// store, or without it) the replicas share state again.
func TestNATSRestart(t *testing.T) {
	for _, keep := range []bool{true, false} {
		dir := t.TempDir()
		ns := startNATS(t, dir)
		url := ns.URL()
		a := startReplica(t, "edge-a", url)
		b := startReplica(t, "edge-b", url)
		if _, err := a.cluster.Register("p", "10.0.0.1:80", time.Minute); err != nil {
			t.Fatal(err)
		}
		eventually(t, time.Second, "registration shared", func() bool { return state(b, "10.0.0.1:80") == registry.Active })

		ns.Stop()
		eventually(t, 5*time.Second, "A sees NATS gone", func() bool { return testutil.ToFloat64(a.metrics.Connected) == 0 })
		// Routing state is local: registering goes on while NATS is away.
		if _, err := a.cluster.Register("p", "10.0.0.2:80", time.Minute); err != nil {
			t.Fatalf("register with NATS down: %v", err)
		}
		if !keep {
			dir = t.TempDir() // a NATS that lost its store
		}
		port := portOf(t, url)
		ns2, err := natsserver.Start(natsserver.Options{StoreDir: dir, Port: port})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(ns2.Stop)
		eventually(t, 15*time.Second, "registration made while NATS was down reaches B", func() bool { return state(b, "10.0.0.2:80") == registry.Active })
		if _, err := b.cluster.Register("p", "10.0.0.3:80", time.Minute); err != nil {
			t.Fatal(err)
		}
		eventually(t, 2*time.Second, "a new registration after the restart reaches A", func() bool { return state(a, "10.0.0.3:80") == registry.Active })
		a.halt()
		b.halt()
		ns2.Stop()
	}
}

func portOf(t *testing.T, url string) int {
	t.Helper()
	u, err := neturl.Parse(url)
	if err != nil {
		t.Fatal(err)
	}
	p, err := strconv.Atoi(u.Port())
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// A registration in a pool a replica's config does not have (an older or
// newer config) is ignored there, and counted.
func TestUnknownPoolIgnored(t *testing.T) {
	ns := startNATS(t, t.TempDir())
	a := startReplica(t, "edge-a", ns.URL())
	b := startReplicaWith(t, "edge-b", ns.URL(), "q")
	if _, err := a.cluster.Register("p", "10.0.0.9:80", time.Minute); err != nil {
		t.Fatal(err)
	}
	eventually(t, 2*time.Second, "the entry seen and refused at B", func() bool {
		return testutil.ToFloat64(b.metrics.Errors.WithLabelValues("apply")) == 1
	})
	if got := b.runners.List(); len(got) != 0 {
		t.Errorf("B's runners %v, want none", got)
	}
}
