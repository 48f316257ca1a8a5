package integration

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/testutil/syncio"
)

// `switchyard up` starts everything, serves traffic, and Ctrl-C stops
// everything with no process left behind.
func TestUpStopsCleanly(t *testing.T) {
	dir := t.TempDir()
	edge := freePort(t)
	runnerA, runnerB := freePort(t), freePort(t)
	cfg := fmt.Sprintf(`listeners: [{name: public, address: 127.0.0.1, port: %d}]
server: {grpc: 127.0.0.1:%d, admin: 127.0.0.1:%d}
pools:
  - {name: a, runners: [{address: 127.0.0.1:%d}]}
  - {name: b, runners: [{address: 127.0.0.1:%d}]}
routes:
  - {name: b, match: {prefix: /b}, rules: [{pool: b}]}
  - {name: a, match: {prefix: /}, rules: [{pool: a}]}
`, edge, freePort(t), freePort(t), runnerA, runnerB)
	path := filepath.Join(dir, "switchyard.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	up := startUp(t, dir, "--config", path, "--simulate", "--sim-load-time", "10ms", "--envoy-admin-port", "0")
	out := up.waitFor(t, regexp.MustCompile(`^ready: send requests to http://127\.0\.0\.1:`+strconv.Itoa(edge)))
	envoyPid := 0
	pidRE := regexp.MustCompile(`\(pid (\d+)\)`)
	for _, line := range out {
		if m := pidRE.FindStringSubmatch(line); m != nil {
			envoyPid, _ = strconv.Atoi(m[1])
		}
	}
	if envoyPid == 0 {
		t.Fatalf("up did not print Envoy's pid:\n%s", strings.Join(out, "\n"))
	}
	resp, err := http.Post(fmt.Sprintf("http://127.0.0.1:%d/b/x", edge), "application/json", strings.NewReader(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("x-switchyard-pool") != "b" || resp.Header.Get("x-sim-runner") != "b-1" {
		t.Fatalf("through up: %d pool %q runner %q", resp.StatusCode, resp.Header.Get("x-switchyard-pool"), resp.Header.Get("x-sim-runner"))
	}

	up.interrupt(t)
	if err := syscall.Kill(envoyPid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("Envoy (pid %d) still exists after up stopped: %v", envoyPid, err)
	}
	for _, port := range []int{edge, runnerA, runnerB} {
		if c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(port), time.Second); err == nil {
			c.Close()
			t.Errorf("port %d still accepts connections after up stopped", port)
		}
	}
}

// upRun is a running `switchyard up` and the lines it printed.
type upRun struct {
	cmd    *exec.Cmd
	lines  chan string
	exited chan error
	out    []string
}

// startUp runs `switchyard up` with args and its logs in dir/logs; the
// logs are shown when the test fails.
func startUp(t *testing.T, dir string, args ...string) *upRun {
	t.Helper()
	cmd := exec.Command(switchyardBin, append([]string{"up", "--log-dir", filepath.Join(dir, "logs")}, args...)...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr syncio.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	u := &upRun{cmd: cmd, lines: make(chan string, 100), exited: make(chan error, 1)}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			u.lines <- sc.Text()
		}
		close(u.lines)
		u.exited <- cmd.Wait()
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		if t.Failed() {
			logs, _ := filepath.Glob(filepath.Join(dir, "logs", "*.log"))
			for _, f := range logs {
				b, _ := os.ReadFile(f)
				t.Logf("==== %s ====\n%s", filepath.Base(f), b)
			}
			t.Logf("==== stderr ====\n%s", stderr.String())
		}
	})
	return u
}

// waitFor reads up's output until a line matches re, and returns all read.
func (u *upRun) waitFor(t *testing.T, re *regexp.Regexp) []string {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		select {
		case line, ok := <-u.lines:
			if !ok {
				t.Fatalf("up exited before it was ready:\n%s", strings.Join(u.out, "\n"))
			}
			u.out = append(u.out, line)
			if re.MatchString(line) {
				return u.out
			}
		case <-deadline:
			t.Fatalf("up not ready after 30s:\n%s", strings.Join(u.out, "\n"))
		}
	}
}

// interrupt is Ctrl-C: up must exit cleanly within 20 s.
func (u *upRun) interrupt(t *testing.T) {
	t.Helper()
	if err := u.cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-u.exited:
		if err != nil {
			t.Fatalf("up exited with %v after Ctrl-C", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("up did not stop within 20s of Ctrl-C")
	}
}

// `switchyard up --edges 2`: two edges in front of the same simulated
// runners, one line each; a model loaded through edge 1 is a hit through
// edge 2.
func TestUpEdges(t *testing.T) {
	dir := t.TempDir()
	edge := freePort(t)
	cfg := fmt.Sprintf(`listeners: [{name: public, address: 127.0.0.1, port: %d}]
server: {grpc: 127.0.0.1:%d, admin: 127.0.0.1:%d}
pools:
  - {name: gpu, runners: [{address: 127.0.0.1:%d}, {address: 127.0.0.1:%d}]}
routes:
  - {name: gen, match: {prefix: /}, rules: [{pool: gpu}]}
`, edge, freePort(t), freePort(t), freePort(t), freePort(t))
	path := filepath.Join(dir, "switchyard.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	up := startUp(t, dir, "--config", path, "--simulate", "--sim-load-time", "100ms", "--envoy-admin-port", "0", "--edges", "2")
	ready := regexp.MustCompile(`^ready: edge (\d) (http://\S+) \(admin (http://\S+)\)$`)
	var edges, admins []string
	for len(edges) < 2 {
		out := up.waitFor(t, ready)
		m := ready.FindStringSubmatch(out[len(out)-1])
		if m[1] != strconv.Itoa(len(edges)+1) {
			t.Fatalf("edge %s announced as number %d", m[1], len(edges)+1)
		}
		edges = append(edges, m[2])
		admins = append(admins, m[3])
	}
	if want := fmt.Sprintf("http://127.0.0.1:%d", edge+100); edges[1] != want {
		t.Errorf("edge 2 at %s, want %s (the config's port + 100)", edges[1], want)
	}
	send := func(url string) (runner, hint string) {
		req, _ := http.NewRequest(http.MethodPost, url+"/gen", strings.NewReader(`{}`))
		req.Header.Set("x-fal-runner-hint", "flux")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.Header.Get("x-sim-runner"), resp.Header.Get("x-switchyard-hint")
	}
	warm, hint := send(edges[0])
	if hint != "miss" || warm == "" {
		t.Fatalf("first request through edge 1: runner %q hint %q", warm, hint)
	}
	// Edge 2 has sent nothing: what it knows of the runner's models came
	// through the shared state.
	Eventually(t, 2*time.Second, "edge 2 knows the model loaded through edge 1", func() bool {
		resp, err := http.Get(admins[1] + "/v1/runners")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		return strings.Contains(string(raw), `"flux"`)
	})
	if r, h := send(edges[1]); r != warm || h != "hit" {
		t.Errorf("first request through edge 2: runner %q hint %q, want %q (hit)", r, h, warm)
	}
	up.interrupt(t)
}
