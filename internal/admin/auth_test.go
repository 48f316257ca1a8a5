package admin_test

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchyard/switchyard/internal/admin"
	"github.com/switchyard/switchyard/internal/config"
	"github.com/switchyard/switchyard/internal/registry"
)

const (
	writeToken = "runner-token-0123456789"
	readToken  = "ops-read-token-0123456789"
)

// authServer serves the admin API with server.admin_auth: a write token,
// and (with reads) a read token that protects the debug endpoints.
func authServer(t testing.TB, reads bool) (*httptest.Server, *registry.Registry, *prometheus.Registry) {
	t.Helper()
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "runner.token"), []byte(writeToken+"\n"), 0o600)
	os.WriteFile(filepath.Join(dir, "ops.token"), []byte(readToken), 0o600)
	auth := "  admin_auth: {token_files: [runner.token]}\n"
	if reads {
		auth = "  admin_auth: {token_files: [runner.token], read_token_files: [ops.token]}\n"
	}
	cfg, err := config.Parse(filepath.Join(dir, "switchyard.yaml"), []byte(`
listeners: [{name: l, address: 127.0.0.1, port: 10000}]
server:
`+auth+`pools: [{name: a}]
routes: [{name: r, match: {prefix: /}, rules: [{pool: a}]}]
`))
	if err != nil {
		t.Fatal(err)
	}
	runners := registry.New(registry.Options{})
	runners.ApplyConfig(cfg)
	reg := prometheus.NewRegistry()
	srv := httptest.NewServer(admin.Handler(admin.Options{
		Runners:  runners,
		Config:   func() *config.Config { return cfg },
		Ready:    func() bool { return true },
		XDS:      func() any { return map[string]string{} },
		Gatherer: reg,
		Log:      slog.New(slog.NewTextHandler(io.Discard, nil)),
		Metrics:  admin.NewMetrics(reg),
	}))
	t.Cleanup(srv.Close)
	return srv, runners, reg
}

func authCall(t *testing.T, srv *httptest.Server, method, path, authorization string) (int, http.Header, string) {
	t.Helper()
	req, _ := http.NewRequest(method, srv.URL+path, nil)
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(raw)
}

// Registration needs the write token: without one 401, with another 401,
// with the read token 403, each with a JSON reason and counted, and the
// registry unchanged; with the write token it registers and drains.
func TestAdminAuth(t *testing.T) {
	srv, runners, reg := authServer(t, true)
	const put = "/v1/pools/a/runners/127.0.0.1:9001"
	tests := []struct {
		name, authorization, reason string
		status                      int
	}{
		{"no token", "", "missing", http.StatusUnauthorized},
		{"another scheme", "Basic " + writeToken, "missing", http.StatusUnauthorized},
		{"a wrong token", "Bearer not-the-token-0123456789", "invalid", http.StatusUnauthorized},
		{"a token's prefix", "Bearer " + writeToken[:10], "invalid", http.StatusUnauthorized},
		{"the read token", "Bearer " + readToken, "read_only", http.StatusForbidden},
	}
	for _, tt := range tests {
		for _, method := range []string{http.MethodPut, http.MethodDelete} {
			status, h, body := authCall(t, srv, method, put, tt.authorization)
			if status != tt.status || !strings.Contains(body, `"reason": "`+tt.reason+`"`) || h.Get("Content-Type") != "application/json" {
				t.Errorf("%s, %s: %d %s, want %d with reason %s", tt.name, method, status, body, tt.status, tt.reason)
			}
			if status == http.StatusUnauthorized && !strings.HasPrefix(h.Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("%s: 401 without WWW-Authenticate", tt.name)
			}
		}
	}
	if n := len(runners.List()); n != 0 {
		t.Fatalf("refused calls changed the registry: %d runners", n)
	}
	want := map[string]float64{"missing": 4, "invalid": 4, "read_only": 2}
	for reason, n := range want {
		if got := denied(t, reg, reason); got != n {
			t.Errorf("denied{reason=%s} = %v, want %v", reason, got, n)
		}
	}
	if status, _, body := authCall(t, srv, http.MethodPut, put, "Bearer "+writeToken); status != http.StatusOK {
		t.Fatalf("with the write token: %d %s", status, body)
	}
	if status, _, body := authCall(t, srv, http.MethodDelete, put, "bearer "+writeToken); status != http.StatusOK {
		t.Fatalf("drain with the write token: %d %s", status, body)
	}
	// Reads need a token of either list; health, readiness and metrics none.
	for _, path := range []string{"/v1/runners", "/debug/config", "/debug/runners", "/debug/xds", "/debug/costs", "/debug/pprof/"} {
		if status, _, _ := authCall(t, srv, http.MethodGet, path, ""); status != http.StatusUnauthorized {
			t.Errorf("GET %s without a token: %d, want 401", path, status)
		}
		for _, tok := range []string{readToken, writeToken} {
			if status, _, _ := authCall(t, srv, http.MethodGet, path, "Bearer "+tok); status != http.StatusOK {
				t.Errorf("GET %s with a token: %d, want 200", path, status)
			}
		}
	}
	for _, path := range []string{"/healthz", "/readyz", "/metrics"} {
		if status, _, _ := authCall(t, srv, http.MethodGet, path, ""); status != http.StatusOK {
			t.Errorf("GET %s without a token: %d, want 200", path, status)
		}
	}
	// The tokens never show in the effective config.
	if _, _, body := authCall(t, srv, http.MethodGet, "/debug/config", "Bearer "+readToken); strings.Contains(body, writeToken) || strings.Contains(body, readToken) || !strings.Contains(body, "runner.token") {
		t.Errorf("debug/config: %s", body)
	}
}

// Without read tokens, the read endpoints stay open.
func TestAdminAuthOpenReads(t *testing.T) {
	srv, _, _ := authServer(t, false)
	if status, _, _ := authCall(t, srv, http.MethodGet, "/v1/runners", ""); status != http.StatusOK {
		t.Errorf("GET /v1/runners without read tokens configured: %d, want 200", status)
	}
	if status, _, _ := authCall(t, srv, http.MethodPut, "/v1/pools/a/runners/127.0.0.1:9001", ""); status != http.StatusUnauthorized {
		t.Errorf("PUT without a token: %d, want 401", status)
	}
}

// denied reads switchyard_admin_denied_total{reason}.
func denied(t *testing.T, reg *prometheus.Registry, reason string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "switchyard_admin_denied_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "reason" && l.GetValue() == reason {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	t.Fatalf("no series for reason %s", reason)
	return 0
}
