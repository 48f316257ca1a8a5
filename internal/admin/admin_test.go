package admin_test

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/switchyard/switchyard/internal/admin"
	"github.com/switchyard/switchyard/internal/config"
	"github.com/switchyard/switchyard/internal/configwatch"
	"github.com/switchyard/switchyard/internal/registry"
	"github.com/switchyard/switchyard/xds"
)

// metricsOfOwners are the metrics of the packages that own them, on one
// registry, as the server has them.
type metricsOfOwners struct {
	config *configwatch.Metrics
	xds    *xds.Metrics
}

func setup(t *testing.T) (*httptest.Server, *atomic.Bool, *prometheus.Registry, metricsOfOwners) {
	t.Helper()
	cfg, err := config.Parse("t.yaml", []byte(`
listeners: [{name: l, address: 127.0.0.1, port: 10000}]
pools: [{name: a, max_concurrency: 2, runners: [{address: 10.0.0.1:80}]}, {name: b}]
routes: [{name: r, match: {prefix: /}, rules: [{when: 'body.width > 10', pool: b}, {pool: a}]}]
`))
	if err != nil {
		t.Fatal(err)
	}
	runners := registry.New(registry.Options{})
	runners.ApplyConfig(cfg)
	reg := prometheus.NewRegistry()
	m := metricsOfOwners{config: configwatch.NewMetrics(reg), xds: xds.NewMetrics(reg)}
	registry.RegisterMetrics(reg, runners)
	var ready atomic.Bool
	srv := httptest.NewServer(admin.Handler(admin.Options{
		Runners: runners,
		Hints: func(addr string) []string {
			if addr == "10.0.0.1:80" {
				return []string{"flux"}
			}
			return nil
		},
		Config:   func() *config.Config { return cfg },
		Ready:    ready.Load,
		XDS:      func() any { return map[string]string{} },
		Gatherer: reg,
		Log:      slog.New(slog.NewTextHandler(io.Discard, nil)),
	}))
	t.Cleanup(srv.Close)
	return srv, &ready, reg, m
}

func call(t *testing.T, srv *httptest.Server, method, path, body string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" && !strings.HasPrefix(path, "/metrics") {
		t.Errorf("%s %s: content type %q", method, path, ct)
	}
	var out map[string]any
	raw, _ := io.ReadAll(resp.Body)
	_ = json.Unmarshal(raw, &out)
	return resp.StatusCode, out
}

func TestRegistrationAPI(t *testing.T) {
	srv, _, _, _ := setup(t)
	tests := []struct {
		name, method, path, body string
		status                   int
		errorHas                 string
	}{
		{"register", "PUT", "/v1/pools/b/runners/10.0.0.9:8000", `{"ttl_seconds": 30}`, 200, ""},
		{"heartbeat without body", "PUT", "/v1/pools/b/runners/10.0.0.9:8000", ``, 200, ""},
		{"ipv6", "PUT", "/v1/pools/b/runners/[::1]:8000", ``, 200, ""},
		{"unknown pool", "PUT", "/v1/pools/zz/runners/10.0.0.9:8000", ``, 400, "unknown pool"},
		{"bad address", "PUT", "/v1/pools/b/runners/gpu-1:8000", ``, 400, "ip:port"},
		{"bad ttl", "PUT", "/v1/pools/b/runners/10.0.0.9:8000", `{"ttl_seconds": -1}`, 400, "ttl_seconds"},
		{"unknown field", "PUT", "/v1/pools/b/runners/10.0.0.9:8000", `{"ttl": 5}`, 400, "unknown field"},
		{"not json", "PUT", "/v1/pools/b/runners/10.0.0.9:8000", `ttl=5`, 400, "invalid JSON"},
		{"deregister", "DELETE", "/v1/pools/b/runners/10.0.0.9:8000", ``, 200, ""},
		{"deregister unknown", "DELETE", "/v1/pools/b/runners/10.0.0.8:8000", ``, 404, "unknown runner"},
	}
	for _, tt := range tests {
		code, body := call(t, srv, tt.method, tt.path, tt.body)
		if code != tt.status {
			t.Errorf("%s: status %d, want %d (%v)", tt.name, code, tt.status, body)
		}
		if msg, _ := body["error"].(string); tt.errorHas != "" && !strings.Contains(msg, tt.errorHas) {
			t.Errorf("%s: error %q, want it to mention %q", tt.name, msg, tt.errorHas)
		}
	}
	code, body := call(t, srv, "GET", "/v1/runners", "")
	runners, _ := body["runners"].([]any)
	if code != 200 || len(runners) != 3 {
		t.Fatalf("list: %d %v", code, body)
	}
	states := map[string]string{}
	for _, r := range runners {
		m := r.(map[string]any)
		states[m["address"].(string)] = fmt.Sprintf("%s/%s/%v", m["state"], m["source"], m["hints"])
	}
	want := map[string]string{"10.0.0.1:80": "active/config/[flux]", "10.0.0.9:8000": "draining/api/[]", "[::1]:8000": "active/api/[]"}
	for a, s := range want {
		if states[a] != s {
			t.Errorf("%s: %q, want %q", a, states[a], s)
		}
	}
}

func TestHealthReadyAndDebug(t *testing.T) {
	srv, ready, _, _ := setup(t)
	if code, _ := call(t, srv, "GET", "/healthz", ""); code != 200 {
		t.Errorf("healthz %d", code)
	}
	if code, _ := call(t, srv, "GET", "/readyz", ""); code != 503 {
		t.Errorf("readyz before a snapshot: %d, want 503", code)
	}
	ready.Store(true)
	if code, _ := call(t, srv, "GET", "/readyz", ""); code != 200 {
		t.Errorf("readyz after a snapshot: %d, want 200", code)
	}
	_, cfg := call(t, srv, "GET", "/debug/config", "")
	routes := cfg["routes"].([]any)
	rule := routes[0].(map[string]any)["rules"].([]any)[0].(map[string]any)
	if rule["when"] != "body.width > 10" || routes[0].(map[string]any)["timeout"] != "5m0s" {
		t.Errorf("effective config shows expressions and durations as written: %v", routes[0])
	}
}

func TestMetricsExposition(t *testing.T) {
	srv, _, reg, m := setup(t)
	call(t, srv, "PUT", "/v1/pools/b/runners/10.0.0.9:8000", "")
	call(t, srv, "DELETE", "/v1/pools/a/runners/10.0.0.1:80", "")
	m.config.Reloads.WithLabelValues("ok").Inc()
	m.config.Reloads.WithLabelValues("error").Add(2)
	m.xds.Nacks.WithLabelValues("Cluster").Inc()
	m.xds.Clients.Set(1)
	want := `
# HELP switchyard_config_reloads_total Config file loads by result (ok, error). An error keeps the last good config serving.
# TYPE switchyard_config_reloads_total counter
switchyard_config_reloads_total{result="error"} 2
switchyard_config_reloads_total{result="ok"} 1
# HELP switchyard_runners Runners per pool and state (active, draining).
# TYPE switchyard_runners gauge
switchyard_runners{pool="a",state="active"} 0
switchyard_runners{pool="a",state="draining"} 1
switchyard_runners{pool="b",state="active"} 1
switchyard_runners{pool="b",state="draining"} 0
# HELP switchyard_xds_connected_clients Envoy ADS streams currently open.
# TYPE switchyard_xds_connected_clients gauge
switchyard_xds_connected_clients 1
# HELP switchyard_xds_nacks_total xDS responses Envoys rejected, by resource type.
# TYPE switchyard_xds_nacks_total counter
switchyard_xds_nacks_total{type="Cluster"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want),
		"switchyard_config_reloads_total", "switchyard_runners", "switchyard_xds_connected_clients", "switchyard_xds_nacks_total"); err != nil {
		t.Error(err)
	}
	if code, _ := call(t, srv, "GET", "/metrics", ""); code != 200 {
		t.Errorf("/metrics: %d", code)
	}
}
