package admin_test

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/admin"
	"github.com/switchyard/switchyard/internal/config"
	"github.com/switchyard/switchyard/internal/decisions"
	"github.com/switchyard/switchyard/internal/registry"
)

func statusServer(t *testing.T) (*httptest.Server, *registry.Registry) {
	t.Helper()
	cfg, err := config.Parse("t.yaml", []byte(`
listeners: [{name: l, address: 127.0.0.1, port: 10000}]
pools: [{name: a100, max_concurrency: 2, runners: [{address: 10.0.0.1:80}, {address: 10.0.0.2:80}]}, {name: h100}]
routes: [{name: images, match: {prefix: /}, rules: [{pool: a100}]}]
`))
	if err != nil {
		t.Fatal(err)
	}
	runners := registry.New(registry.Options{})
	runners.ApplyConfig(cfg)
	ring := decisions.NewRing(10)
	for i, outcome := range []string{"miss", "hit", "hit", "none"} {
		hint := "<b>flux</b>" // hints are validated upstream; the page escapes anyway
		if outcome == "none" {
			hint = ""
		}
		r := &decisions.Record{Time: time.Unix(int64(1000+i), 0), Route: "images", Pool: "a100", Hint: hint, Outcome: outcome,
			Chosen: &decisions.Candidate{Runner: "10.0.0.1:80", Why: "warm, free"}}
		ring.Add(r)
		ring.Finish(r, decisions.End{Status: 200, Runner: "10.0.0.1:80", Elapsed: decisions.Millis(40 * time.Millisecond)})
	}
	errAt := time.Now()
	srv := httptest.NewServer(admin.Handler(admin.Options{
		Runners: runners,
		Hints: func(addr string) []string {
			return map[string][]string{"10.0.0.1:80": {"flux", "<script>x</script>"}}[addr]
		},
		Config:    func() *config.Config { return cfg },
		Ready:     func() bool { return true },
		XDS:       func() any { return nil },
		Decisions: ring,
		Reloads: func() admin.ReloadStatus {
			return admin.ReloadStatus{Generation: 3, LoadedAt: errAt.Add(-time.Minute), LastError: "t.yaml:4: pools[0].name: duplicate", LastErrorAt: errAt}
		},
		Envoys: func() []admin.EnvoyStatus {
			return []admin.EnvoyStatus{{Node: "edge-1", Acked: map[string]string{"Cluster": "v7"}}}
		},
		Published: func() map[string]string { return map[string]string{"Cluster": "v7"} },
		Queued: func(_, addr string) time.Duration {
			return map[string]time.Duration{"10.0.0.2:80": 1500 * time.Millisecond}[addr]
		},
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}))
	t.Cleanup(srv.Close)
	return srv, runners
}

// GET /debug/status is every fact of the status page as JSON.
func TestStatusJSON(t *testing.T) {
	srv, _ := statusServer(t)
	resp, err := http.Get(srv.URL + "/debug/status")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st admin.Status
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	if st.Config.Generation != 3 || st.Config.LastError == "" || len(st.Envoys) != 1 || st.Published["Cluster"] != "v7" || st.Kept != 10 || len(st.Decisions) != 4 {
		t.Fatalf("status %+v", st)
	}
	if len(st.Pools) != 2 || st.Pools[0].Name != "a100" || len(st.Pools[0].Runners) != 2 || len(st.Pools[1].Runners) != 0 {
		t.Fatalf("pools %+v", st.Pools)
	}
	r1, r2 := st.Pools[0].Runners[0], st.Pools[0].Runners[1]
	if r1.Address != "10.0.0.1:80" || r1.Hinted != 3 || r1.HitRate == nil || *r1.HitRate < 0.66 || *r1.HitRate > 0.67 || len(r1.Hints) != 2 {
		t.Errorf("runner 1 %+v: want 2 hits of 3 hinted decisions and its hints", r1)
	}
	if r2.QueuedMs != 1500 || r2.HitRate != nil || r2.Hints == nil {
		t.Errorf("runner 2 %+v", r2)
	}
}

// GET / is the status page: the runners and decisions, escaped.
func TestStatusPage(t *testing.T) {
	srv, _ := statusServer(t)
	resp, err := http.Get(srv.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	page := string(body)
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
		t.Errorf("content type %q", ct)
	}
	for _, want := range []string{`data-address="10.0.0.1:80"`, `data-address="10.0.0.2:80"`, "66.7%", "1500 ms", "edge-1", "Cluster v7",
		"Last reload rejected", "duplicate", `http-equiv="refresh"`, "&lt;script&gt;", "&lt;b&gt;flux&lt;/b&gt;", "no runners"} {
		if !strings.Contains(page, want) {
			t.Errorf("the page lacks %q", want)
		}
	}
	if strings.Contains(page, "<script>x") || strings.Contains(page, "<b>flux") {
		t.Error("hostile text reached the page unescaped")
	}
	if r, _ := http.Get(srv.URL + "/nothing-here"); r.StatusCode != http.StatusNotFound {
		t.Errorf("an unknown path: %d, want 404", r.StatusCode)
	}
}
