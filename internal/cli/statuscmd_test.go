package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/switchyard/switchyard/internal/admin"
	"github.com/switchyard/switchyard/internal/config"
	"github.com/switchyard/switchyard/internal/decisions"
	"github.com/switchyard/switchyard/internal/registry"
	"github.com/switchyard/switchyard/internal/testutil/syncio"
)

var update = flag.Bool("update", false, "rewrite testdata/status.golden")

func cannedStatus() admin.Status {
	now := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	rate := 0.75
	errAt := now.Add(-time.Minute)
	return admin.Status{
		Time:   now,
		Config: admin.ConfigStatus{File: "/etc/switchyard.yaml", Generation: 4, LoadedAt: now.Add(-2 * time.Minute), LastError: "x.yaml:3: pools[0].name: duplicate", LastErrorAt: &errAt},
		Pools: []admin.PoolStatus{
			{Name: "a100", MaxConcurrency: 2, Balancer: "least_request", Runners: []admin.RunnerStatus{
				{Address: "10.0.0.1:80", State: "active", Source: "config", InFlight: 3, Queued: 1, QueuedMs: 1200, Hints: []string{"flux", "sdxl"}, Hinted: 8, HitRate: &rate},
				{Address: "10.0.0.2:80", State: "draining", Source: "registered", Hints: []string{}},
			}},
			{Name: "h100", MaxConcurrency: 1, Balancer: "round_robin", Runners: []admin.RunnerStatus{}},
		},
		Envoys:    []admin.EnvoyStatus{{Node: "edge-1", Connected: now.Add(-time.Hour), Acked: map[string]string{"Cluster": "v3", "Listener": "v2"}}},
		Published: map[string]string{"Listener": "v2", "Cluster": "v3"},
		Decisions: []decisions.Record{
			{Time: now, Route: "images", Pool: "a100", Hint: "flux", Outcome: "hit",
				Chosen: &decisions.Candidate{Runner: "10.0.0.1:80"}, End: &decisions.End{Status: 200, Elapsed: decisions.Millis(80 * time.Millisecond)}},
			{Time: now.Add(-time.Second), Route: "images", Pool: "a100", Outcome: "none"},
		},
		Considered: 40,
		Kept:       1000,
	}
}

// The status's tables, exactly: the config line and the reload error,
// the pools, each runner, the decisions, the Envoys and what was published.
func TestStatusRender(t *testing.T) {
	var b strings.Builder
	renderStatus(&b, cannedStatus())
	got := b.String()
	golden := filepath.Join("testdata", "status.golden")
	if *update {
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test ./internal/cli -run TestStatusRender -update)", err)
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("status output changed (-golden +now); if on purpose, run with -update:\n%s", diff)
	}
}

// The status comes from /debug/status with the token; a refusal is an
// error with the server's reason; --config names the admin address.
func TestStatusFetch(t *testing.T) {
	var auth atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		auth.Store(r.Header.Get("Authorization"))
		if r.URL.Path != "/debug/status" {
			http.NotFound(w, r)
			return
		}
		if r.Header.Get("Authorization") != "Bearer s3cret" {
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte(`{"error": "a bearer token is required"}`))
			return
		}
		_ = json.NewEncoder(w).Encode(cannedStatus())
	}))
	defer srv.Close()
	dir := t.TempDir()
	tok := filepath.Join(dir, "token")
	if err := os.WriteFile(tok, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errOut strings.Builder
	if err := Main(context.Background(), []string{"status", "--admin", srv.URL, "--token-file", tok}, &out, &errOut); err != nil {
		t.Fatal(err)
	}
	if auth.Load() != "Bearer s3cret" || !strings.Contains(out.String(), "10.0.0.1:80") {
		t.Errorf("auth %q, output:\n%s", auth.Load(), out.String())
	}
	err := Main(context.Background(), []string{"status", "--admin", srv.URL}, &out, &errOut)
	if err == nil || !strings.Contains(err.Error(), "401") || !strings.Contains(err.Error(), "a bearer token is required") {
		t.Errorf("without the token: %v, want the 401 and its reason", err)
	}

	cfg := filepath.Join(dir, "s.yaml")
	if err := os.WriteFile(cfg, []byte("listeners: [{name: l, address: 127.0.0.1, port: 10000}]\nserver: {admin: 127.0.0.1:18991}\npools: [{name: a}]\nroutes: [{name: r, match: {prefix: /}, rules: [{pool: a}]}]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if u, err := statusURL("", cfg); err != nil || u.String() != "http://127.0.0.1:18991" {
		t.Errorf("from --config: %v, %v", u, err)
	}
	if u, _ := statusURL("", ""); u.String() != "http://127.0.0.1:18001" {
		t.Errorf("default: %v", u)
	}
	if _, err := statusURL("ftp://x", ""); err == nil {
		t.Error("an ftp admin URL was accepted")
	}
}

// --watch redraws until the context ends, and rides out a failing fetch.
func TestStatusWatch(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if calls.Add(1) == 2 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		_ = json.NewEncoder(w).Encode(cannedStatus())
	}))
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	var out syncio.Buffer
	done := make(chan error, 1)
	go func() {
		done <- Main(ctx, []string{"status", "--admin", srv.URL, "--watch", "--interval", "10ms"}, &out, &out)
	}()
	deadline := time.Now().Add(10 * time.Second)
	for calls.Load() < 4 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("watch ended with %v", err)
	}
	s := out.String()
	if n := strings.Count(s, "\x1b[H\x1b[2J"); n < 3 {
		t.Errorf("%d redraws, want at least 3", n)
	}
	if !strings.Contains(s, "503") || strings.Count(s, "10.0.0.1:80") < 2 {
		t.Errorf("want the failed fetch said and the tables redrawn after it:\n%s", s)
	}
}

// Against the real admin API with read tokens: the read token fetches the
// status, a wrong one is an error carrying the server's reason and message.
func TestStatusWrongToken(t *testing.T) {
	dir := t.TempDir()
	for name, tok := range map[string]string{"runner.token": "write-token-0123456789", "ops.token": "read-token-0123456789", "wrong.token": "not-a-token-0123456789"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(tok+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cfg, err := config.Parse(filepath.Join(dir, "s.yaml"), []byte(`
listeners: [{name: l, address: 127.0.0.1, port: 10000}]
server: {admin_auth: {token_files: [runner.token], read_token_files: [ops.token]}}
pools: [{name: a100, runners: [{address: 10.0.0.1:80}]}]
routes: [{name: r, match: {prefix: /}, rules: [{pool: a100}]}]
`))
	if err != nil {
		t.Fatal(err)
	}
	runners := registry.New(registry.Options{})
	runners.ApplyConfig(cfg)
	srv := httptest.NewServer(admin.Handler(admin.Options{
		Runners: runners,
		Config:  func() *config.Config { return cfg },
		Ready:   func() bool { return true },
		Log:     slog.New(slog.NewTextHandler(io.Discard, nil)),
	}))
	defer srv.Close()

	var out, errOut strings.Builder
	if err := Main(context.Background(), []string{"status", "--admin", srv.URL, "--token-file", filepath.Join(dir, "ops.token")}, &out, &errOut); err != nil {
		t.Fatalf("with the read token: %v", err)
	}
	if !strings.Contains(out.String(), "10.0.0.1:80") {
		t.Errorf("with the read token:\n%s", out.String())
	}
	err = Main(context.Background(), []string{"status", "--admin", srv.URL, "--token-file", filepath.Join(dir, "wrong.token")}, &out, &errOut)
	if err == nil || errors.Is(err, ErrUsage) {
		t.Fatalf("a wrong token: %v, want an error", err)
	}
	for _, want := range []string{"401", "the bearer token is not one of server.admin_auth's", "reason: invalid"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("a wrong token: %q lacks %q", err, want)
		}
	}
}
