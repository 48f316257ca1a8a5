package integration

import (
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/dev/simrunner"
	"github.com/switchyard/switchyard/internal/testutil/syncio"
)

// With server.admin_auth, only a caller with a token changes routing: an
// unauthenticated or wrongly authenticated registration is refused and
// routes nothing; the simulated runner registers, renews and drains with
// its token file; a token is rotated by listing the new file and
// reloading, then dropping the old one.
func TestAdminAuthRegistration(t *testing.T) {
	dir := t.TempDir()
	oldTok, newTok := filepath.Join(dir, "old.token"), filepath.Join(dir, "new.token")
	os.WriteFile(oldTok, []byte("old-runner-token-0123456789\n"), 0o600)
	os.WriteFile(newTok, []byte("new-runner-token-0123456789\n"), 0o600)
	body := `pools: [{name: gpu}]
routes:
  - name: gen
    match: {prefix: /}
    rules: [{pool: gpu}]
`
	s := NewStack(t, StackConfig{Server: "admin_auth: {token_files: [" + oldTok + "]}", Body: body})

	put := func(addr, authorization string) int {
		req, _ := http.NewRequest(http.MethodPut, s.AdminURL+"/v1/pools/gpu/runners/"+addr, strings.NewReader(`{"ttl_seconds": 30}`))
		if authorization != "" {
			req.Header.Set("Authorization", authorization)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	runners := func() int {
		var list struct{ Runners []map[string]any }
		s.Admin(http.MethodGet, "/v1/runners", "", &list)
		return len(list.Runners)
	}
	// An attacker's runner: refused, nothing routed to it.
	intruder := runnersNamed(t, simrunner.Options{}, "intruder")[0]
	for _, a := range []string{"", "Bearer wrong-token-0123456789"} {
		if got := put(intruder.Addr, a); got != http.StatusUnauthorized {
			t.Errorf("registration with %q: %d, want 401", a, got)
		}
	}
	if n := runners(); n != 0 {
		t.Fatalf("refused registrations added %d runners", n)
	}
	if r := s.MustDo(http.MethodPost, "/gen", nil, tinyBody); r.Status != http.StatusServiceUnavailable || intruder.Requests() != 0 {
		t.Fatalf("with no runner registered: status %d, intruder served %d", r.Status, intruder.Requests())
	}
	if got := s.Metric(`switchyard_admin_denied_total{reason="missing"}`) + s.Metric(`switchyard_admin_denied_total{reason="invalid"}`); got != 2 {
		t.Errorf("denied registrations counted: %v, want 2", got)
	}

	// The simulated runner registers with its token file.
	var simLog syncio.Buffer
	sim := exec.Command(switchyardBin, "sim-runner", "--listen", "127.0.0.1:"+strconv.Itoa(freePort(t)), "--name", "sim-1",
		"--load-time", "0s", "--infer-time", "0s", "--register", s.AdminURL, "--pool", "gpu", "--ttl", "3s", "--token-file", oldTok)
	sim.Stdout, sim.Stderr = &simLog, &simLog
	if err := sim.Start(); err != nil {
		t.Fatal(err)
	}
	defer sim.Process.Kill()
	Eventually(t, 10*time.Second, "the sim-runner registered", func() bool { return runners() == 1 })
	Eventually(t, 10*time.Second, "requests reach the sim-runner", func() bool {
		return s.MustDo(http.MethodPost, "/gen", nil, tinyBody).Runner() == "sim-1"
	})

	// Rotation: both files listed, then only the new one.
	s.WriteConfig(strings.Replace(s.ReadConfig(), "token_files: ["+oldTok+"]", "token_files: ["+oldTok+", "+newTok+"]", 1))
	Eventually(t, 10*time.Second, "the new token accepted", func() bool { return put("127.0.0.1:1", "Bearer new-runner-token-0123456789") == http.StatusOK })
	if got := put("127.0.0.1:2", "Bearer old-runner-token-0123456789"); got != http.StatusOK {
		t.Errorf("old token during the rotation: %d, want 200", got)
	}
	s.WriteConfig(strings.Replace(s.ReadConfig(), "token_files: ["+oldTok+", "+newTok+"]", "token_files: ["+newTok+"]", 1))
	Eventually(t, 10*time.Second, "the old token refused", func() bool {
		return put("127.0.0.1:3", "Bearer old-runner-token-0123456789") == http.StatusUnauthorized
	})

	// The runner drains with the token it has: switch its file's content
	// to the new token, as a rotation would, then stop it.
	os.WriteFile(oldTok, []byte("new-runner-token-0123456789\n"), 0o600)
	sim.Process.Signal(syscall.SIGTERM)
	if err := sim.Wait(); err != nil {
		t.Errorf("sim-runner: %v\n%s", err, simLog.String())
	}
	if !strings.Contains(simLog.String(), "deregistered") {
		t.Errorf("the sim-runner did not deregister:\n%s", simLog.String())
	}
}
