package integration

import (
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/dev/natsserver"
	"github.com/switchyard/switchyard/internal/dev/simrunner"
)

// edges starts an embedded NATS and two edges (Envoy + switchyard each)
// whose configs share it, in front of the same runners.
func edges(t *testing.T, body string) (*natsserver.Server, *Stack, *Stack) {
	t.Helper()
	ns, err := natsserver.Start(natsserver.Options{StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ns.Stop)
	a := NewStack(t, StackConfig{Body: body + "cluster: {nats: ['" + ns.URL() + "'], replica: edge-a}\n"})
	b := NewStack(t, StackConfig{Body: body + "cluster: {nats: ['" + ns.URL() + "'], replica: edge-b}\n"})
	Eventually(t, 10*time.Second, "both edges connected to NATS", func() bool {
		return a.Metric("switchyard_cluster_connected") == 1 && b.Metric("switchyard_cluster_connected") == 1
	})
	return ns, a, b
}

// gpuAndExtra is pool gpu of the given runners, routed on /, and pool
// extra with no runner yet, routed on /extra.
func gpuAndExtra(maxConcurrency int, gpu []*TestRunner) string {
	return poolsYAML(poolSpec{name: "gpu", maxConcurrency: maxConcurrency, runners: gpu}) + `
  - {name: extra}
routes:
  - name: extra
    match: {prefix: /extra}
    rules: [{pool: extra}]
  - name: gen
    match: {prefix: /}
    rules: [{pool: gpu}]
`
}

// A runner registered at edge A is routed to through edge B within a
// second, and a model a runner reported through A is a hit through B.
func TestEdgesShareRunnersAndHints(t *testing.T) {
	gpu := runnersNamed(t, simrunner.Options{LoadTime: 300 * time.Millisecond}, "gpu-1", "gpu-2", "gpu-3")
	extra := StartRunner(t, "extra-1", simrunner.Options{})
	_, a, b := edges(t, gpuAndExtra(1, gpu))
	if r := b.MustDo(http.MethodPost, "/extra", nil, tinyBody); r.Status == http.StatusOK {
		t.Fatalf("pool extra answered before any runner registered: %d", r.Status)
	}
	start := time.Now()
	if code := a.Admin(http.MethodPut, "/v1/pools/extra/runners/"+extra.Addr, `{"ttl_seconds": 60}`, nil); code != http.StatusOK {
		t.Fatalf("register at A: %d", code)
	}
	took := Eventually(t, 5*time.Second, "edge B routes to the runner registered at A", func() bool {
		r, err := b.Do(http.MethodPost, "/extra", nil, tinyBody)
		return err == nil && r.Status == http.StatusOK && r.Runner() == "extra-1"
	})
	t.Logf("registered at A, served through B after %v", took.Round(time.Millisecond))
	if time.Since(start) > 5*time.Second {
		t.Errorf("registration took %v to reach edge B", time.Since(start))
	}

	first := a.MustDo(http.MethodPost, "/gen", hintHeader, tinyBody)
	if first.Status != http.StatusOK || first.Header.Get("x-switchyard-hint") != "miss" {
		t.Fatalf("first request through A: %d %q", first.Status, first.Header.Get("x-switchyard-hint"))
	}
	warm := first.Runner()
	Eventually(t, 2*time.Second, "the model loaded through A is a hit through B", func() bool {
		r, err := b.Do(http.MethodPost, "/gen", hintHeader, tinyBody)
		return err == nil && r.Status == http.StatusOK && r.Runner() == warm && r.Header.Get("x-switchyard-hint") == "hit"
	})
	loads := int64(0)
	for _, r := range gpu {
		loads += r.Stats().ColdLoads
	}
	if loads != 1 {
		t.Errorf("%d cold loads over the pool, want 1 (edge B must not load the model again)", loads)
	}

	// A drain at B is a drain at A.
	if code := b.Admin(http.MethodDelete, "/v1/pools/extra/runners/"+extra.Addr, "", nil); code != http.StatusOK {
		t.Fatalf("drain at B: %d", code)
	}
	Eventually(t, 5*time.Second, "edge A stops routing to the runner drained at B", func() bool {
		r, err := a.Do(http.MethodPost, "/extra", nil, tinyBody)
		return err == nil && r.Status != http.StatusOK
	})
}

// A runner busy with a request through edge A is busy for edge B, and when
// edge A's switchyard dies its share of the runner's work is forgotten.
func TestEdgesShareBusy(t *testing.T) {
	gpu := runnersNamed(t, simrunner.Options{LoadTime: 300 * time.Millisecond, InferTime: 2 * time.Second, Slots: 2}, "gpu-1", "gpu-2", "gpu-3")
	_, a, b := edges(t, poolsYAML(poolSpec{name: "gpu", maxConcurrency: 1, runners: gpu})+`
hints: {policy: fal}
routes:
  - name: gen
    match: {prefix: /}
    rules: [{pool: gpu}]
`)
	first := a.MustDo(http.MethodPost, "/gen", hintHeader, tinyBody)
	warm := first.Runner()
	var warmRunner *TestRunner
	for _, r := range gpu {
		if r.Stats().Name == warm {
			warmRunner = r
		}
	}
	if warmRunner == nil {
		t.Fatalf("first request through A: %d, served by %q", first.Status, warm)
	}
	Eventually(t, 2*time.Second, "the warm runner's hints known at B", func() bool {
		return slices.Contains(runnerAt(t, b, warmRunner.Addr).Hints, hintHeader["x-fal-runner-hint"])
	})
	// B's requests have ended, as far as A knows (shares travel in tens of
	// milliseconds).
	Eventually(t, 2*time.Second, "A sees the warm runner free", func() bool { return runnerAt(t, a, warmRunner.Addr).InFlight == 0 })
	long := make(chan Reply, 1)
	go func() {
		r, _ := a.Do(http.MethodPost, "/gen", hintHeader, `{"width": 1024, "height": 1024}`)
		long <- r
	}()
	Eventually(t, 5*time.Second, "warm runner busy with A's request", func() bool { return warmRunner.Stats().InFlight == 1 })
	Eventually(t, 2*time.Second, "B counts A's request on the warm runner", func() bool { return runnerAt(t, b, warmRunner.Addr).InFlight == 1 })
	r := b.MustDo(http.MethodPost, "/gen", hintHeader, tinyBody)
	if r.Runner() == warm || r.Header.Get("x-switchyard-hint") != "busy" {
		t.Errorf("through B with the warm runner busy with A's request: served by %s (%s), want another runner (busy)", r.Runner(), r.Header.Get("x-switchyard-hint"))
	}
	<-long

	// A's switchyard dies while its request is in flight: B forgets it. The
	// model is warm on two runners by now (B's busy request loaded it on
	// another), so A's request may land on either: follow the one that has it.
	Eventually(t, 5*time.Second, "every runner idle before A's second request", func() bool {
		for _, r := range gpu {
			if r.Stats().InFlight != 0 {
				return false
			}
		}
		return true
	})
	go func() {
		r, _ := a.Do(http.MethodPost, "/gen", hintHeader, `{"width": 1024, "height": 1024}`)
		long <- r
	}()
	var busy *TestRunner
	Eventually(t, 5*time.Second, "a runner busy with A's second request", func() bool {
		for _, r := range gpu {
			if r.Stats().InFlight == 1 {
				busy = r
				return true
			}
		}
		return false
	})
	Eventually(t, 2*time.Second, "B counts A's second request", func() bool { return runnerAt(t, b, busy.Addr).InFlight == 1 })
	a.KillSwitchyard()
	took := Eventually(t, 6*time.Second, "B forgets the dead replica's share", func() bool { return runnerAt(t, b, busy.Addr).InFlight == 0 })
	t.Logf("a killed replica's share forgotten after %v", took.Round(10*time.Millisecond))
	<-long
}

// runnerView is a runner as an edge's admin API lists it.
type runnerView struct {
	Address  string   `json:"address"`
	InFlight int64    `json:"in_flight"`
	Hints    []string `json:"hints"`
}

// runnerAt is the runner at addr as edge s sees it.
func runnerAt(t *testing.T, s *Stack, addr string) runnerView {
	t.Helper()
	var list struct {
		Runners []runnerView `json:"runners"`
	}
	s.Admin(http.MethodGet, "/v1/runners", "", &list)
	for _, r := range list.Runners {
		if r.Address == addr {
			return r
		}
	}
	t.Fatalf("no runner %s at %s", addr, s.AdminURL)
	return runnerView{}
}

// NATS stopped and started again under load: no request fails, and the
// edges share state again afterwards.
func TestEdgesNATSRestartUnderLoad(t *testing.T) {
	gpu := runnersNamed(t, simrunner.Options{LoadTime: 50 * time.Millisecond, InferTime: 50 * time.Millisecond}, "gpu-1", "gpu-2")
	extra := StartRunner(t, "extra-1", simrunner.Options{})
	ns, a, b := edges(t, gpuAndExtra(4, gpu))
	url := ns.URL()
	var sent, failed atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for _, s := range []*Stack{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				sent.Add(1)
				r, err := s.Do(http.MethodPost, "/gen", map[string]string{"x-fal-runner-hint": []string{"m1", "m2", "m3"}[i%3]}, tinyBody)
				if err != nil || r.Status != http.StatusOK {
					failed.Add(1)
				}
				time.Sleep(10 * time.Millisecond)
			}
		}()
	}
	time.Sleep(500 * time.Millisecond)
	ns.Stop()
	Eventually(t, 5*time.Second, "the edges see NATS gone", func() bool {
		return a.Metric("switchyard_cluster_connected") == 0 && b.Metric("switchyard_cluster_connected") == 0
	})
	time.Sleep(time.Second)
	ns2, err := natsserver.Start(natsserver.Options{StoreDir: t.TempDir(), Port: portOfURL(t, url)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ns2.Stop)
	Eventually(t, 15*time.Second, "the edges reconnected", func() bool {
		return a.Metric("switchyard_cluster_connected") == 1 && b.Metric("switchyard_cluster_connected") == 1
	})
	time.Sleep(500 * time.Millisecond)
	close(stop)
	wg.Wait()
	if failed.Load() != 0 || sent.Load() < 50 {
		t.Errorf("%d of %d requests failed while NATS restarted, want 0 of at least 50", failed.Load(), sent.Load())
	}
	t.Logf("%d requests through two edges while NATS stopped and restarted, %d failed", sent.Load(), failed.Load())
	if code := a.Admin(http.MethodPut, "/v1/pools/extra/runners/"+extra.Addr, "", nil); code != http.StatusOK {
		t.Fatalf("register at A: %d", code)
	}
	Eventually(t, 5*time.Second, "a registration after the restart reaches B", func() bool {
		r, err := b.Do(http.MethodPost, "/extra", nil, tinyBody)
		return err == nil && r.Status == http.StatusOK
	})
}

func portOfURL(t *testing.T, url string) int {
	t.Helper()
	_, port, ok := strings.Cut(strings.TrimPrefix(url, "nats://"), ":")
	n, err := strconv.Atoi(port)
	if !ok || err != nil {
		t.Fatalf("port of %q", url)
	}
	return n
}
