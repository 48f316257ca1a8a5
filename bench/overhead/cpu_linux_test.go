package overhead

import (
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// TestTreeCPU checks that treeCPU finds a grandchild and counts it as Envoy
// by its command name: a copy of sh named "envoy" that spins, under another
// sh.
func TestTreeCPU(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh")
	}
	b, err := os.ReadFile(sh)
	if err != nil {
		t.Fatal(err)
	}
	fake := filepath.Join(t.TempDir(), "envoy")
	if err := os.WriteFile(fake, b, 0o755); err != nil {
		t.Fatal(err)
	}
	// The trailing wait keeps the outer sh from exec'ing into the inner one.
	cmd := exec.Command(sh, "-c", `"$0" -c 'i=0; while [ $i -lt 1000000 ]; do i=$((i+1)); done; sleep 60' & wait`, fake)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
	}()
	deadline := time.Now().Add(20 * time.Second)
	for {
		ct, err := treeCPU(cmd.Process.Pid)
		if err != nil {
			t.Fatal(err)
		}
		if ct.envoy > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the spinning \"envoy\" grandchild was not counted: %+v", ct)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := treeCPU(1 << 30); err == nil {
		t.Error("treeCPU of a pid that does not exist: no error")
	}
}

func TestParseStat(t *testing.T) {
	p, err := parseStat([]byte("4242 (a) (b c) S 17 4242 4242 0 -1 4194304 98 0 0 0 123 45 6 7 20 0 1 0 1344577 3133440 363\n"))
	if err != nil {
		t.Fatal(err)
	}
	if want := (procStat{ppid: 17, comm: "a) (b c", ticks: 168}); p != want {
		t.Errorf("got %+v, want %+v", p, want)
	}
	for _, bad := range []string{"", "4242 a S 1", "4242 (a) S 1 2 3"} {
		if _, err := parseStat([]byte(bad)); err == nil {
			t.Errorf("parseStat(%q): no error", bad)
		}
	}
}
