package integration

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/dev/simrunner"
)

// twoPools is a config body with pools a and b and two routes whose
// defaults are b (/v1/b) and a (everything else).
func twoPools(a, b []*TestRunner) string {
	list := func(rs []*TestRunner) string {
		var parts []string
		for _, r := range rs {
			parts = append(parts, "{address: "+r.Addr+"}")
		}
		return "[" + strings.Join(parts, ", ") + "]"
	}
	return fmt.Sprintf(`pools:
  - {name: a, runners: %s}
  - {name: b, max_concurrency: 2, runners: %s}
routes:
  - name: to-b
    match: {prefix: /v1/b}
    rules: [{pool: b}]
  - name: to-a
    match: {prefix: /}
    rules: [{pool: a}]
`, list(a), list(b))
}

// landsOn sends n requests to path and returns how many each runner served.
func landsOn(t *testing.T, s *Stack, n int, path string, header map[string]string) map[string]int {
	t.Helper()
	got := map[string]int{}
	for range n {
		r := s.MustDo(http.MethodPost, path, header, `{"prompt":"a cat"}`)
		if r.Status != http.StatusOK {
			t.Fatalf("POST %s: status %d: %s", path, r.Status, r.RawBody)
		}
		got[r.Runner()]++
	}
	return got
}

func TestEnvoyAcceptsEveryResource(t *testing.T) {
	a := StartRunner(t, "a1", simrunner.Options{})
	b := StartRunner(t, "b1", simrunner.Options{})
	s := NewStack(t, StackConfig{Body: twoPools([]*TestRunner{a}, []*TestRunner{b})})
	if r := s.MustDo(http.MethodGet, "/", nil, ""); r.Status != http.StatusOK {
		t.Fatalf("status %d", r.Status)
	}
	st := s.EnvoyStats()
	for _, name := range []string{
		"cluster_manager.cds.update_success", "listener_manager.lds.update_success",
		"cluster.pool_a.update_success", "cluster.pool_b.update_success",
	} {
		if st[name] < 1 {
			t.Errorf("%s = %d, want ≥ 1", name, st[name])
		}
	}
	rejected := 0
	for name, v := range st {
		if strings.HasSuffix(name, "update_rejected") {
			rejected++
			if v != 0 {
				t.Errorf("%s = %d: Envoy rejected a resource", name, v)
			}
		}
	}
	if rejected == 0 {
		t.Fatal("no update_rejected stats found: the check would prove nothing")
	}
	if st["control_plane.connected_state"] != 1 {
		t.Errorf("control_plane.connected_state = %d", st["control_plane.connected_state"])
	}
	if n := s.Metric(`switchyard_xds_nacks_total{type="Listener"}`) + s.Metric(`switchyard_xds_nacks_total{type="Cluster"}`) +
		s.Metric(`switchyard_xds_nacks_total{type="RouteConfiguration"}`) + s.Metric(`switchyard_xds_nacks_total{type="ClusterLoadAssignment"}`); n != 0 {
		t.Errorf("switchyard counted %v NACKs", n)
	}
	if got := s.Metric("switchyard_xds_connected_clients"); got != 1 {
		t.Errorf("connected clients = %v, want 1", got)
	}
}

func TestRouteDefaultsReachTheirPools(t *testing.T) {
	a1 := StartRunner(t, "a1", simrunner.Options{})
	a2 := StartRunner(t, "a2", simrunner.Options{})
	b1 := StartRunner(t, "b1", simrunner.Options{})
	s := NewStack(t, StackConfig{Body: twoPools([]*TestRunner{a1, a2}, []*TestRunner{b1})})

	got := landsOn(t, s, 20, "/v1/images", nil)
	if got["a1"]+got["a2"] != 20 || got["a1"] == 0 || got["a2"] == 0 {
		t.Errorf("route to-a: %v, want all 20 on a1 and a2, both used", got)
	}
	if got := landsOn(t, s, 10, "/v1/b/generate", nil); got["b1"] != 10 {
		t.Errorf("route to-b: %v, want all 10 on b1", got)
	}

	// A client cannot forge the decision: its copies of internal headers are
	// dropped before routing and never reach a runner.
	forged := map[string]string{
		"x-switchyard-pool":              "b",
		"x-switchyard-runner":            b1.Addr,
		"x-gateway-destination-endpoint": b1.Addr,
	}
	got = landsOn(t, s, 10, "/v1/images", forged)
	if got["b1"] != 0 {
		t.Errorf("forged headers moved requests to pool b: %v", got)
	}
	r := s.MustDo(http.MethodPost, "/v1/images", forged, `{}`)
	headers, _ := r.Body["headers"].(map[string]any)
	for name := range headers {
		if strings.HasPrefix(name, "x-switchyard-") || strings.HasPrefix(name, "x-gateway-destination-endpoint") {
			t.Errorf("internal header %s reached the runner", name)
		}
	}
	if headers == nil {
		t.Errorf("runner echoed no headers: %s", r.RawBody)
	}
}

func TestRunnerRegisteredAtRunTimeGetsTraffic(t *testing.T) {
	a1 := StartRunner(t, "a1", simrunner.Options{})
	b1 := StartRunner(t, "b1", simrunner.Options{})
	s := NewStack(t, StackConfig{Body: twoPools([]*TestRunner{a1}, []*TestRunner{b1})})
	a2 := StartRunner(t, "a2", simrunner.Options{})

	var info map[string]any
	start := time.Now()
	if code := s.Admin(http.MethodPut, "/v1/pools/a/runners/"+a2.Addr, `{"ttl_seconds": 1.5}`, &info); code != http.StatusOK {
		t.Fatalf("register: %d %v", code, info)
	}
	if info["state"] != "active" || info["source"] != "api" {
		t.Errorf("registered runner: %v", info)
	}
	// Measured: registration to the first request Envoy routes to it.
	for a2.Requests() == 0 {
		if time.Since(start) > 2*time.Second {
			t.Fatalf("a2 got no traffic within 2s of registering")
		}
		s.MustDo(http.MethodGet, "/", nil, "")
	}
	t.Logf("registration → first routed request: %v", time.Since(start).Round(time.Millisecond))

	var list struct{ Runners []map[string]any }
	s.Admin(http.MethodGet, "/v1/runners", "", &list)
	if len(list.Runners) != 3 {
		t.Errorf("runners listed: %v", list.Runners)
	}
	if got := s.Metric(`switchyard_runners{pool="a",state="active"}`); got != 2 {
		t.Errorf("active runners in a = %v, want 2", got)
	}

	// No heartbeat: after its TTL the runner is gone from Envoy and gets
	// nothing more.
	Eventually(t, 5*time.Second, "a2 removed after its TTL", func() bool {
		_, ok := s.EnvoyHosts("pool_a")[a2.Addr]
		return !ok
	})
	before := a2.Requests()
	landsOn(t, s, 20, "/", nil)
	if a2.Requests() != before {
		t.Errorf("expired runner still got %d requests", a2.Requests()-before)
	}

	// Errors are JSON with the documented codes.
	var e map[string]string
	if code := s.Admin(http.MethodPut, "/v1/pools/nope/runners/"+a2.Addr, "", &e); code != http.StatusBadRequest || e["error"] == "" {
		t.Errorf("unknown pool: %d %v", code, e)
	}
	if code := s.Admin(http.MethodPut, "/v1/pools/a/runners/runner-7:80", "", &e); code != http.StatusBadRequest || e["error"] == "" {
		t.Errorf("bad address: %d %v", code, e)
	}
	if code := s.Admin(http.MethodDelete, "/v1/pools/a/runners/127.0.0.1:1", "", &e); code != http.StatusNotFound || e["error"] == "" {
		t.Errorf("unknown runner: %d %v", code, e)
	}
}

// A runner deregistered while requests are in flight around it loses none
// of them, and gets no new ones once Envoy has the change.
func TestDeregisteredRunnerDrains(t *testing.T) {
	opts := simrunner.Options{InferTime: 150 * time.Millisecond}
	a1 := StartRunner(t, "a1", opts)
	a2 := StartRunner(t, "a2", opts)
	b1 := StartRunner(t, "b1", opts)
	s := NewStack(t, StackConfig{
		Body:   twoPools([]*TestRunner{a1}, []*TestRunner{b1}),
		Server: "drain_timeout: 3s",
	})
	if code := s.Admin(http.MethodPut, "/v1/pools/a/runners/"+a2.Addr, "", nil); code != http.StatusOK {
		t.Fatalf("register: %d", code)
	}
	Eventually(t, 5*time.Second, "a2 in Envoy", func() bool { return s.EnvoyHosts("pool_a")[a2.Addr] == "healthy" })

	const total, workers = 200, 20
	var sent, failed atomic.Int64
	var failures sync.Map
	jobs := make(chan int)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range jobs {
				r, err := s.Do(http.MethodPost, "/", nil, `{"prompt":"x"}`)
				sent.Add(1)
				if err != nil || r.Status != http.StatusOK {
					failed.Add(1)
					failures.Store(sent.Load(), fmt.Sprint(err, r.Status, r.RawBody))
				}
			}
		}()
	}
	drained := make(chan int64)
	go func() {
		for i := range total {
			if i == total/2 {
				// Deregister with requests in flight on a2.
				for a2.Stats().InFlight == 0 {
					time.Sleep(time.Millisecond)
				}
				s.Admin(http.MethodDelete, "/v1/pools/a/runners/"+a2.Addr, "", nil)
				Eventually(t, 5*time.Second, "Envoy marks a2 draining", func() bool {
					flags, ok := s.EnvoyHosts("pool_a")[a2.Addr]
					return !ok || strings.Contains(flags, "draining") || strings.Contains(flags, "failed_eds_health")
				})
				drained <- a2.Requests()
			}
			jobs <- i
		}
		close(jobs)
	}()
	atDrain := <-drained
	wg.Wait()
	if failed.Load() != 0 {
		failures.Range(func(k, v any) bool { t.Logf("request %v: %v", k, v); return true })
		t.Fatalf("%d of %d requests failed around the drain", failed.Load(), sent.Load())
	}
	if got := a2.Requests(); got != atDrain {
		t.Errorf("a2 got %d new requests after Envoy had it draining", got-atDrain)
	}
	if atDrain == 0 || a1.Requests() == 0 {
		t.Errorf("load was not spread before the drain: a1 %d, a2 %d", a1.Requests(), atDrain)
	}
	var list struct{ Runners []map[string]any }
	s.Admin(http.MethodGet, "/v1/runners", "", &list)
	t.Logf("sent %d requests: a1 %d, a2 %d (all before the drain); runners now %v", sent.Load(), a1.Requests(), a2.Requests(), list.Runners)
	// After the drain timeout it is gone.
	Eventually(t, 6*time.Second, "a2 removed after draining", func() bool {
		_, ok := s.EnvoyHosts("pool_a")[a2.Addr]
		return !ok
	})
}
