package controlplane

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/switchyard/switchyard/envoy"
	"github.com/switchyard/switchyard/internal/dev/stack"
)

// Options shape the benchmark. Zero values take the defaults.
type Options struct {
	// Sizes are the pool sizes in endpoints; default 10, 1000, 10000.
	Sizes []int `json:"sizes"`
	// ADSClients is the number of simulated Envoys in the fan-out; default 200.
	ADSClients int `json:"ads_clients"`
	// Pushes is the number of changes measured in the fan-out; default 20.
	Pushes int `json:"pushes"`
	// Repeats is the number of registrations timed per size; default 5.
	Repeats int `json:"repeats"`
	// Smoke is a quick run for CI: sizes 10 and 100, 20 ADS clients.
	Smoke bool `json:"smoke"`
	// Log receives progress lines and switchyard's warnings; discarded when nil.
	Log io.Writer `json:"-"`
}

func (o *Options) defaults() {
	if o.Smoke {
		if len(o.Sizes) == 0 {
			o.Sizes = []int{10, 100}
		}
		if o.ADSClients == 0 {
			o.ADSClients = 20
		}
	}
	if len(o.Sizes) == 0 {
		o.Sizes = []int{10, 1000, 10000}
	}
	if o.ADSClients == 0 {
		o.ADSClients = 200
	}
	if o.Pushes == 0 {
		o.Pushes = 20
	}
	if o.Repeats == 0 {
		o.Repeats = 5
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
}

// Result is the whole benchmark, as written to the results file.
type Result struct {
	Options      Options        `json:"options"`
	Machine      Machine        `json:"machine"`
	Registration []Registration `json:"registration"`
	Fanout       []Fanout       `json:"ads_fanout"`
	Target       Target         `json:"target"`
	Seconds      float64        `json:"seconds"` // wall time of the whole run
}

// Machine says where the numbers come from.
type Machine struct {
	CPUs      int    `json:"cpus"`
	GoVersion string `json:"go_version"`
	OS        string `json:"os"`
	Arch      string `json:"arch"`
}

// Registration is the registration measurement at one pool size.
type Registration struct {
	Endpoints int `json:"endpoints"` // in the pool once the runner has registered
	// Known: registration call → Envoy's cluster has the host
	// (cluster.<pool>.membership_total reaches Endpoints).
	Known Dist `json:"known"`
	// Routed: registration call → the first request Envoy sent to the new
	// runner arrives there.
	Routed Dist `json:"routed"`
	// Removed: deregistration call (the runner idle) → Envoy's cluster no
	// longer has the host.
	Removed Dist `json:"removed"`
	// HintRotations counts probes that had to switch to a fresh hint because
	// another runner won the first one (the warm-up left it unmarked); 0 means
	// every probe's decision named the new runner.
	HintRotations int `json:"hint_rotations"`
	// StartupSeconds: switchyard and Envoy started until Envoy holds every
	// static endpoint.
	StartupSeconds float64 `json:"startup_seconds"`
	// WarmupRequests and WarmupSeconds: the requests that gave every static
	// runner a loading mark (see the package doc).
	WarmupRequests int     `json:"warmup_requests"`
	WarmupSeconds  float64 `json:"warmup_seconds"`
	// SwitchyardHeapBytes is this process's live Go heap after a GC
	// (runtime.MemStats.HeapAlloc), with switchyard serving the pool, plus
	// the benchmark's small driver; SwitchyardHeapInuseBytes the heap spans
	// in use (HeapInuse) at the same moment.
	SwitchyardHeapBytes      uint64 `json:"switchyard_heap_live_bytes"`
	SwitchyardHeapInuseBytes uint64 `json:"switchyard_heap_inuse_bytes"`
	// EnvoyRSSBytes is Envoy's resident set (VmRSS); EnvoyAllocatedBytes
	// the heap bytes Envoy's allocator reports in use (admin /memory).
	EnvoyRSSBytes       uint64 `json:"envoy_rss_bytes"`
	EnvoyAllocatedBytes uint64 `json:"envoy_allocated_bytes"`
}

// Fanout is the ADS fan-out measurement at one pool size.
type Fanout struct {
	Endpoints int `json:"endpoints"` // in the pool before the first push; each push adds one
	Clients   int `json:"clients"`
	Pushes    int `json:"pushes"`
	// Delivered counts (client, push) pairs where the client got the new
	// version; every one of Clients × Pushes when complete.
	Delivered int `json:"delivered"`
	// PerClient: change → a client received the new EDS version, over every
	// client and push.
	PerClient Dist `json:"per_client"`
	// AllClients: change → the last client received it, one sample per push.
	AllClients Dist `json:"all_clients"`
	// ConnectSeconds: all clients connected and holding the first EDS version.
	ConnectSeconds float64 `json:"connect_seconds"`
}

// Target is the goal the benchmark reports against.
type Target struct {
	Text      string  `json:"text"`
	Endpoints int     `json:"endpoints"` // the size it was checked at (the largest run)
	MaxMS     float64 `json:"max_ms"`    // worst registration → routed time at that size
	Met       bool    `json:"met"`
}

// targetEndpoints and targetLatency are the goal: "a runner registration
// reaches Envoy within 1 s at 10,000 endpoints".
const (
	targetEndpoints = 10_000
	targetLatency   = time.Second
)

// Run runs every measurement at every size and returns the numbers.
func Run(ctx context.Context, o Options) (*Result, error) {
	o.defaults()
	for _, n := range o.Sizes {
		if n < 2 {
			return nil, fmt.Errorf("controlplane: size %d: a pool needs at least 2 endpoints (the static ones and the registered one)", n)
		}
	}
	// stack.Start finds Envoy the same way; asking first gives the clear error.
	if _, err := envoy.Find(); err != nil {
		return nil, fmt.Errorf("controlplane: this benchmark runs the real Envoy: %w", err)
	}
	start := time.Now()
	res := &Result{
		Options: o,
		Machine: Machine{CPUs: runtime.NumCPU(), GoVersion: runtime.Version(), OS: runtime.GOOS, Arch: runtime.GOARCH},
	}
	for _, n := range o.Sizes {
		reg, fan, err := runSize(ctx, o, n)
		if err != nil {
			return nil, fmt.Errorf("controlplane: %d endpoints: %w", n, err)
		}
		res.Registration = append(res.Registration, reg)
		res.Fanout = append(res.Fanout, fan)
	}
	res.Target = target(res.Registration)
	res.Seconds = time.Since(start).Seconds()
	return res, nil
}

func target(regs []Registration) Target {
	t := Target{Text: fmt.Sprintf("a runner registration reaches Envoy (is routed to) within %v at %s endpoints", targetLatency, thousands(targetEndpoints))}
	for _, r := range regs {
		if r.Endpoints >= t.Endpoints {
			t.Endpoints, t.MaxMS = r.Endpoints, r.Routed.Max
		}
	}
	t.Met = t.Endpoints >= targetEndpoints && t.MaxMS > 0 && t.MaxMS <= ms(targetLatency)
	return t
}

// runSize starts switchyard and Envoy with a pool of n endpoints, times
// registrations, reads memory, stops Envoy, and times the ADS fan-out on the
// same switchyard.
func runSize(ctx context.Context, o Options, n int) (Registration, Fanout, error) {
	logf(o, "== %d endpoints", n)
	dir, err := os.MkdirTemp("", "switchyard-bench-cp-")
	if err != nil {
		return Registration{}, Fanout{}, err
	}
	defer os.RemoveAll(dir)

	live, err := startLiveRunner()
	if err != nil {
		return Registration{}, Fanout{}, err
	}
	defer live.close()

	ports, err := freePorts(3)
	if err != nil {
		return Registration{}, Fanout{}, err
	}
	c := benchConfig{
		Edge:  ports[0],
		GRPC:  net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[1])),
		Admin: net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[2])),
		N:     n,
	}
	path := filepath.Join(dir, "switchyard.yaml")
	if err := os.WriteFile(path, []byte(c.yaml()), 0o644); err != nil {
		return Registration{}, Fanout{}, err
	}

	t0 := time.Now()
	// Only switchyard's warnings: its per-stream info lines would bury the
	// progress log once hundreds of ADS clients come and go.
	swLog := slog.New(slog.NewTextHandler(o.Log, &slog.HandlerOptions{Level: slog.LevelWarn}))
	st, err := stack.Start(ctx, stack.Options{ConfigPath: path, Log: swLog, EnvoyConcurrency: 2})
	if err != nil {
		return Registration{}, Fanout{}, err
	}
	defer st.Stop()

	b := &bench{
		o:        o,
		n:        n,
		edgeURL:  st.EdgeURL,
		adminURL: st.AdminURL,
		envoy:    st.Envoy,
		live:     live,
		clients:  newClients(),
	}
	defer b.clients.close()
	if err := b.waitMembership(ctx, n-1, 60*time.Second); err != nil {
		return Registration{}, Fanout{}, fmt.Errorf("envoy never held the %d static endpoints: %w", n-1, err)
	}
	reg := Registration{Endpoints: n, StartupSeconds: time.Since(t0).Seconds()}
	logf(o, "switchyard and envoy up with %d endpoints in %.2fs", n-1, reg.StartupSeconds)

	if err := b.registration(ctx, &reg); err != nil {
		return Registration{}, Fanout{}, err
	}
	if err := b.memory(ctx, &reg); err != nil {
		return Registration{}, Fanout{}, err
	}

	// The fan-out gets the machine to itself: a real Envoy applying every
	// push would compete with the simulated ones for the same two cores.
	if err := st.Envoy.Stop(); err != nil {
		return Registration{}, Fanout{}, fmt.Errorf("stopping envoy: %w", err)
	}
	fan, err := b.fanout(ctx, c.GRPC)
	if err != nil {
		return Registration{}, Fanout{}, err
	}
	if err := st.Stop(); err != nil {
		logf(o, "stopping the stack: %v", err)
	}
	return reg, fan, nil
}

// benchConfig is the switchyard config of one size: one listener, one pool
// of N-1 static runners (the registered one makes N), one route to it.
type benchConfig struct {
	Edge        int
	GRPC, Admin string
	N           int
}

// poolName is the one pool; Envoy's cluster is "pool_" + poolName.
const poolName = "big"

func (c benchConfig) yaml() string {
	var s strings.Builder
	fmt.Fprintf(&s, "listeners:\n  - {name: public, address: 127.0.0.1, port: %d}\n", c.Edge)
	// A short drain timeout bounds a repeat's wait for the deregistered
	// runner to leave when probes are still in flight on it.
	fmt.Fprintf(&s, "server:\n  grpc: %s\n  admin: %s\n  drain_timeout: 1s\n", c.GRPC, c.Admin)
	// The probes rely on loading marks (see the package doc).
	s.WriteString("hints: {policy: loading_marks}\n")
	// The live runner must never count as busy: probes that Envoy sends
	// elsewhere before it has the new host still count in flight on it.
	fmt.Fprintf(&s, "pools:\n  - name: %s\n    max_concurrency: 1000000\n    runners:\n", poolName)
	for i := range c.N - 1 {
		fmt.Fprintf(&s, "      - {address: '%s'}\n", staticAddr(i))
	}
	fmt.Fprintf(&s, "routes:\n  - name: all\n    match: {prefix: /}\n    rules: [{pool: %s}]\n", poolName)
	return s.String()
}

// staticAddr is the i-th static runner: a loopback address at port 1, where
// nothing listens, so the kernel refuses a connection at once on any Linux
// machine. The requests that reach static runners (the warm-up, probes sent
// before Envoy has the new host) then fail in microseconds; private 10.x
// addresses would make them depend on the network (dropped: a connect
// timeout each; on some sandboxes, answered by an intercepting proxy).
func staticAddr(i int) string {
	return fmt.Sprintf("127.%d.%d.%d:1", 1+i>>16, i>>8&0xff, i&0xff)
}

// pushAddr is the runner registered by fan-out push k; nothing sends it requests.
func pushAddr(k int) string {
	return fmt.Sprintf("127.250.%d.%d:1", k>>8&0xff, k&0xff)
}

func freePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	var out []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		out = append(out, l.Addr().(*net.TCPAddr).Port)
	}
	return out, nil
}

func logf(o Options, format string, args ...any) {
	fmt.Fprintf(o.Log, "controlplane: "+format+"\n", args...)
}

var errTimeout = errors.New("timed out")
