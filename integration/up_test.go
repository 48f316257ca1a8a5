package integration

import (
	"bufio"
	"errors"
	"fmt"
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
	cmd := exec.Command(switchyardBin, "up", "--config", path, "--simulate", "--sim-load-time", "10ms",
		"--envoy-admin-port", "0", "--log-dir", filepath.Join(dir, "logs"))
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr syncio.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	lines := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		exited <- cmd.Wait()
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		if t.Failed() {
			for _, f := range []string{"switchyard.log", "envoy.log"} {
				b, _ := os.ReadFile(filepath.Join(dir, "logs", f))
				t.Logf("==== %s ====\n%s", f, b)
			}
			t.Logf("==== stderr ====\n%s", stderr.String())
		}
	})

	envoyPid := 0
	pidRE := regexp.MustCompile(`\(pid (\d+)\)`)
	deadline := time.After(30 * time.Second)
	var out []string
wait:
	for {
		select {
		case line, ok := <-lines:
			if !ok {
				t.Fatalf("up exited before it was ready:\n%s", strings.Join(out, "\n"))
			}
			out = append(out, line)
			if m := pidRE.FindStringSubmatch(line); m != nil {
				envoyPid, _ = strconv.Atoi(m[1])
			}
			if strings.HasPrefix(line, "ready: send requests to http://127.0.0.1:"+strconv.Itoa(edge)) {
				break wait
			}
		case <-deadline:
			t.Fatalf("up not ready after 30s:\n%s", strings.Join(out, "\n"))
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

	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("up exited with %v after Ctrl-C", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("up did not stop within 20s of Ctrl-C")
	}
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
