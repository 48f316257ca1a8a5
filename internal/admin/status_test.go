package admin_test

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/admin"
	"github.com/switchyard/switchyard/internal/config"
	"github.com/switchyard/switchyard/internal/decisions"
	"github.com/switchyard/switchyard/internal/registry"
)

// busy reports in-flight requests the registry itself has not counted.
type busy struct {
	*registry.Registry
	inFlight map[string]int64
}

func (b busy) List() []registry.Info {
	list := b.Registry.List()
	for i := range list {
		list[i].InFlight = b.inFlight[list[i].Address]
	}
	return list
}

func statusServer(t *testing.T, serverYAML string) (*httptest.Server, *registry.Registry) {
	t.Helper()
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "runner.token"), []byte(writeToken+"\n"), 0o600)
	os.WriteFile(filepath.Join(dir, "ops.token"), []byte(readToken), 0o600)
	cfg, err := config.Parse(filepath.Join(dir, "t.yaml"), []byte(`
listeners: [{name: l, address: 127.0.0.1, port: 10000}]
`+serverYAML+`
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
	// Names are validated upstream too; a record is what the page trusts least.
	ring.Add(&decisions.Record{Time: time.Unix(1010, 0), Route: `<img src=x onerror="alert(1)">`, Pool: "a100", Outcome: "none"})
	errAt := time.Now()
	srv := httptest.NewServer(admin.Handler(admin.Options{
		Runners: busy{runners, map[string]int64{"10.0.0.1:80": 1, "10.0.0.2:80": 5}},
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
	srv, _ := statusServer(t, "")
	resp, err := http.Get(srv.URL + "/debug/status")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st admin.Status
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	if st.Config.Generation != 3 || st.Config.LastError == "" || len(st.Envoys) != 1 || st.Published["Cluster"] != "v7" || st.Kept != 10 || st.Considered != 5 || len(st.Decisions) != 5 || st.Decisions[0].ID != 5 {
		t.Fatalf("status %+v", st)
	}
	if len(st.Pools) != 2 || st.Pools[0].Name != "a100" || len(st.Pools[0].Runners) != 2 || len(st.Pools[1].Runners) != 0 {
		t.Fatalf("pools %+v", st.Pools)
	}
	r1, r2 := st.Pools[0].Runners[0], st.Pools[0].Runners[1]
	if r1.Address != "10.0.0.1:80" || r1.Hinted != 3 || r1.HitRate == nil || *r1.HitRate < 0.66 || *r1.HitRate > 0.67 || len(r1.Hints) != 2 || r1.InFlight != 1 || r1.Queued != 0 {
		t.Errorf("runner 1 %+v: want 2 hits of 3 hinted decisions and its hints", r1)
	}
	if r2.QueuedMs != 1500 || r2.Queued != 3 || r2.HitRate != nil || r2.Hints == nil {
		t.Errorf("runner 2 %+v: want 3 of its 5 requests beyond max_concurrency 2, 1500 ms of work, no hit rate", r2)
	}
}

// GET / is the status page: the runners and decisions, escaped.
func TestStatusPage(t *testing.T) {
	srv, _ := statusServer(t, "")
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
	for _, want := range []string{`data-address="10.0.0.1:80"`, `data-address="10.0.0.2:80"`, "66.7%", "3 req · 1500 ms", "over the last 5 decisions", "edge-1", "Cluster v7",
		"Last reload rejected", "duplicate", `http-equiv="refresh"`, "&lt;script&gt;", "&lt;b&gt;flux&lt;/b&gt;", "&lt;img src=x onerror=&#34;alert(1)&#34;&gt;", "no runners"} {
		if !strings.Contains(page, want) {
			t.Errorf("the page lacks %q", want)
		}
	}
	if strings.Contains(page, "<script>x") || strings.Contains(page, "<b>flux") || strings.Contains(page, "<img") {
		t.Error("hostile text reached the page unescaped")
	}
	if r, _ := http.Get(srv.URL + "/nothing-here"); r.StatusCode != http.StatusNotFound {
		t.Errorf("an unknown path: %d, want 404", r.StatusCode)
	}
}

// The page and its JSON are read endpoints: with read tokens configured,
// neither answers without one, and either token reads them.
func TestStatusNeedsReadToken(t *testing.T) {
	srv, _ := statusServer(t, "server: {admin_auth: {token_files: [runner.token], read_token_files: [ops.token]}}")
	for _, path := range []string{"/", "/debug/status"} {
		if status, _, body := authCall(t, srv, http.MethodGet, path, ""); status != http.StatusUnauthorized || strings.Contains(body, "10.0.0.1") {
			t.Errorf("GET %s without a token: %d %s, want 401 and nothing of the status", path, status, body)
		}
		if status, _, _ := authCall(t, srv, http.MethodGet, path, "Bearer wrong-token-0123456789"); status != http.StatusUnauthorized {
			t.Errorf("GET %s with a wrong token: %d, want 401", path, status)
		}
		for _, tok := range []string{readToken, writeToken} {
			if status, _, body := authCall(t, srv, http.MethodGet, path, "Bearer "+tok); status != http.StatusOK || !strings.Contains(body, "10.0.0.1:80") {
				t.Errorf("GET %s with a token: %d, want 200 and the runners", path, status)
			}
		}
	}
}
