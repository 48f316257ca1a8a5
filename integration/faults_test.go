package integration

import (
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/dev/simrunner"
)

// hungRunner accepts connections and reads requests but never answers.
type hungRunner struct {
	lis      net.Listener
	accepted atomic.Int64
	mu       sync.Mutex
	conns    []net.Conn
}

func startHungRunner(t *testing.T) *hungRunner {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h := &hungRunner{lis: lis}
	go func() {
		for {
			c, err := lis.Accept()
			if err != nil {
				return
			}
			h.accepted.Add(1)
			h.mu.Lock()
			h.conns = append(h.conns, c)
			h.mu.Unlock()
			go io.Copy(io.Discard, c) // read, never answer
		}
	}()
	t.Cleanup(func() {
		lis.Close()
		h.mu.Lock()
		defer h.mu.Unlock()
		for _, c := range h.conns {
			c.Close()
		}
	})
	return h
}

// A runner that accepts connections and never answers: the requests it
// takes end at the route's timeout with Envoy's 504 (the documented
// outcome: the request is not re-run elsewhere, since the runner may be
// working on it), and while it holds them it counts as busy, so the other
// runners get the rest of the work: it takes at most one request per
// timeout period. Its in-flight count comes back when each ends.
func TestHungRunner(t *testing.T) {
	good := runnersNamed(t, simrunner.Options{InferTime: 20 * time.Millisecond}, "gpu-1", "gpu-2")
	hung := startHungRunner(t)
	s := NewStack(t, StackConfig{Body: `pools:
  - name: gpu
    max_concurrency: 1
    runners: [{address: ` + good[0].Addr + `}, {address: ` + good[1].Addr + `}, {address: ` + hung.lis.Addr().String() + `}]
routes:
  - name: gen
    match: {prefix: /}
    timeout: 1s
    rules: [{pool: gpu}]
`})
	start := time.Now()
	var ok, timedOut, other atomic.Int64
	parallel(t, 60, 2, func(int) {
		r, err := s.Do(http.MethodPost, "/gen", nil, tinyBody)
		switch {
		case err != nil:
			other.Add(1)
		case r.Status == http.StatusOK:
			ok.Add(1)
		case r.Status == http.StatusGatewayTimeout:
			timedOut.Add(1)
		default:
			other.Add(1)
		}
	})
	took := time.Since(start)
	periods := int64(took/time.Second) + 1
	if other.Load() != 0 {
		t.Errorf("%d requests ended other than 200 or 504", other.Load())
	}
	if timedOut.Load() == 0 || timedOut.Load() > periods || hung.accepted.Load() > periods+1 {
		t.Errorf("the hung runner took %d connections and %d requests timed out in %v: want at least one, at most one per 1 s timeout (%d)",
			hung.accepted.Load(), timedOut.Load(), took.Round(time.Millisecond), periods)
	}
	if ok.Load()+timedOut.Load() != 60 {
		t.Errorf("%d answered, %d timed out, of 60", ok.Load(), timedOut.Load())
	}
	s.AssertNoneInFlight()
	t.Logf("hung runner: %d of 60 requests timed out (504) in %v, %d answered by the others", timedOut.Load(), took.Round(time.Millisecond), ok.Load())
}

// A registration storm — many clients registering and renewing a thousand
// runners as fast as they can — reaches Envoy as at most one push per
// MinPushInterval (50 ms), leaves switchyard's memory bounded, and does not
// disturb the requests routed meanwhile.
func TestRegistrationStorm(t *testing.T) {
	rs := runnersNamed(t, simrunner.Options{}, "gpu-1")
	s := NewStack(t, StackConfig{Body: poolsYAML(poolSpec{name: "gpu", runners: rs}) + `  - {name: storm}
routes:
  - name: gen
    match: {prefix: /}
    rules: [{pool: gpu}]
`})
	const clients, perClient, storm = 20, 50, 4 * time.Second
	pushesBefore := s.Metric(`switchyard_xds_pushes_total{type="ClusterLoadAssignment"}`)
	stop := make(chan struct{})
	var calls, refused atomic.Int64
	var wg sync.WaitGroup
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				addr := "127.0.0.1:" + strconv.Itoa(20000+c*perClient+i%perClient)
				req, _ := http.NewRequest(http.MethodPut, s.AdminURL+"/v1/pools/storm/runners/"+addr, strings.NewReader(`{"ttl_seconds": 60}`))
				resp, err := hc.Do(req)
				if err != nil || resp.StatusCode != http.StatusOK {
					refused.Add(1)
				}
				if resp != nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
				calls.Add(1)
			}
		}()
	}
	// Requests routed meanwhile.
	var sent, failed atomic.Int64
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			r, err := s.Do(http.MethodPost, "/gen", nil, tinyBody)
			sent.Add(1)
			if err != nil || r.Status != http.StatusOK {
				failed.Add(1)
			}
		}
	}()
	start := time.Now()
	time.Sleep(storm)
	close(stop)
	wg.Wait()
	took := time.Since(start)
	pushes := s.Metric(`switchyard_xds_pushes_total{type="ClusterLoadAssignment"}`) - pushesBefore
	rate := float64(calls.Load()) / took.Seconds()
	t.Logf("registration storm: %d registrations and renewals in %v (%.0f/s), %d EDS pushes, %d requests routed meanwhile",
		calls.Load(), took.Round(time.Millisecond), rate, int(pushes), sent.Load())
	if refused.Load() != 0 || calls.Load() < 2000 {
		t.Fatalf("%d of %d registrations refused: the storm did not happen as meant", refused.Load(), calls.Load())
	}
	if limit := took.Seconds()/0.05 + 5; pushes > limit {
		t.Errorf("%d EDS pushes in %v: more than one per 50 ms (%v)", int(pushes), took, limit)
	}
	if failed.Load() != 0 || sent.Load() < 50 {
		t.Errorf("%d of %d requests routed during the storm failed", failed.Load(), sent.Load())
	}
	Eventually(t, 10*time.Second, "Envoy has every storm runner", func() bool { return len(s.EnvoyHosts("pool_storm")) == clients*perClient })
	if heap := s.Metric("go_memstats_heap_inuse_bytes"); heap > 256<<20 {
		t.Errorf("switchyard's heap after the storm: %.0f MiB", heap/(1<<20))
	}
}

// The busiest runner of a pool of three crashes with requests in flight
// and more on their way: the requests it had started get Envoy's 503 (an inference is
// never run twice), every later request is answered by the others — those
// sent to the dead runner's address are retried on the next runner of the
// list — and no in-flight count is left behind.
func TestRunnerKilledInPool(t *testing.T) {
	o := simrunner.Options{InferTime: 2 * time.Second}
	rs := []*TestRunner{StartRunner(t, "gpu-1", o), StartRunner(t, "gpu-2", o), StartRunner(t, "gpu-3", o)}
	s := NewStack(t, StackConfig{Body: poolsYAML(poolSpec{name: "gpu", maxConcurrency: 4, runners: rs}) + `
routes:
  - name: gen
    match: {prefix: /}
    rules: [{pool: gpu}]
`})
	// Six long requests, spread over the runners.
	type outcome struct {
		status int
		runner string
	}
	started := make(chan outcome, 6)
	for range 6 {
		go func() {
			r, err := s.Do(http.MethodPost, "/gen", nil, `{"width": 1024, "height": 1024}`)
			if err != nil {
				started <- outcome{status: -1}
				return
			}
			started <- outcome{r.Status, r.Runner()}
		}()
	}
	Eventually(t, 5*time.Second, "all six requests on the runners", func() bool {
		var n int64
		for _, r := range rs {
			n += r.Stats().InFlight
		}
		return n == 6
	})
	// The busiest runner crashes.
	dead := rs[0]
	for _, r := range rs[1:] {
		if r.Stats().InFlight > dead.Stats().InFlight {
			dead = r
		}
	}
	lost := int(dead.Stats().InFlight)
	deadName := dead.Stats().Name
	dead.Stop()
	// Short requests keep coming while its registration stands: all answered.
	for i := range 20 {
		r := s.MustDo(http.MethodPost, "/gen", nil, `{"width": 64, "height": 64}`)
		if r.Status != http.StatusOK || r.Runner() == deadName {
			t.Errorf("request %d after the crash: status %d from %q, want 200 from another runner", i, r.Status, r.Runner())
		}
	}
	var crashed, answered int
	for range 6 {
		o := <-started
		switch {
		case o.status == http.StatusServiceUnavailable:
			crashed++
		case o.status == http.StatusOK && o.runner != deadName:
			answered++
		default:
			t.Errorf("a long request ended %d from %q", o.status, o.runner)
		}
	}
	if crashed != lost || answered != 6-lost {
		t.Errorf("long requests: %d got 503, %d answered; want the crashed runner's %d and the others' %d", crashed, answered, lost, 6-lost)
	}
	if got := s.EnvoyStats()["cluster.pool_gpu.upstream_rq_retry"]; got == 0 {
		t.Error("no request was retried off the dead runner: the test did not exercise the retry")
	}
	s.AssertNoneInFlight()
}
