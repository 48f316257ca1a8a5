package cli

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/admin"
	"github.com/switchyard/switchyard/internal/decisions"
	"github.com/switchyard/switchyard/internal/testutil/syncio"
)

func cannedStatus() admin.Status {
	now := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	rate := 0.75
	errAt := now.Add(-time.Minute)
	return admin.Status{
		Time:   now,
		Config: admin.ConfigStatus{File: "/etc/switchyard.yaml", Generation: 4, LoadedAt: now.Add(-2 * time.Minute), LastError: "x.yaml:3: pools[0].name: duplicate", LastErrorAt: &errAt},
		Pools: []admin.PoolStatus{
			{Name: "a100", MaxConcurrency: 2, Runners: []admin.RunnerStatus{{Address: "10.0.0.1:80", State: "active", InFlight: 2, QueuedMs: 1200, Hints: []string{"flux", "sdxl"}, Hinted: 8, HitRate: &rate}}},
			{Name: "h100", Runners: []admin.RunnerStatus{}},
		},
		Envoys: []admin.EnvoyStatus{{Node: "edge-1", Connected: now.Add(-time.Hour), Acked: map[string]string{"Cluster": "v3", "Listener": "v2"}}},
		Decisions: []decisions.Record{{Time: now, Route: "images", Pool: "a100", Hint: "flux", Outcome: "hit",
			Chosen: &decisions.Candidate{Runner: "10.0.0.1:80"}, End: &decisions.End{Status: 200, Elapsed: decisions.Millis(80 * time.Millisecond)}}},
	}
}

// The status's tables: the config line, each runner, the decisions, the Envoys.
func TestStatusRender(t *testing.T) {
	var b strings.Builder
	renderStatus(&b, cannedStatus())
	out := b.String()
	for _, want := range []string{
		"/etc/switchyard.yaml  generation 4, loaded 2m0s ago",
		"last reload rejected 1m0s ago (the previous config keeps serving): x.yaml:3: pools[0].name: duplicate",
		"a100  10.0.0.1:80  active  2          1200 ms  75.0% of 8  flux,sdxl",
		"h100  -",
		"12:00:00.000  images  a100  flux  hit      10.0.0.1:80  200     80 ms",
		"edge-1  1h0m0s ago  Cluster v3, Listener v2",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
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
