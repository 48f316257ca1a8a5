package controlplane

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchyard/switchyard/envoy"
	"github.com/switchyard/switchyard/internal/config"
)

// Probing: a request through Envoy every probeInterval, at most
// maxOutstanding at a time (a bound for safety: probes Envoy sends to a
// static runner before it has the new host are refused at once).
const (
	probeInterval  = 2 * time.Millisecond
	pollInterval   = 2 * time.Millisecond
	maxOutstanding = 128
	probeTimeout   = 5 * time.Second
	// repeatTimeout bounds one registration's wait for Envoy.
	repeatTimeout = 20 * time.Second
	// rotateAfter: once Envoy holds the host, a probe hint that still lands
	// nowhere near the new runner this long after was won by another runner.
	rotateAfter = 250 * time.Millisecond
)

// bench is one size's running stack and the clients that drive it.
type bench struct {
	o        Options
	n        int
	edgeURL  string
	adminURL string
	envoy    *envoy.Process
	live     *liveRunner
	clients  clients
}

type clients struct {
	edge  *http.Client // through Envoy's listener
	admin *http.Client // switchyard's and Envoy's admin APIs
}

func (c clients) close() {
	c.edge.CloseIdleConnections()
	c.admin.CloseIdleConnections()
}

func newClients() clients {
	return clients{
		edge:  &http.Client{Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: maxOutstanding, IdleConnTimeout: 30 * time.Second}},
		admin: &http.Client{Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 4}, Timeout: 30 * time.Second},
	}
}

// registration times o.Repeats registrations and deregistrations of the
// live runner.
func (b *bench) registration(ctx context.Context, reg *Registration) error {
	t := time.Now()
	sent, err := b.warmUp(ctx)
	if err != nil {
		return err
	}
	reg.WarmupRequests, reg.WarmupSeconds = sent, time.Since(t).Seconds()
	logf(b.o, "warm-up: %d requests in %.2fs", sent, reg.WarmupSeconds)

	var known, routed, removed []time.Duration
	for rep := range b.o.Repeats {
		k, r, rot, err := b.registerOnce(ctx, rep)
		if err != nil {
			return fmt.Errorf("registration %d: %w", rep+1, err)
		}
		reg.HintRotations += rot
		d, err := b.deregisterOnce(ctx)
		if err != nil {
			return fmt.Errorf("deregistration %d: %w", rep+1, err)
		}
		known, routed, removed = append(known, k), append(routed, r), append(removed, d)
		logf(b.o, "registration %d: in envoy %v, routed %v; deregistration: gone %v", rep+1,
			k.Round(time.Microsecond*100), r.Round(time.Microsecond*100), d.Round(time.Microsecond*100))
	}
	reg.Known, reg.Routed, reg.Removed = dist(known, true), dist(routed, true), dist(removed, true)
	return nil
}

// warmUp gives every static runner a loading mark: each request carries a
// hint nobody holds, so it goes to a runner with the fewest hints, which is
// then marked as loading it. The requests themselves fail (nothing listens
// at the static addresses; Envoy retries twice with its back-off, tens of
// milliseconds) and only the decision, made as each starts, matters, so
// many run at once. Two decisions made at the same instant can pick the same
// unmarked runner; the requests beyond one per runner mark any left over (a
// pick always goes to a runner with the fewest marks).
func (b *bench) warmUp(ctx context.Context) (int, error) {
	const parallel = 64
	total := b.n - 1 + 50 + b.n/25
	var next, failed atomic.Int64
	var lastErr atomic.Value
	var wg sync.WaitGroup
	for range parallel {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= total || ctx.Err() != nil {
					return
				}
				rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				resp, err := b.edgeGet(rctx, "/warm-up", fmt.Sprintf("w%d-%d", b.n, i))
				if err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				} else if !errors.Is(err, context.DeadlineExceeded) {
					// A timeout is fine: the decision came long before it.
					failed.Add(1)
					lastErr.Store(err)
				}
				cancel()
			}
		}()
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if failed.Load() > int64(total)/10 {
		return 0, fmt.Errorf("warm-up: %d of %d requests through envoy failed, last: %v", failed.Load(), total, lastErr.Load())
	}
	return total, nil
}

// registerOnce registers the live runner and returns how long until Envoy
// held it and until the first request reached it.
func (b *bench) registerOnce(ctx context.Context, rep int) (known, routed time.Duration, rotations int, err error) {
	b.live.reset()
	ctx, cancel := context.WithTimeout(ctx, repeatTimeout)
	defer cancel()

	start := time.Now()
	if err := b.runnerAPI(ctx, http.MethodPut, b.live.addr); err != nil {
		return 0, 0, 0, err
	}
	knownc := make(chan time.Duration, 1)
	knownErr := make(chan error, 1)
	go func() {
		if err := b.waitMembership(ctx, b.n, repeatTimeout); err != nil {
			knownErr <- err
			return
		}
		knownc <- time.Since(start)
	}()

	var outstanding sync.WaitGroup
	var inFlight atomic.Int64
	// Probes left in flight finish on their own (they are answered or
	// refused within milliseconds), so the runner is idle when it leaves.
	defer outstanding.Wait()
	hint := fmt.Sprintf("p%d-%d", b.n, rep)
	probe := func(h string) {
		inFlight.Add(1)
		outstanding.Add(1)
		go func() {
			defer outstanding.Done()
			defer inFlight.Add(-1)
			rctx, cancel := context.WithTimeout(ctx, probeTimeout)
			defer cancel()
			if resp, err := b.edgeGet(rctx, "/probe", h); err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		}()
	}
	tick := time.NewTicker(probeInterval)
	defer tick.Stop()
	var knownAt time.Time
	known = -1
	probe(hint)
	for {
		select {
		case at := <-b.live.first:
			routed = at.Sub(start)
			if known < 0 {
				// Envoy cannot route to a host it does not hold; wait for
				// the gauge too so both numbers come from the same repeat.
				select {
				case known = <-knownc:
				case err := <-knownErr:
					return 0, 0, 0, err
				}
			}
			return known, routed, rotations, nil
		case known = <-knownc:
			knownAt = time.Now()
		case err := <-knownErr:
			return 0, 0, 0, err
		case <-ctx.Done():
			return 0, 0, 0, fmt.Errorf("the new runner got no request within %v (envoy held it: %v)", repeatTimeout, known >= 0)
		case <-tick.C:
			if known >= 0 && time.Since(knownAt) > rotateAfter {
				// Another runner won this hint; a fresh one goes to a
				// runner with no hints again, eventually the new one.
				rotations++
				hint = fmt.Sprintf("p%d-%d-%d", b.n, rep, rotations)
				knownAt = time.Now()
			}
			if inFlight.Load() < maxOutstanding {
				probe(hint)
			}
		}
	}
}

// deregisterOnce deregisters the live runner once it is idle and returns
// how long until Envoy dropped it. (A runner with requests in flight drains
// first: that wait is the requests', not the control plane's.)
func (b *bench) deregisterOnce(ctx context.Context) (time.Duration, error) {
	if err := b.waitIdle(ctx, b.live.addr); err != nil {
		return 0, err
	}
	start := time.Now()
	if err := b.runnerAPI(ctx, http.MethodDelete, b.live.addr); err != nil {
		return 0, err
	}
	if err := b.waitMembership(ctx, b.n-1, repeatTimeout); err != nil {
		return 0, err
	}
	return time.Since(start), nil
}

// waitIdle waits until switchyard counts no request in flight on addr:
// ext_proc lets go of a request a little after its client has the answer.
func (b *bench) waitIdle(ctx context.Context, addr string) error {
	deadline := time.Now().Add(probeTimeout)
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, b.adminURL+"/v1/runners", nil)
		if err != nil {
			return err
		}
		resp, err := b.clients.admin.Do(req)
		if err != nil {
			return err
		}
		var list struct {
			Runners []struct {
				Pool     string `json:"pool"`
				Address  string `json:"address"`
				InFlight int64  `json:"in_flight"`
			} `json:"runners"`
		}
		err = json.NewDecoder(resp.Body).Decode(&list)
		resp.Body.Close()
		if err != nil {
			return fmt.Errorf("GET /v1/runners: %w", err)
		}
		inFlight := int64(-1)
		for _, r := range list.Runners {
			if r.Pool == poolName && r.Address == addr {
				inFlight = r.InFlight
			}
		}
		switch {
		case inFlight < 0:
			return fmt.Errorf("runner %s is not listed", addr)
		case inFlight == 0:
			return nil
		case time.Now().After(deadline):
			return fmt.Errorf("runner %s still has %d requests in flight: %w", addr, inFlight, errTimeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
}

func (b *bench) edgeGet(ctx context.Context, path, hint string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, b.edgeURL+path, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set(config.DefaultRequestHeader, hint)
	return b.clients.edge.Do(req)
}

// runnerAPI registers (PUT) or deregisters (DELETE) a runner of the pool.
func (b *bench) runnerAPI(ctx context.Context, method, addr string) error {
	req, err := http.NewRequestWithContext(ctx, method, b.adminURL+"/v1/pools/"+poolName+"/runners/"+addr, nil)
	if err != nil {
		return err
	}
	resp, err := b.clients.admin.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s %s: %d %s", method, req.URL.Path, resp.StatusCode, bytes.TrimSpace(body))
	}
	return nil
}

// membershipStat is the gauge of hosts in the pool's cluster, as Envoy's
// main thread applied the last EDS update.
var membershipStat = "cluster.pool_" + poolName + ".membership_total"

// waitMembership polls Envoy until the pool's cluster has want hosts.
func (b *bench) waitMembership(ctx context.Context, want int, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	q := url.Values{"filter": {"^" + strings.ReplaceAll(membershipStat, ".", `\.`) + "$"}}
	u := b.envoy.AdminURL() + "/stats?" + q.Encode()
	got := -1
	for {
		n, err := b.gauge(ctx, u)
		if err == nil {
			got = n
			if n == want {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s is %d, want %d: %w", membershipStat, got, want, errTimeout)
		case <-time.After(pollInterval):
		}
	}
}

func (b *bench) gauge(ctx context.Context, u string) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0, err
	}
	resp, err := b.clients.admin.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, membershipStat+": "); ok {
			return strconv.Atoi(strings.TrimSpace(v))
		}
	}
	return 0, fmt.Errorf("no %s in %q", membershipStat, body)
}

// memory reads switchyard's heap and Envoy's memory with the pool loaded.
func (b *bench) memory(ctx context.Context, reg *Registration) error {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	reg.SwitchyardHeapBytes, reg.SwitchyardHeapInuseBytes = ms.HeapAlloc, ms.HeapInuse

	rss, err := vmRSS(b.envoy.Pid())
	if err != nil {
		return fmt.Errorf("envoy RSS: %w", err)
	}
	reg.EnvoyRSSBytes = rss
	raw, err := b.envoy.Get(ctx, "/memory")
	if err != nil {
		return fmt.Errorf("envoy /memory: %w", err)
	}
	var mem struct {
		Allocated string `json:"allocated"`
	}
	if err := json.Unmarshal(raw, &mem); err != nil {
		return fmt.Errorf("envoy /memory: %w in %q", err, raw)
	}
	if reg.EnvoyAllocatedBytes, err = strconv.ParseUint(mem.Allocated, 10, 64); err != nil {
		return fmt.Errorf("envoy /memory allocated: %w", err)
	}
	logf(b.o, "memory: switchyard heap %s live, %s in use; envoy RSS %s, allocated %s",
		mib(reg.SwitchyardHeapBytes), mib(reg.SwitchyardHeapInuseBytes), mib(reg.EnvoyRSSBytes), mib(reg.EnvoyAllocatedBytes))
	return nil
}

// vmRSS reads a process's resident set size from /proc (Linux).
func vmRSS(pid int) (uint64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10, err
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, errors.New("no VmRSS line")
}

// liveRunner is the runner that registers: a plain HTTP server that
// notes when its first request of a repeat arrives.
type liveRunner struct {
	addr  string
	srv   *http.Server
	armed atomic.Bool
	first chan time.Time
}

func startLiveRunner() (*liveRunner, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	r := &liveRunner{addr: l.Addr().String(), first: make(chan time.Time, 1)}
	r.srv = &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			now := time.Now()
			if r.armed.CompareAndSwap(true, false) {
				r.first <- now
			}
			w.Write([]byte("ok\n"))
		}),
		ReadHeaderTimeout: 10 * time.Second,
	}
	go r.srv.Serve(l)
	return r, nil
}

// reset arms the runner for the next repeat.
func (r *liveRunner) reset() {
	select {
	case <-r.first:
	default:
	}
	r.armed.Store(true)
}

func (r *liveRunner) close() { r.srv.Close() }
