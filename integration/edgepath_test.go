package integration

import (
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/internal/dev/simrunner"
)

// bodyRoutes route on body fields (images, whose hint is body.model) and on
// the whole body (whole), to pools a100 and h100: for the tests of both ways
// of deciding (ext_proc and the module).
const bodyRoutes = `  - name: whole
    match: {prefix: /whole}
    rules:
      - when: size(body) > 2
        pool: h100
      - pool: a100
  - name: images
    match: {prefix: /}
    hint_from: body.model
    rules:
      - when: body.size.width * body.size.height <= 1048576
        pool: a100
      - pool: h100
`

// bodyCases are requests to bodyRoutes and the pool each must reach;
// viaFields: Envoy can extract the fields the rules read.
var bodyCases = []struct {
	name, path, contentType, body, pool string
	viaFields                           bool
}{
	{"fields, small", "/gen", "application/json", `{"model": "flux", "image": "AAAA", "size": {"width": 512, "height": 512}}`, "a100", true},
	{"fields, large", "/gen", "application/json; charset=utf-8", `{"size": {"width": 2048, "height": 2048.0}, "model": "flux"}`, "h100", true},
	{"a field missing: the whole body", "/gen", "application/json", `{"size": {"width": 512, "height": 512}}`, "a100", false},
	{"an object where a string is read: the whole body", "/gen", "application/json", `{"model": {"name": "x"}, "size": {"width": 512, "height": 512}}`, "a100", false},
	{"not sent as JSON: the whole body", "/gen", "text/plain", `{"model": "flux", "size": {"width": 512, "height": 4096}}`, "h100", false},
	{"not JSON: the whole body, the default rule", "/gen", "application/json", `size=1`, "h100", false},
	{"a whole-body rule", "/whole", "application/json", `{"a": 1, "b": 2, "c": 3}`, "h100", false},
	{"a whole-body rule, small", "/whole", "application/json", `{"a": 1}`, "a100", false},
}

// The body's fields come from Envoy (json_to_metadata) when it can extract
// them, and the whole body goes to switchyard only when it cannot; a route
// with nothing to decide gets no exchange at all; the decision headers are
// Envoy's, from the decision's metadata and the serving runner.
func TestEdgePath(t *testing.T) {
	small := runnersNamed(t, simrunner.Options{}, "a100-1")
	large := runnersNamed(t, simrunner.Options{}, "h100-1")
	plain := runnersNamed(t, simrunner.Options{}, "cpu-1", "cpu-2")
	s := NewStack(t, StackConfig{Body: poolsYAML(poolSpec{name: "a100", runners: small}, poolSpec{name: "h100", runners: large}) + `
  - name: cpu
    load_balancer: {policy: round_robin}
    runners: [{address: "` + plain[0].Addr + `"}, {address: "` + plain[1].Addr + `"}]
routes:
  - name: plain
    match: {prefix: /plain}
    rules: [{pool: cpu}]
` + bodyRoutes})
	reads := func() (fields, whole float64) {
		return s.Metric(`switchyard_body_reads_total{path="fields"}`), s.Metric(`switchyard_body_reads_total{path="whole"}`)
	}
	do := func(path, contentType, body string) Reply {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, s.EdgeURL+path, strings.NewReader(body))
		req.Header.Set("content-type", contentType)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		return Reply{Status: resp.StatusCode, Header: resp.Header}
	}
	for _, tt := range bodyCases {
		f0, w0 := reads()
		r := do(tt.path, tt.contentType, tt.body)
		if r.Status != http.StatusOK || r.Header.Get("x-switchyard-pool") != tt.pool {
			t.Errorf("%s: status %d pool %q, want 200 from %s", tt.name, r.Status, r.Header.Get("x-switchyard-pool"), tt.pool)
		}
		f1, w1 := reads()
		if tt.viaFields && (f1 != f0+1 || w1 != w0) {
			t.Errorf("%s: fields read %v→%v, whole bodies %v→%v: want the fields from Envoy", tt.name, f0, f1, w0, w1)
		}
		if !tt.viaFields && (w1 != w0+1 || f1 != f0) {
			t.Errorf("%s: fields read %v→%v, whole bodies %v→%v: want the whole body", tt.name, f0, f1, w0, w1)
		}
		// Envoy built the decision headers: the serving pool and runner,
		// the hint outcome; the runner's hints header stays with Envoy.
		if r.Header.Get("x-switchyard-runner") == "" || r.Header.Get("x-switchyard-hint") == "" || r.Header.Get("x-fal-runner-hints") != "" {
			t.Errorf("%s: response headers %v", tt.name, r.Header)
		}
	}
	if got := s.EnvoyStats()["json_to_metadata.rq.success"]; got < 2 {
		stats := []string{}
		for k, v := range s.EnvoyStats() {
			if strings.Contains(k, "json_to_metadata") {
				stats = append(stats, k+"="+strconv.FormatUint(v, 10))
			}
		}
		t.Errorf("Envoy's json_to_metadata successes = %d, want ≥ 2 (%v)", got, stats)
	}

	// A route that always ends in one pool Envoy balances: no exchange.
	started := s.EnvoyStats()["http.public.ext_proc.streams_started"]
	seen := map[string]bool{}
	for range 6 {
		r := s.MustDo(http.MethodGet, "/plain", nil, "")
		if r.Status != http.StatusOK || r.Header.Get("x-switchyard-pool") != "cpu" || r.Header.Get("x-switchyard-hint") != "" {
			t.Errorf("plain route: status %d headers %v: want cpu, no hint outcome (nothing decided)", r.Status, r.Header)
		}
		seen[r.Runner()] = true
	}
	if got := s.EnvoyStats()["http.public.ext_proc.streams_started"]; got != started {
		t.Errorf("ext_proc streams on a route with nothing to decide: %d → %d", started, got)
	}
	if len(seen) != 2 {
		t.Errorf("round_robin served from %v, want both runners", seen)
	}
}

// With decision headers off and runner hints passed on, Envoy adds none of
// the x-switchyard-* headers and keeps the runner's hints header; the
// hints are learnt all the same.
func TestResponseHeadersConfig(t *testing.T) {
	rs := runnersNamed(t, simrunner.Options{}, "gpu-1")
	s := NewStack(t, StackConfig{Body: poolsYAML(poolSpec{name: "gpu", runners: rs}) + `
responses: {decision_headers: false, runner_hints: true}
routes:
  - name: gen
    match: {prefix: /}
    rules: [{pool: gpu}]
`})
	r := s.MustDo(http.MethodPost, "/gen", map[string]string{"x-fal-runner-hint": "flux"}, tinyBody)
	for k := range r.Header {
		if strings.HasPrefix(strings.ToLower(k), "x-switchyard-") {
			t.Errorf("decision header %s with decision_headers off", k)
		}
	}
	if r.Header.Get("x-fal-runner-hints") != "flux" {
		t.Errorf("runner hints header %q, want flux passed on", r.Header.Get("x-fal-runner-hints"))
	}
	s.Settle(0)
	var list struct{ Runners []struct{ Hints []string } }
	s.Admin(http.MethodGet, "/v1/runners", "", &list)
	if len(list.Runners) != 1 || len(list.Runners[0].Hints) != 1 || list.Runners[0].Hints[0] != "flux" {
		t.Errorf("runners %+v: want gpu-1 holding flux", list.Runners)
	}
}
