package integration

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/dev/simrunner"
	"github.com/switchyard/switchyard/internal/edgemodule"
)

var (
	moduleOnce sync.Once
	modulePath string
	moduleErr  error
)

// edgeModule builds switchyard's Envoy module from this tree, once per run.
func edgeModule(t *testing.T) string {
	t.Helper()
	moduleOnce.Do(func() {
		dir, err := os.MkdirTemp("", "switchyard-module-")
		if err != nil {
			moduleErr = err
			return
		}
		modulePath, moduleErr = edgemodule.Build(context.Background(), dir)
	})
	if moduleErr != nil {
		t.Fatal(moduleErr)
	}
	return modulePath
}

// With server.edge_module, Envoy decides in process: the rule's pool, the
// warm runner of a hint, learnt from each response as Envoy passes it on,
// with no ext_proc stream and no access-log stream; a reload keeps what
// was learnt, forged routing headers are still dropped, and requests keep
// being decided while switchyard is down.
func TestEdgeModule(t *testing.T) {
	o := simrunner.Options{LoadTime: 300 * time.Millisecond, InferTime: 200 * time.Millisecond, Slots: 1}
	small := runnersNamed(t, o, "a100-1", "a100-2", "a100-3")
	large := runnersNamed(t, o, "h100-1")
	extra := runnersNamed(t, o, "extra-1")
	body := func(limit string) string {
		return poolsYAML(poolSpec{name: "a100", runners: small}, poolSpec{name: "h100", runners: large}) + `
  - name: extra
routes:
  - name: extra
    match: {prefix: /extra}
    rules: [{pool: extra}]
  - name: images
    match: {prefix: /}
    rules:
      - when: int(headers["x-pixels"]) <= ` + limit + `
        pool: a100
      - pool: h100
`
	}
	s := NewStack(t, StackConfig{Server: "edge_module: " + edgeModule(t), Body: "responses: {explain: true}\n" + body("1048576")})

	send := func(pixels, hint string, extra map[string]string) Reply {
		t.Helper()
		h := map[string]string{"x-pixels": pixels, "x-fal-runner-hint": hint}
		for k, v := range extra {
			h[k] = v
		}
		return s.MustDo(http.MethodPost, "/gen", h, tinyBody)
	}
	// The rule, decided in Envoy.
	if r := send("262144", "flux", nil); r.Status != http.StatusOK || r.Header.Get("x-switchyard-pool") != "a100" || !strings.HasPrefix(r.Runner(), "a100-") {
		t.Fatalf("small request: %d pool %q runner %q, want 200 from a100", r.Status, r.Header.Get("x-switchyard-pool"), r.Runner())
	}
	if r := send("4194304", "flux", nil); r.Header.Get("x-switchyard-pool") != "h100" || r.Runner() != "h100-1" {
		t.Fatalf("large request: pool %q runner %q, want h100-1", r.Header.Get("x-switchyard-pool"), r.Runner())
	}
	// A forged pool header is gone before the module or the route sees it.
	if r := send("262144", "flux", map[string]string{"x-switchyard-pool": "h100"}); r.Header.Get("x-switchyard-pool") != "a100" {
		t.Fatalf("forged x-switchyard-pool: served by %q", r.Header.Get("x-switchyard-pool"))
	}

	// The decision record, for a client that asks (responses.explain).
	var rec struct{ Route, Pool, Outcome, Body string }
	if r := send("262144", "flux", map[string]string{"x-switchyard-explain": "1"}); json.Unmarshal([]byte(r.Header.Get("x-switchyard-explain")), &rec) != nil ||
		rec.Route != "images" || rec.Pool != "a100" || rec.Outcome != "hit" || rec.Body != "none" {
		t.Fatalf("x-switchyard-explain: %q, want the record of a hit on a100 by route images", r.Header.Get("x-switchyard-explain"))
	}

	// Hint affinity: a model's first request loads it somewhere (a
	// miss); every later one, sent after the last answer, lands there.
	first := send("262144", "sdxl", nil)
	if first.Header.Get("x-switchyard-hint") != "miss" {
		t.Fatalf("first sdxl request: hint %q, want miss", first.Header.Get("x-switchyard-hint"))
	}
	warm := first.Runner()
	if first.Header.Get("x-switchyard-runner") == "" {
		t.Errorf("no x-switchyard-runner on a decided response")
	}
	hits := func(n int, when string) {
		t.Helper()
		for i := range n {
			r := send("262144", "sdxl", nil)
			if r.Runner() != warm || r.Header.Get("x-switchyard-hint") != "hit" {
				t.Fatalf("%s, repeat %d: served by %s (%q), want the warm runner %s (hit)", when, i, r.Runner(), r.Header.Get("x-switchyard-hint"), warm)
			}
		}
	}
	hits(8, "learnt in Envoy")
	stats := s.EnvoyStats()
	for k, v := range stats {
		if strings.Contains(k, "ext_proc") && strings.HasSuffix(k, "streams_started") && v != 0 {
			t.Errorf("%s = %d: the module path opens no ext_proc stream", k, v)
		}
	}
	if n := s.Metric(`switchyard_decisions_total{hint="hit"}`) + s.Metric(`switchyard_decisions_total{hint="miss"}`); n != 0 {
		t.Errorf("switchyard made %v decisions; the module should have made them all", n)
	}
	// The module counts its decisions in Envoy's stats: the 13 so far, the
	// 8 repeats of sdxl among the hits.
	var counted uint64
	envoyStats := s.EnvoyStats()
	for k, v := range envoyStats {
		if strings.HasPrefix(k, "switchyard.decisions.") {
			counted += v
		}
	}
	if hits := envoyStats["switchyard.decisions.pool.a100.hint.hit"]; counted != 13 || hits < 8 {
		t.Errorf("Envoy counted %d decisions (%d hits on a100), want 13 with at least 8 hits", counted, hits)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	prom, err := s.Envoy.Get(ctx, "/stats/prometheus")
	if err != nil || !strings.Contains(string(prom), `switchyard_decisions{pool="a100",hint="hit"}`) {
		t.Errorf("Envoy's Prometheus stats lack switchyard_decisions{pool=\"a100\",hint=\"hit\"} (%v):\n%s", err, grepLines(string(prom), "switchyard"))
	}

	// A runner registered through the admin API reaches the module (ECDS):
	// it decides for it, and learns its hints.
	if code := s.Admin(http.MethodPut, "/v1/pools/extra/runners/"+extra[0].Addr, "", nil); code != http.StatusOK {
		t.Fatalf("registering: HTTP %d", code)
	}
	Eventually(t, 10*time.Second, "the module to send to the registered runner", func() bool {
		r, err := s.Do(http.MethodPost, "/extra", map[string]string{"x-fal-runner-hint": "sdxl"}, tinyBody)
		return err == nil && r.Status == http.StatusOK && r.Runner() == "extra-1" && r.Header.Get("x-switchyard-hint") == "miss"
	})
	if r := s.MustDo(http.MethodPost, "/extra", map[string]string{"x-fal-runner-hint": "sdxl"}, tinyBody); r.Runner() != "extra-1" || r.Header.Get("x-switchyard-hint") != "hit" {
		t.Fatalf("registered runner, second request: %s (%q), want extra-1 (hit)", r.Runner(), r.Header.Get("x-switchyard-hint"))
	}
	// Deregistered, it drains: the module sends it nothing new.
	if code := s.Admin(http.MethodDelete, "/v1/pools/extra/runners/"+extra[0].Addr, "", nil); code != http.StatusOK {
		t.Fatalf("deregistering: HTTP %d", code)
	}
	Eventually(t, 10*time.Second, "the module to stop deciding for the drained runner", func() bool {
		r, err := s.Do(http.MethodPost, "/extra", map[string]string{"x-fal-runner-hint": "sdxl"}, tinyBody)
		return err == nil && r.Runner() != "extra-1"
	})

	// A reload reaches the module (the limit moves) and keeps its runners' state.
	s.WriteConfig(strings.Replace(s.ReadConfig(), "<= 1048576", "<= 100", 1))
	Eventually(t, 10*time.Second, "the module to take the new rule", func() bool {
		return send("262144", "flux", nil).Header.Get("x-switchyard-pool") == "h100"
	})
	if r := send("50", "sdxl", nil); r.Runner() != warm || r.Header.Get("x-switchyard-hint") != "hit" {
		t.Fatalf("after the reload: served by %s (%q), want the warm runner %s", r.Runner(), r.Header.Get("x-switchyard-hint"), warm)
	}

	// switchyard down: Envoy goes on deciding by itself.
	s.StopSwitchyard()
	for i := range 4 {
		if r := send("50", "sdxl", nil); r.Status != http.StatusOK || r.Runner() != warm {
			t.Fatalf("switchyard down, request %d: %d from %s, want the warm runner %s", i, r.Status, r.Runner(), warm)
		}
	}
}

// Body rules through the module: the fields Envoy's json_to_metadata
// extracted, else the whole body held by the module (also when it arrives
// in chunks), with the ext_proc path's 400 and 413.
func TestEdgeModuleBody(t *testing.T) {
	small := runnersNamed(t, simrunner.Options{}, "a100-1")
	large := runnersNamed(t, simrunner.Options{}, "h100-1")
	s := NewStack(t, StackConfig{Server: "edge_module: " + edgeModule(t) + "\nmax_body_bytes: 65536", Body: poolsYAML(poolSpec{name: "a100", runners: small}, poolSpec{name: "h100", runners: large}) + `
routes:
  - name: strict
    match: {prefix: /strict}
    on_invalid_body: reject
    rules:
      - when: body.width > 512
        pool: h100
      - pool: a100
` + bodyRoutes})
	do := func(path, contentType string, body io.Reader) Reply {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, s.EdgeURL+path, body)
		req.Header.Set("content-type", contentType)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		return Reply{Status: resp.StatusCode, Header: resp.Header, RawBody: string(raw)}
	}
	// chunked sends the body in pieces with no content-length.
	chunked := func(parts ...string) io.Reader {
		var rs []io.Reader
		for _, p := range parts {
			rs = append(rs, strings.NewReader(p))
		}
		return io.MultiReader(rs...)
	}
	for _, tt := range bodyCases {
		r := do(tt.path, tt.contentType, strings.NewReader(tt.body))
		if r.Status != http.StatusOK || r.Header.Get("x-switchyard-pool") != tt.pool {
			t.Errorf("%s: status %d pool %q, want 200 from %s", tt.name, r.Status, r.Header.Get("x-switchyard-pool"), tt.pool)
		}
	}
	if r := do("/whole", "application/json", chunked(`{"a": 1,`, ` "b": 2,`, ` "c": 3}`)); r.Status != http.StatusOK || r.Header.Get("x-switchyard-pool") != "h100" {
		t.Errorf("a whole body in chunks: status %d pool %q, want 200 from h100", r.Status, r.Header.Get("x-switchyard-pool"))
	}
	if r := do("/strict", "application/json", strings.NewReader(`not json`)); r.Status != http.StatusBadRequest || !strings.Contains(r.RawBody, `"error":"invalid_body"`) {
		t.Errorf("invalid body on a rejecting route: %d %s, want 400 invalid_body", r.Status, r.RawBody)
	}
	if r := do("/strict", "application/json", strings.NewReader(`{"width": 1024}`)); r.Status != http.StatusOK || r.Header.Get("x-switchyard-pool") != "h100" {
		t.Errorf("strict route, valid body: %d pool %q", r.Status, r.Header.Get("x-switchyard-pool"))
	}
	big := `{"pad": "` + strings.Repeat("x", 70000) + `", "size": {"width": 1, "height": 1}}`
	for _, body := range []io.Reader{strings.NewReader(big), chunked(big[:40000], big[40000:])} {
		if r := do("/gen", "application/json", body); r.Status != http.StatusRequestEntityTooLarge || !strings.Contains(r.RawBody, `"error":"body_too_large"`) {
			t.Errorf("a body over max_body_bytes: %d %s, want 413 body_too_large", r.Status, r.RawBody)
		}
	}
}

// grepLines is the lines of s that contain sub.
func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
