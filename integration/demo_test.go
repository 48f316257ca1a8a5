package integration

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/testutil/syncio"
)

// `make demo` in a short mode: the demo config on free ports, 3 seconds of
// load, a complete results table, a clean stop.
func TestDemoShort(t *testing.T) {
	text := runDemo(t)
	for _, want := range []string{"Stack ready at", "Requests: 60 sent", "100.0% answered 200", "hit rate", "Stopping."} {
		if !strings.Contains(text, want) {
			t.Errorf("demo output lacks %q:\n%s", want, text)
		}
	}
	// The pipeline requests: all answered, each step to its pool by size.
	for _, want := range []string{"Pipelines (/v1/pipelines/draft-then-final, draft then final):", "100.0% answered 200, p50", "draft → a100", "final → h100"} {
		if !strings.Contains(text, want) {
			t.Errorf("demo output lacks %q:\n%s", want, text)
		}
	}
	checkPoolTable(t, text)
}

// The demo through two edges: a summary per edge, then the fleet's table.
func TestDemoEdges(t *testing.T) {
	text := runDemo(t, "--edges", "2")
	for _, want := range []string{"2 edges ready at", "Edge 1 (http://", "Edge 2 (http://", "All 2 edges:", "Requests: 60 sent", "100.0% answered 200", "Stopping."} {
		if !strings.Contains(text, want) {
			t.Errorf("demo output lacks %q:\n%s", want, text)
		}
	}
	if n := strings.Count(text, "Requests: 30 sent"); n != 2 {
		t.Errorf("%d edges report 30 requests, want both:\n%s", n, text)
	}
	checkPoolTable(t, text)
}

func checkPoolTable(t *testing.T, text string) {
	t.Helper()
	for _, pool := range []string{"a100", "h100", "model-v1", "all"} {
		m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(pool) + `\s+(\d+)`).FindStringSubmatch(text)
		if m == nil || m[1] == "0" {
			t.Errorf("results table has no requests for %s:\n%s", pool, text)
		}
	}
}

// runDemo runs a 3-second demo (20 requests/s) of the demo config on free
// ports, with extra flags, and returns its output.
func runDemo(t *testing.T, extra ...string) string {
	t.Helper()
	cmd, _ := demoCommand(t, append([]string{"--duration", "3s", "--rate", "20", "--sim-load-time", "100ms"}, extra...)...)
	var out syncio.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	if err := cmd.Run(); err != nil {
		t.Fatalf("demo failed: %v\n%s", err, out.String())
	}
	t.Logf("short demo took %v", time.Since(start).Round(time.Millisecond))
	return out.String()
}

// demoCommand is `switchyard demo` of the demo config moved to free ports,
// with flags, and its admin API's URL.
func demoCommand(t *testing.T, flags ...string) (*exec.Cmd, string) {
	t.Helper()
	raw, err := os.ReadFile("../internal/dev/demo/demo.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg := string(raw)
	// Move every fixed port of the demo config to a free one.
	for _, port := range regexp.MustCompile(`(?:port: |127\.0\.0\.1:)(\d{4,5})`).FindAllStringSubmatch(cfg, -1) {
		cfg = strings.ReplaceAll(cfg, port[0], strings.Replace(port[0], port[1], strconv.Itoa(freePort(t)), 1))
	}
	adminAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	cfg += fmt.Sprintf("server: {grpc: 127.0.0.1:%d, admin: %s, pipelines: 127.0.0.1:%d}\n", freePort(t), adminAddr, freePort(t))
	dir := t.TempDir()
	path := filepath.Join(dir, "demo.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return exec.Command(switchyardBin, append([]string{"demo", "--config", path, "--envoy-admin-port", "0", "--log-dir", filepath.Join(dir, "logs")}, flags...)...), "http://" + adminAddr
}
