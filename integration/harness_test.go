package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchyard/switchyard/envoy"
	"github.com/switchyard/switchyard/internal/config"
	"github.com/switchyard/switchyard/internal/supervise"
	"github.com/switchyard/switchyard/internal/testutil/netutil"
	"github.com/switchyard/switchyard/internal/testutil/syncio"
)

// switchyardBin is built once by TestMain from this checkout.
var switchyardBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "switchyard-it-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	switchyardBin = filepath.Join(dir, "switchyard")
	build := exec.Command("go", "build", "-race", "-o", switchyardBin, "../cmd/switchyard")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building switchyard:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// freePort returns a loopback port nothing listens on right now.
func freePort(t *testing.T) int {
	t.Helper()
	p, err := netutil.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// Stack is one Envoy and one switchyard wired together.
type Stack struct {
	t          *testing.T
	Dir        string
	ConfigPath string
	GRPCAddr   string
	// PipelinesAddr is switchyard's pipelines port (server.pipelines).
	PipelinesAddr string
	AdminURL      string // switchyard's admin API
	EdgeURL       string // Envoy's listener
	Envoy         *envoy.Process

	mu sync.Mutex
	sw *supervise.Process
	// swLog holds the output of every switchyard the test started, in
	// order, so a failure after a restart shows both runs.
	swLog    *syncio.Buffer
	restarts int
}

// StackConfig is the part of the config a test writes: pools and routes.
// The harness adds listeners and the server section with free ports.
type StackConfig struct {
	Body string // YAML: hints, pools, routes (server.drain_timeout may be given via Server)
	// Server holds extra keys of the server section, e.g. "drain_timeout: 2s".
	Server string
	// EnvoyTLS is what Envoy presents to switchyard (with grpc_tls in Server).
	EnvoyTLS *config.EnvoyClientTLS
}

// NewStack writes the config, starts switchyard, then Envoy, and waits
// until a request through Envoy reaches a runner.
func NewStack(t *testing.T, sc StackConfig) *Stack {
	t.Helper()
	s := &Stack{t: t, Dir: t.TempDir(), swLog: &syncio.Buffer{}}
	edgePort := freePort(t)
	s.GRPCAddr = "127.0.0.1:" + strconv.Itoa(freePort(t))
	adminAddr := "127.0.0.1:" + strconv.Itoa(freePort(t))
	s.AdminURL = "http://" + adminAddr
	s.EdgeURL = "http://127.0.0.1:" + strconv.Itoa(edgePort)
	s.ConfigPath = filepath.Join(s.Dir, "switchyard.yaml")
	// The pipelines port too: switchyard binds it only for a config with
	// a pipeline, and the default would collide between parallel stacks.
	s.PipelinesAddr = "127.0.0.1:" + strconv.Itoa(freePort(t))
	server := fmt.Sprintf("server:\n  grpc: %s\n  admin: %s\n  pipelines: %s\n", s.GRPCAddr, adminAddr, s.PipelinesAddr)
	for _, line := range strings.Split(strings.TrimSpace(sc.Server), "\n") {
		if line != "" {
			server += "  " + line + "\n"
		}
	}
	cfg := fmt.Sprintf("listeners:\n  - {name: public, address: 127.0.0.1, port: %d}\n%s%s", edgePort, server, sc.Body)
	s.WriteConfig(cfg)

	t.Cleanup(func() {
		if t.Failed() {
			s.dumpLogs()
		}
		s.StopSwitchyard()
		if s.Envoy != nil {
			if err := s.Envoy.Stop(); err != nil {
				t.Logf("stopping envoy: %v", err)
			}
		}
	})
	s.StartSwitchyard()

	bin, err := envoy.Find()
	if err != nil {
		t.Fatalf("these tests need the real Envoy: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s.Envoy, err = envoy.Start(ctx, envoy.StartOptions{
		Binary:      bin,
		Bootstrap:   envoy.BootstrapOptions{XDSAddress: s.GRPCAddr, TLS: sc.EnvoyTLS},
		Concurrency: 2,
		Dir:         filepath.Join(s.Dir, "envoy"),
	})
	if err != nil {
		t.Fatalf("starting envoy: %v", err)
	}
	return s
}

// WriteConfig replaces the config file atomically, as a deploy tool would.
func (s *Stack) WriteConfig(content string) {
	s.t.Helper()
	tmp := s.ConfigPath + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		s.t.Fatal(err)
	}
	if err := os.Rename(tmp, s.ConfigPath); err != nil {
		s.t.Fatal(err)
	}
}

// ReadConfig returns the current config file.
func (s *Stack) ReadConfig() string {
	s.t.Helper()
	b, err := os.ReadFile(s.ConfigPath)
	if err != nil {
		s.t.Fatal(err)
	}
	return string(b)
}

// StartSwitchyard starts `switchyard serve` and waits for /readyz.
func (s *Stack) StartSwitchyard() {
	s.t.Helper()
	s.mu.Lock()
	s.restarts++
	fmt.Fprintf(s.swLog, "---- switchyard start #%d ----\n", s.restarts)
	s.mu.Unlock()
	cmd := exec.Command(switchyardBin, "serve", "--config", s.ConfigPath, "--log-level", "debug")
	sw, err := supervise.Start(context.Background(), cmd, supervise.Options{
		Name:         "switchyard",
		Tee:          s.swLog,
		Ready:        supervise.HTTPOK(s.AdminURL + "/readyz"),
		ReadyTimeout: 15 * time.Second,
	})
	if err != nil {
		s.t.Fatal(err)
	}
	s.mu.Lock()
	s.sw = sw
	s.mu.Unlock()
}

// KillSwitchyard kills switchyard with SIGKILL: no goodbye to Envoy.
func (s *Stack) KillSwitchyard() {
	s.mu.Lock()
	sw := s.sw
	s.mu.Unlock()
	if sw != nil {
		_ = sw.Kill()
	}
}

// StopSwitchyard stops switchyard with SIGTERM, then SIGKILL.
func (s *Stack) StopSwitchyard() {
	s.mu.Lock()
	sw := s.sw
	s.sw = nil
	s.mu.Unlock()
	if sw != nil {
		_ = sw.Stop()
	}
}

func (s *Stack) dumpLogs() {
	s.t.Logf("==== switchyard log ====\n%s", s.swLog.String())
	if s.Envoy != nil {
		s.t.Logf("==== envoy log ====\n%s", s.Envoy.Log())
	}
}

// client is shared so connections to Envoy are reused, as real clients do.
var client = &http.Client{
	Timeout:   30 * time.Second,
	Transport: &http.Transport{MaxIdleConnsPerHost: 256, MaxConnsPerHost: 0, IdleConnTimeout: 30 * time.Second},
}

// Reply is what a request through Envoy got back.
type Reply struct {
	Status  int
	Header  http.Header
	Body    map[string]any
	RawBody string
}

// Runner names the runner that served the reply (from the sim runner's body).
func (r Reply) Runner() string {
	s, _ := r.Body["runner"].(string)
	return s
}

// Do sends a request through Envoy.
func (s *Stack) Do(method, path string, header map[string]string, body string) (Reply, error) {
	req, err := http.NewRequest(method, s.EdgeURL+path, strings.NewReader(body))
	if err != nil {
		return Reply{}, err
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := client.Do(req)
	if err != nil {
		return Reply{}, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return Reply{}, err
	}
	r := Reply{Status: resp.StatusCode, Header: resp.Header, RawBody: string(raw)}
	_ = json.Unmarshal(raw, &r.Body)
	return r, nil
}

// MustDo is Do that fails the test on a transport error.
func (s *Stack) MustDo(method, path string, header map[string]string, body string) Reply {
	s.t.Helper()
	r, err := s.Do(method, path, header, body)
	if err != nil {
		s.t.Fatalf("%s %s: %v", method, path, err)
	}
	return r
}

// Admin calls switchyard's admin API and decodes a JSON answer into out.
func (s *Stack) Admin(method, path, body string, out any) int {
	s.t.Helper()
	req, err := http.NewRequest(method, s.AdminURL+path, strings.NewReader(body))
	if err != nil {
		s.t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			s.t.Fatalf("%s %s: %v in %q", method, path, err, raw)
		}
	}
	return resp.StatusCode
}

// Settle waits until Envoy's access log has reported the end of every
// decided request but outstanding ones. A report is learnt off the request
// path, within about a millisecond of the response's end; a test that
// checks what the next request learnt from the last one waits for it, as a
// client that is not racing its own previous response would.
func (s *Stack) Settle(outstanding int) {
	s.t.Helper()
	Eventually(s.t, 5*time.Second, "access-log reports of finished requests", func() bool {
		return s.Metric("switchyard_requests_awaiting_end") <= float64(outstanding)
	})
}

// AssertNoneInFlight waits for every decided request's end report, then
// fails the test for each runner that still counts a request in flight.
func (s *Stack) AssertNoneInFlight() {
	s.t.Helper()
	s.Settle(0)
	var list struct{ Runners []map[string]any }
	s.Admin(http.MethodGet, "/v1/runners", "", &list)
	for _, r := range list.Runners {
		if r["in_flight"].(float64) != 0 {
			s.t.Errorf("runner %v: %v in flight once every request ended", r["address"], r["in_flight"])
		}
	}
}

// Metric reads one sample of switchyard's /metrics, e.g.
// `switchyard_config_reloads_total{result="error"}`; absent is 0.
func (s *Stack) Metric(series string) float64 {
	s.t.Helper()
	resp, err := http.Get(s.AdminURL + "/metrics")
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(raw), "\n") {
		if rest, ok := strings.CutPrefix(line, series+" "); ok {
			v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			if err != nil {
				s.t.Fatalf("metric %s: %v", series, err)
			}
			return v
		}
	}
	return 0
}

// EnvoyStats reads Envoy's counters and gauges.
func (s *Stack) EnvoyStats() map[string]uint64 {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := s.Envoy.Stats(ctx)
	if err != nil {
		s.t.Fatal(err)
	}
	return st
}

// EnvoyHosts returns, for a cluster, each host address with its health
// flags as Envoy's admin /clusters shows them ("healthy" when none).
func (s *Stack) EnvoyHosts(cluster string) map[string]string {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	raw, err := s.Envoy.Get(ctx, "/clusters")
	if err != nil {
		s.t.Fatal(err)
	}
	hosts := map[string]string{}
	for _, line := range strings.Split(string(raw), "\n") {
		parts := strings.Split(line, "::")
		if len(parts) == 4 && parts[0] == cluster && parts[2] == "health_flags" {
			hosts[parts[1]] = parts[3]
		}
	}
	return hosts
}

// Eventually polls cond every 20 ms until it holds or timeout passes.
func Eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > timeout {
			t.Fatalf("%s: not true after %v", what, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return time.Since(start)
}
