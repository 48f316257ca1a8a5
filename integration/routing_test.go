package integration

import (
	"context"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/dev/simrunner"
)

// poolsYAML renders pools: name → runners, with optional extra keys.
func poolsYAML(pools ...poolSpec) string {
	var b strings.Builder
	b.WriteString("pools:\n")
	for _, p := range pools {
		var addrs []string
		for _, r := range p.runners {
			addrs = append(addrs, "{address: "+r.Addr+"}")
		}
		fmt.Fprintf(&b, "  - {name: %s, max_concurrency: %d, runners: [%s]}\n", p.name, max(p.maxConcurrency, 1), strings.Join(addrs, ", "))
	}
	return b.String()
}

type poolSpec struct {
	name           string
	maxConcurrency int
	runners        []*TestRunner
}

func runnersNamed(t *testing.T, o simrunner.Options, names ...string) []*TestRunner {
	var out []*TestRunner
	for _, n := range names {
		out = append(out, StartRunner(t, n, o))
	}
	return out
}

func inPool(name string, rs []*TestRunner) bool {
	for _, r := range rs {
		if r.Stats().Name == name {
			return true
		}
	}
	return false
}

// The seeds' size routing: small images to one pool, large to another,
// decided on body fields (the buffered-body path).
func TestSizeRouting(t *testing.T) {
	small := runnersNamed(t, simrunner.Options{}, "a100-1", "a100-2")
	large := runnersNamed(t, simrunner.Options{}, "h100-1")
	s := NewStack(t, StackConfig{Body: poolsYAML(poolSpec{name: "a100", runners: small}, poolSpec{name: "h100", runners: large}) + `
routes:
  - name: images
    match: {prefix: /}
    hint_from: body.model
    rules:
      - when: body.width * body.height <= 1048576
        pool: a100
      - pool: h100
`})
	tests := []struct {
		name, body, pool string
	}{
		{"small", `{"model": "flux", "width": 512, "height": 512}`, "a100"},
		{"exactly one megapixel", `{"model": "flux", "width": 1024, "height": 1024}`, "a100"},
		{"just over", `{"model": "flux", "width": 1025, "height": 1024}`, "h100"},
		{"large", `{"model": "flux", "width": 2048, "height": 2048}`, "h100"},
		{"a fraction does not mix with integer arithmetic", `{"width": 512.5, "height": 512}`, "h100"},
		{"missing height", `{"model": "flux", "width": 512}`, "h100"},
		{"wrong type", `{"width": "wide", "height": 512}`, "h100"},
		{"not json", `width=512&height=512`, "h100"},
		{"json array", `[512, 512]`, "h100"},
		{"no body", ``, "h100"},
	}
	for _, tt := range tests {
		r := s.MustDo(http.MethodPost, "/v1/generate", nil, tt.body)
		if r.Status != http.StatusOK {
			t.Errorf("%s: status %d %s", tt.name, r.Status, r.RawBody)
			continue
		}
		if got := r.Header.Get("x-switchyard-pool"); got != tt.pool {
			t.Errorf("%s: x-switchyard-pool %q, want %q", tt.name, got, tt.pool)
		}
		want := small
		if tt.pool == "h100" {
			want = large
		}
		if !inPool(r.Runner(), want) {
			t.Errorf("%s: served by %q, not a runner of %s", tt.name, r.Runner(), tt.pool)
		}
		if r.Header.Get("x-switchyard-runner") == "" || r.Header.Get("x-switchyard-hint") == "" {
			t.Errorf("%s: decision headers missing: %v", tt.name, r.Header)
		}
		if r.Header.Get("x-fal-runner-hints") != "" {
			t.Errorf("%s: the runner's hints reached the client", tt.name)
		}
	}
	// A 4 KB and a 1 MB body arrive intact and route on fields at their end.
	for _, size := range []int{4 << 10, 1 << 20} {
		body := fmt.Sprintf(`{"image": "%s", "model": "flux", "width": 256, "height": 256}`, strings.Repeat("A", size))
		r := s.MustDo(http.MethodPost, "/v1/generate", nil, body)
		if r.Status != http.StatusOK || r.Header.Get("x-switchyard-pool") != "a100" || r.Body["model"] != "flux" {
			t.Errorf("%d-byte body: status %d pool %q model %v", size, r.Status, r.Header.Get("x-switchyard-pool"), r.Body["model"])
		}
	}
}

// 80/20 over 5,000 requests lands within ±3 points; with a sticky key each
// user keeps one variant.
func TestABSplit(t *testing.T) {
	v1 := runnersNamed(t, simrunner.Options{}, "v1-a", "v1-b")
	v2 := runnersNamed(t, simrunner.Options{}, "v2-a")
	s := NewStack(t, StackConfig{Body: poolsYAML(poolSpec{name: "model-v1", maxConcurrency: 64, runners: v1}, poolSpec{name: "model-v2", maxConcurrency: 64, runners: v2}) + `
routes:
  - name: sticky
    match: {prefix: /v1/sticky}
    rules:
      - split:
          sticky_key: headers["x-user-id"]
          weights: {model-v1: 80, model-v2: 20}
  - name: ab
    match: {prefix: /}
    rules:
      - split: {weights: {model-v1: 80, model-v2: 20}}
`})
	const total = 5000
	var toV2, bad atomic.Int64
	parallel(t, total, 16, func(int) {
		r, err := s.Do(http.MethodPost, "/v1/ab", nil, `{}`)
		if err != nil || r.Status != http.StatusOK {
			bad.Add(1)
			return
		}
		variant := r.Header.Get("x-switchyard-variant")
		if variant != r.Header.Get("x-switchyard-pool") || (variant == "model-v2") != inPool(r.Runner(), v2) {
			bad.Add(1)
		}
		if variant == "model-v2" {
			toV2.Add(1)
		}
	})
	if bad.Load() != 0 {
		t.Fatalf("%d requests failed or landed off their variant", bad.Load())
	}
	share := 100 * float64(toV2.Load()) / total
	t.Logf("A/B: %.2f%% of %d requests to model-v2 (weight 20)", share, total)
	if math.Abs(share-20) > 3 {
		t.Errorf("model-v2 got %.2f%%, want 20 ± 3", share)
	}
	// Runner truth agrees with the headers.
	var servedV2 int64
	for _, r := range v2 {
		servedV2 += r.Requests()
	}
	if servedV2 != toV2.Load() {
		t.Errorf("model-v2 runners served %d, headers said %d", servedV2, toV2.Load())
	}

	const users = 300
	variantOf := make([]string, users)
	inconsistent := 0
	for round := range 3 {
		for u := range users {
			r := s.MustDo(http.MethodPost, "/v1/sticky", map[string]string{"x-user-id": fmt.Sprintf("user-%d", u)}, `{}`)
			v := r.Header.Get("x-switchyard-variant")
			if round == 0 {
				variantOf[u] = v
			} else if v != variantOf[u] {
				inconsistent++
			}
		}
	}
	if inconsistent != 0 {
		t.Errorf("%d sticky requests changed variant", inconsistent)
	}
	v2Users := 0
	for _, v := range variantOf {
		if v == "model-v2" {
			v2Users++
		}
	}
	if v2Users < users*10/100 || v2Users > users*30/100 {
		t.Errorf("%d of %d sticky users on model-v2, want about 20%%", v2Users, users)
	}
}

// parallel runs n calls of f over workers goroutines.
func parallel(t *testing.T, n, workers int, f func(i int)) {
	t.Helper()
	jobs := make(chan int)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				f(i)
			}
		}()
	}
	for i := range n {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
}

// deadAddr is a loopback address where nothing listens.
func deadAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// When the chosen pool fails, the same request, body intact, is served by
// the fallback pool and the client sees no error.
func TestFallback(t *testing.T) {
	backup := runnersNamed(t, simrunner.Options{}, "a6000-1")
	// Pool h100's runners are dead; pool l40's only runner answers 503
	// when it already serves a request.
	overloaded := StartRunner(t, "l40-1", simrunner.Options{InferTime: 200 * time.Millisecond, MaxConcurrency: 1, Overload: simrunner.OverloadReject})
	s := NewStack(t, StackConfig{Body: fmt.Sprintf(`pools:
  - {name: h100, runners: [{address: %s}, {address: %s}]}
  - {name: l40, max_concurrency: 8, runners: [{address: %s}]}
  - {name: a6000, max_concurrency: 8, runners: [{address: %s}]}
routes:
  - name: busy
    match: {prefix: /v1/l40}
    rules: [{pool: l40, fallback: [a6000]}]
  - name: images
    match: {prefix: /}
    rules:
      - pool: h100
        fallback: [a6000]
`, deadAddr(t), deadAddr(t), overloaded.Addr, backup[0].Addr)})

	prompt := strings.Repeat("p", 100<<10)
	var failed atomic.Int64
	parallel(t, 40, 4, func(i int) {
		model := fmt.Sprintf("model-%d", i%4)
		r, err := s.Do(http.MethodPost, "/v1/generate", nil, fmt.Sprintf(`{"model": %q, "prompt": %q}`, model, prompt))
		if err != nil || r.Status != http.StatusOK || r.Runner() != "a6000-1" || r.Body["model"] != model {
			failed.Add(1)
			t.Logf("request %d: %v %d runner %q model %v", i, err, r.Status, r.Runner(), r.Body["model"])
			return
		}
		if got := r.Header.Get("x-switchyard-pool"); got != "a6000" {
			t.Errorf("x-switchyard-pool = %q, want the pool that served, a6000", got)
		}
	})
	if failed.Load() != 0 {
		t.Fatalf("%d of 40 requests to a dead pool were not served by the fallback", failed.Load())
	}

	before := backup[0].Requests()
	var served503 atomic.Int64
	parallel(t, 20, 4, func(int) {
		r, err := s.Do(http.MethodPost, "/v1/l40/generate", nil, `{"model": "m"}`)
		if err != nil || r.Status != http.StatusOK {
			failed.Add(1)
			return
		}
		if r.Runner() == "a6000-1" {
			served503.Add(1)
		}
	})
	if failed.Load() != 0 {
		t.Fatalf("%d requests failed while l40 answered 503", failed.Load())
	}
	// A 503 is retried once in the pool, then the request goes to the
	// fallback pool: every request that l40 did not serve, a6000 did.
	rejected := overloaded.Stats().Rejected
	servedByL40 := overloaded.Stats().Requests - rejected
	if rejected == 0 || served503.Load() == 0 || servedByL40+served503.Load() != 20 || backup[0].Requests()-before != served503.Load() {
		t.Errorf("l40 served %d and rejected %d with 503; fallback served %d (its runner counted %d)",
			servedByL40, rejected, served503.Load(), backup[0].Requests()-before)
	}
	t.Logf("fallback: 40/40 requests to a dead pool and %d/20 rejected by an overloaded one served by the fallback pool", served503.Load())
}

// A repeated hint lands on the runner that reported it; a busy matching
// runner is passed over at once.
// hintStack starts one pool of three runners (2 model slots, max_concurrency
// 1) under the hint policy, sends a hinted request (a miss) and ten more
// (hits on the same runner), and returns the stack, the warm runner's name
// and the warm runner.
func hintStack(t *testing.T, policy string) (*Stack, string, *TestRunner, []*TestRunner) {
	t.Helper()
	o := simrunner.Options{LoadTime: 300 * time.Millisecond, InferTime: 2 * time.Second, Slots: 2}
	rs := runnersNamed(t, o, "gpu-1", "gpu-2", "gpu-3")
	s := NewStack(t, StackConfig{Body: poolsYAML(poolSpec{name: "gpu", maxConcurrency: 1, runners: rs}) + `
hints: {policy: ` + policy + `}
routes:
  - name: gen
    match: {prefix: /}
    rules: [{pool: gpu}]
`})
	first := s.MustDo(http.MethodPost, "/gen", hintHeader, tinyBody)
	if first.Status != http.StatusOK || first.Header.Get("x-switchyard-hint") != "miss" {
		t.Fatalf("first request: %d %q", first.Status, first.Header.Get("x-switchyard-hint"))
	}
	warm := first.Runner()
	for i := range 10 {
		s.Settle(0)
		r := s.MustDo(http.MethodPost, "/gen", hintHeader, tinyBody)
		if r.Runner() != warm || r.Header.Get("x-switchyard-hint") != "hit" {
			t.Fatalf("repeat %d: served by %s (%s), want the warm runner %s (hit)", i, r.Runner(), r.Header.Get("x-switchyard-hint"), warm)
		}
	}
	s.Settle(0)
	var warmRunner *TestRunner
	for _, r := range rs {
		if r.Stats().Name == warm {
			warmRunner = r
		}
	}
	if st := warmRunner.Stats(); st.Hits != 10 || st.ColdLoads != 1 {
		t.Errorf("warm runner counted %d hits and %d cold loads, want 10 and 1", st.Hits, st.ColdLoads)
	}
	return s, warm, warmRunner, rs
}

var hintHeader = map[string]string{"x-fal-runner-hint": "flux-dev"}

const tinyBody = `{"width": 64, "height": 64}` // 0.1 x InferTime

// busyWarmRunner keeps the warm runner busy with a 2 s inference, sends one
// more hinted request and returns its reply, how long it took and the long
// request's reply.
func busyWarmRunner(t *testing.T, s *Stack, warmRunner *TestRunner) (Reply, time.Duration, Reply) {
	t.Helper()
	done := make(chan Reply, 1)
	go func() {
		r, _ := s.Do(http.MethodPost, "/gen", hintHeader, `{"width": 1024, "height": 1024}`)
		done <- r
	}()
	Eventually(t, 5*time.Second, "warm runner busy", func() bool { return warmRunner.Stats().InFlight == 1 })
	start := time.Now()
	r := s.MustDo(http.MethodPost, "/gen", hintHeader, tinyBody)
	return r, time.Since(start), <-done
}

// fal's rule: a non-busy runner holding the hint, else any non-busy runner
// at once.
func TestHintAffinityFal(t *testing.T) {
	s, warm, warmRunner, _ := hintStack(t, "fal")
	r, took, long := busyWarmRunner(t, s, warmRunner)
	if r.Runner() == warm || r.Header.Get("x-switchyard-hint") != "busy" {
		t.Errorf("with the warm runner busy: served by %s (%s), want another runner (busy)", r.Runner(), r.Header.Get("x-switchyard-hint"))
	}
	if took > 1500*time.Millisecond {
		t.Errorf("the request waited %v for the busy runner instead of going elsewhere at once", took)
	}
	if long.Runner() != warm {
		t.Errorf("the long request ran on %s, want %s", long.Runner(), warm)
	}
	t.Logf("busy warm runner passed over: answered by %s in %v (a cold load of 300ms + 200ms inference)", r.Runner(), took.Round(time.Millisecond))
}

// The default policy, soonest: the warm runner is expected to be free
// sooner than a model load elsewhere (switchyard learnt that hits take
// about 200 ms and loads 300 ms more), so the request is sent to it although
// it is busy, and no runner loads the model again.
func TestHintAffinitySoonest(t *testing.T) {
	s, warm, warmRunner, rs := hintStack(t, "soonest")
	r, took, long := busyWarmRunner(t, s, warmRunner)
	if r.Runner() != warm || r.Header.Get("x-switchyard-hint") != "hit" {
		t.Errorf("with the warm runner busy: served by %s (%s), want the warm runner %s (hit)", r.Runner(), r.Header.Get("x-switchyard-hint"), warm)
	}
	if long.Runner() != warm {
		t.Errorf("the long request ran on %s, want %s", long.Runner(), warm)
	}
	loads := int64(0)
	for _, x := range rs {
		loads += x.Stats().ColdLoads
	}
	if loads != 1 {
		t.Errorf("%d cold loads over the pool, want 1", loads)
	}
	if q := s.Metric("switchyard_queued_decisions_total"); q != 1 {
		t.Errorf("switchyard_queued_decisions_total = %v, want 1", q)
	}
	t.Logf("waited for the busy warm runner: answered by %s in %v", r.Runner(), took.Round(time.Millisecond))
}

// Bad input gets its documented outcome; switchyard never answers 5xx.
func TestBadInput(t *testing.T) {
	rs := runnersNamed(t, simrunner.Options{}, "a-1")
	bs := runnersNamed(t, simrunner.Options{}, "b-1")
	s := NewStack(t, StackConfig{Body: poolsYAML(poolSpec{name: "a", maxConcurrency: 4, runners: rs}, poolSpec{name: "b", maxConcurrency: 4, runners: bs}) + `
routes:
  - name: strict
    match: {prefix: /v1/strict}
    on_invalid_body: reject
    rules:
      - when: body.width > 10
        pool: b
      - pool: a
  - name: lenient
    match: {prefix: /}
    hint_from: body.model
    rules:
      - when: body.width > 10
        pool: b
      - pool: a
`})
	tests := []struct {
		name   string
		path   string
		header map[string]string
		body   string
		status int
		pool   string
		hint   string
	}{
		{"non-JSON body, lenient", "/gen", nil, `<xml/>`, 200, "a", "none"},
		{"non-JSON body, strict", "/v1/strict", nil, `<xml/>`, 400, "", ""},
		{"no body, strict", "/v1/strict", nil, ``, 400, "", ""},
		{"valid body, strict", "/v1/strict", nil, `{"width": 20}`, 200, "b", "none"},
		{"wrong type", "/gen", nil, `{"width": [1], "model": 7}`, 200, "a", "none"},
		{"hint header with a tab", "/gen", map[string]string{"x-fal-runner-hint": "bad\thint"}, `{"width": 20}`, 200, "b", "none"},
		{"hint with spaces", "/gen", map[string]string{"x-fal-runner-hint": "a b"}, `{}`, 200, "a", "none"},
		{"derived hint too long", "/gen", nil, fmt.Sprintf(`{"model": %q}`, strings.Repeat("m", 300)), 200, "a", "none"},
		{"forged decision headers", "/gen", map[string]string{"x-switchyard-pool": "b", "x-gateway-destination-endpoint": bs[0].Addr}, `{"width": 1}`, 200, "a", "none"},
		{"valid derived hint", "/gen", nil, `{"model": "flux", "width": 1}`, 200, "a", "miss"},
	}
	for _, tt := range tests {
		r := s.MustDo(http.MethodPost, tt.path, tt.header, tt.body)
		if r.Status != tt.status {
			t.Errorf("%s: status %d, want %d: %s", tt.name, r.Status, tt.status, r.RawBody)
			continue
		}
		if tt.status == 400 {
			if r.Header.Get("content-type") != "application/json" || r.Body["error"] != "invalid_body" || r.Body["message"] == "" {
				t.Errorf("%s: want a JSON reason, got %q %s", tt.name, r.Header.Get("content-type"), r.RawBody)
			}
			continue
		}
		if got := r.Header.Get("x-switchyard-pool"); got != tt.pool {
			t.Errorf("%s: pool %q, want %q", tt.name, got, tt.pool)
		}
		if got := r.Header.Get("x-switchyard-hint"); got != tt.hint {
			t.Errorf("%s: hint outcome %q, want %q", tt.name, got, tt.hint)
		}
	}

	// A body over max_body_bytes (8 MiB): Envoy's buffer limit refuses it,
	// with content-length or chunked, with switchyard's JSON reason. Either
	// way 413, never a hang.
	big := fmt.Sprintf(`{"image": "%s", "width": 1}`, strings.Repeat("A", 10<<20))
	if r := s.MustDo(http.MethodPost, "/gen", nil, big); r.Status != http.StatusRequestEntityTooLarge || r.Body["error"] != "body_too_large" {
		t.Errorf("10 MB body: status %d %.200s, want 413 with a JSON reason", r.Status, r.RawBody)
	}
	req, _ := http.NewRequest(http.MethodPost, s.EdgeURL+"/gen", io.MultiReader(strings.NewReader(big)))
	if resp, err := client.Do(req); err != nil {
		t.Errorf("10 MB chunked body: %v", err)
	} else {
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestEntityTooLarge {
			t.Errorf("10 MB chunked body: status %d, want 413", resp.StatusCode)
		}
	}
	// Just under the limit still routes on its fields.
	fits := fmt.Sprintf(`{"image": "%s", "width": 20}`, strings.Repeat("A", 8<<20-64))
	if r := s.MustDo(http.MethodPost, "/gen", nil, fits); r.Status != http.StatusOK || r.Header.Get("x-switchyard-pool") != "b" {
		t.Errorf("8 MiB body: status %d pool %q", r.Status, r.Header.Get("x-switchyard-pool"))
	}
	// A 100 KB hint header is over Envoy's header limit: 431, before switchyard.
	if r, err := s.Do(http.MethodPost, "/gen", map[string]string{"x-fal-runner-hint": strings.Repeat("h", 100<<10)}, `{}`); err == nil && r.Status < 400 {
		t.Errorf("100 KB hint header: status %d, want it refused", r.Status)
	} else if err == nil && r.Status >= 500 {
		t.Errorf("100 KB hint header: status %d", r.Status)
	}
	// The 400s are switchyard's; the 413s are Envoy's (the route's body
	// buffer limit, before switchyard sees the request), with the same
	// JSON reason.
	if got := s.Metric("switchyard_rejected_requests_total"); got != 2 {
		t.Errorf("rejected requests counted: %v, want 2 (two 400s)", got)
	}
	if got := s.EnvoyStats()["http.public.downstream_rq_too_large"]; got != 2 {
		t.Errorf("Envoy's downstream_rq_too_large = %d, want 2", got)
	}
}

// Every way a request can end gives its in-flight count back.
func TestInFlightNeverLeaks(t *testing.T) {
	slow := StartRunner(t, "slow", simrunner.Options{InferTime: 400 * time.Millisecond})
	reject := StartRunner(t, "reject", simrunner.Options{InferTime: 300 * time.Millisecond, MaxConcurrency: 1, Overload: simrunner.OverloadReject})
	dying := StartRunner(t, "dying", simrunner.Options{InferTime: 300 * time.Millisecond})
	s := NewStack(t, StackConfig{Body: poolsYAML(
		poolSpec{name: "slow", maxConcurrency: 100, runners: []*TestRunner{slow}},
		poolSpec{name: "reject", maxConcurrency: 100, runners: []*TestRunner{reject}},
		poolSpec{name: "dying", maxConcurrency: 100, runners: []*TestRunner{dying}},
	) + `
routes:
  - {name: slow, match: {prefix: /slow}, rules: [{pool: slow}]}
  - {name: reject, match: {prefix: /reject}, rules: [{pool: reject}]}
  - {name: dying, match: {prefix: /dying}, rules: [{pool: dying}]}
`})
	// Clients that give up before the answer.
	parallel(t, 10, 10, func(int) {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, s.EdgeURL+"/slow", strings.NewReader(`{}`))
		if resp, err := client.Do(req); err == nil {
			resp.Body.Close()
		}
	})
	// 503s from an overloaded runner.
	var got503 atomic.Int64
	parallel(t, 10, 10, func(int) {
		if r, err := s.Do(http.MethodPost, "/reject", nil, `{}`); err == nil && r.Status == 503 {
			got503.Add(1)
		}
	})
	// A runner that dies mid-request (connections reset).
	var resetSeen atomic.Int64
	var wg sync.WaitGroup
	for range 5 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if r, err := s.Do(http.MethodPost, "/dying", nil, `{}`); err != nil || r.Status >= 500 {
				resetSeen.Add(1)
			}
		}()
	}
	Eventually(t, 5*time.Second, "requests in flight on the dying runner", func() bool { return dying.Stats().InFlight == 5 })
	dying.Stop()
	wg.Wait()
	if got503.Load() == 0 || resetSeen.Load() != 5 {
		t.Fatalf("the failures did not happen: %d 503s, %d resets", got503.Load(), resetSeen.Load())
	}
	Eventually(t, 5*time.Second, "every in-flight count back to 0", func() bool {
		var list struct{ Runners []map[string]any }
		s.Admin(http.MethodGet, "/v1/runners", "", &list)
		for _, r := range list.Runners {
			if r["in_flight"].(float64) != 0 {
				return false
			}
		}
		return len(list.Runners) == 3
	})
}

// Switchyard down: Envoy fails open to each route's default pool, and a
// client still cannot forge a decision.
func TestFailOpen(t *testing.T) {
	small := runnersNamed(t, simrunner.Options{}, "a100-1")
	large := runnersNamed(t, simrunner.Options{}, "h100-1")
	s := NewStack(t, StackConfig{Body: poolsYAML(poolSpec{name: "a100", runners: small}, poolSpec{name: "h100", runners: large}) + `
routes:
  - name: images
    match: {prefix: /}
    rules:
      - when: body.width * body.height <= 1048576
        pool: a100
      - pool: h100
`})
	smallBody := `{"width": 512, "height": 512}`
	if r := s.MustDo(http.MethodPost, "/gen", nil, smallBody); r.Runner() != "a100-1" {
		t.Fatalf("with switchyard up, a small image went to %s", r.Runner())
	}
	s.KillSwitchyard()
	for i := range 20 {
		header := map[string]string(nil)
		if i%2 == 1 {
			header = map[string]string{"x-switchyard-pool": "a100", "x-gateway-destination-endpoint": small[0].Addr}
		}
		r := s.MustDo(http.MethodPost, "/gen", header, smallBody)
		if r.Status != http.StatusOK || r.Runner() != "h100-1" {
			t.Fatalf("request %d with switchyard down: status %d runner %q, want 200 from the default pool h100", i, r.Status, r.Runner())
		}
		// Nothing was decided, so no hint outcome; Envoy still names the
		// pool and runner that served (the route's default).
		if r.Header.Get("x-switchyard-hint") != "" || r.Header.Get("x-switchyard-pool") != "h100" || r.Header.Get("x-switchyard-runner") != large[0].Addr {
			t.Fatalf("decision headers without switchyard: %v", r.Header)
		}
	}
	if got := s.EnvoyStats()["http.public.ext_proc.failure_mode_allowed"]; got < 20 {
		t.Errorf("ext_proc failure_mode_allowed = %d, want ≥ 20", got)
	}
	s.StartSwitchyard()
	Eventually(t, 10*time.Second, "decisions resume", func() bool {
		return s.MustDo(http.MethodPost, "/gen", nil, smallBody).Runner() == "a100-1"
	})
}

// Pools can use Envoy's own balancers instead of switchyard's pick; the
// consistent-hash ones key on the hint header.
func TestEnvoyBalancers(t *testing.T) {
	rr := runnersNamed(t, simrunner.Options{}, "rr-1", "rr-2", "rr-3")
	mg := runnersNamed(t, simrunner.Options{}, "mg-1", "mg-2", "mg-3")
	rh := runnersNamed(t, simrunner.Options{}, "rh-1", "rh-2", "rh-3")
	list := func(rs []*TestRunner) string {
		var parts []string
		for _, r := range rs {
			parts = append(parts, "{address: "+r.Addr+"}")
		}
		return strings.Join(parts, ", ")
	}
	s := NewStack(t, StackConfig{Body: fmt.Sprintf(`pools:
  - {name: rr, runners: [%s], load_balancer: {policy: round_robin}}
  - {name: mg, runners: [%s], load_balancer: {policy: maglev, hash_balance_factor: 150}}
  - {name: rh, runners: [%s], load_balancer: {policy: ring_hash}}
routes:
  - {name: mg, match: {prefix: /mg}, rules: [{pool: mg}]}
  - {name: rh, match: {prefix: /rh}, rules: [{pool: rh}]}
  - {name: rr, match: {prefix: /}, rules: [{pool: rr}]}
`, list(rr), list(mg), list(rh))})
	got := landsOn(t, s, 30, "/x", nil)
	if len(got) != 3 {
		t.Errorf("round_robin used %v, want all three runners", got)
	}
	for _, prefix := range []string{"/mg", "/rh"} {
		for _, hint := range []string{"flux", "sdxl", "sd3"} {
			got := landsOn(t, s, 8, prefix+"/x", map[string]string{"x-fal-runner-hint": hint})
			if len(got) != 1 {
				t.Errorf("%s with hint %s landed on %v, want one runner", prefix, hint, got)
			}
		}
	}
	for name, v := range s.EnvoyStats() {
		if strings.HasSuffix(name, "update_rejected") && v != 0 {
			t.Errorf("%s = %d", name, v)
		}
	}
}

// The loading_marks policy's old name, "switchyard", still routes as
// loading_marks for one release (a busy warm runner is passed over at
// once), and switchyard's log says it is deprecated.
func TestHintPolicyOldName(t *testing.T) {
	s, warm, warmRunner, _ := hintStack(t, "switchyard")
	r, _, _ := busyWarmRunner(t, s, warmRunner)
	if r.Runner() == warm || r.Header.Get("x-switchyard-hint") != "busy" {
		t.Errorf("with the warm runner busy: served by %s (%s), want another runner (busy)", r.Runner(), r.Header.Get("x-switchyard-hint"))
	}
	if want := `hints.policy: \"switchyard\" is deprecated`; !strings.Contains(s.swLog.String(), want) {
		t.Errorf("switchyard's log lacks %q:\n%s", want, s.swLog.String())
	}
}
