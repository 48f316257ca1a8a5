//go:build linux

package supervise_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/supervise"
	"github.com/switchyard/switchyard/internal/supervise/supervisetest"
	"github.com/switchyard/switchyard/internal/testutil/syncio"
)

// shell runs script with sh; "$1" in it is file, which the script writes to
// tell the test something (a pid, that it is ready) without racing the copy
// of its output into the log.
func shell(script, file string) *exec.Cmd {
	return exec.Command("sh", "-c", script, "sh", file)
}

// fileProbe passes once path holds something, which it then returns through
// *content.
func fileProbe(path string, content *string) supervise.Probe {
	return func(context.Context) error {
		b, err := os.ReadFile(path)
		if err != nil || len(bytes.TrimSpace(b)) == 0 {
			return errors.New("file not written yet")
		}
		*content = strings.TrimSpace(string(b))
		return nil
	}
}

// gone reports whether the process with this pid has exited (a zombie
// waiting for a reaper counts as gone).
func gone(pid int) bool {
	if errors.Is(syscall.Kill(pid, 0), syscall.ESRCH) {
		return true
	}
	stat, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return errors.Is(err, os.ErrNotExist)
	}
	// pid (comm) state ...; comm may contain spaces and parentheses.
	s := string(stat)
	i := strings.LastIndexByte(s, ')')
	return i >= 0 && i+2 < len(s) && s[i+2] == 'Z'
}

// waitGone waits up to 3s for pid to exit: a signalled process dies a little
// after the signal is sent.
func waitGone(t *testing.T, pid int, what string) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for !gone(pid) {
		if time.Now().After(deadline) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("%s (pid %d) still running", what, pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestStartReadyLogStop(t *testing.T) {
	t.Parallel()
	ready := filepath.Join(t.TempDir(), "ready")
	var tee syncio.Buffer
	var got string
	p, err := supervise.Start(context.Background(), shell(`
		trap 'echo bye from TERM; exit 0' TERM
		echo to stdout
		echo to stderr >&2
		echo yes > "$1"
		while :; do sleep 0.05; done`, ready), supervise.Options{
		Name:         "child",
		Tee:          &tee,
		Ready:        fileProbe(ready, &got),
		ReadyTimeout: 10 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			_ = p.Stop()
		}
	})
	if got != "yes" {
		t.Fatalf("Start returned before the probe passed (it saw %q)", got)
	}
	pid := p.Pid()
	if pgid, err := syscall.Getpgid(pid); err != nil || pgid != pid {
		t.Errorf("child's process group = %d, %v; want its own, %d", pgid, err, pid)
	}
	select {
	case <-p.Done():
		t.Fatal("Done closed while the child runs")
	default:
	}

	// The child exits 0 only from its TERM trap: it was asked, not killed.
	supervisetest.StopCleanly(t, p)
	stopped = true
	if !gone(pid) {
		t.Errorf("child pid %d still exists after Stop", pid)
	}
	for _, want := range []string{"to stdout", "to stderr", "bye from TERM"} {
		if !strings.Contains(p.Log(), want) {
			t.Errorf("Log() lacks %q:\n%s", want, p.Log())
		}
		if !strings.Contains(tee.String(), want) {
			t.Errorf("Tee did not receive %q:\n%s", want, tee.String())
		}
	}
}

func TestStopReachesTheGroup(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "grandchild")
	var got string
	p, err := supervise.Start(context.Background(), shell(`
		sleep 600 &
		echo $! > "$1.tmp" && mv "$1.tmp" "$1"
		wait`, file), supervise.Options{Ready: fileProbe(file, &got), ReadyTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	grandchild, err := strconv.Atoi(got)
	if err != nil {
		_ = p.Stop()
		t.Fatalf("grandchild pid %q: %v", got, err)
	}
	if err := p.Stop(); err != nil {
		t.Errorf("Stop = %v, want nil for an exit by SIGTERM", err)
	}
	if err := p.Wait(); err == nil || !strings.Contains(err.Error(), "terminated") {
		t.Errorf("Wait = %v, want death by SIGTERM", err)
	}
	waitGone(t, grandchild, "a process the child started")
}

func TestStopKillsAfterGrace(t *testing.T) {
	t.Parallel()
	ready := filepath.Join(t.TempDir(), "ready")
	var got string
	const grace = 200 * time.Millisecond
	p, err := supervise.Start(context.Background(), shell(`
		trap '' TERM
		echo yes > "$1"
		while :; do sleep 0.05; done`, ready), supervise.Options{
		Ready:        fileProbe(ready, &got),
		ReadyTimeout: 10 * time.Second,
		Grace:        grace,
	})
	if err != nil {
		t.Fatal(err)
	}
	pid := p.Pid()
	begin := time.Now()
	if err := p.Stop(); err != nil {
		t.Errorf("Stop = %v, want nil for an exit by Stop's SIGKILL", err)
	}
	if d := time.Since(begin); d < grace {
		t.Errorf("Stop killed after %v, before the %v grace", d, grace)
	}
	if err := p.Wait(); err == nil || !strings.Contains(err.Error(), "killed") {
		t.Errorf("Wait = %v, want death by SIGKILL", err)
	}
	if !gone(pid) {
		t.Errorf("child pid %d still exists after Stop", pid)
	}
}

func TestKill(t *testing.T) {
	t.Parallel()
	ready := filepath.Join(t.TempDir(), "ready")
	var got string
	p, err := supervise.Start(context.Background(), shell(`
		trap 'echo bye from TERM; exit 0' TERM
		echo yes > "$1"
		while :; do sleep 0.05; done`, ready), supervise.Options{Ready: fileProbe(ready, &got), ReadyTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Kill(); err != nil {
		t.Errorf("Kill: %v", err)
	}
	if err := p.Wait(); err == nil || !strings.Contains(err.Error(), "killed") {
		t.Errorf("Wait = %v, want death by SIGKILL", err)
	}
	if strings.Contains(p.Log(), "bye from TERM") {
		t.Error("Kill sent SIGTERM first")
	}
	if err := p.Stop(); err != nil {
		t.Errorf("Stop after Kill: %v", err)
	}
}

func TestStopReportsEarlierExit(t *testing.T) {
	t.Parallel()
	p, err := supervise.Start(context.Background(), exec.Command("sh", "-c", "echo crashing >&2; exit 3"), supervise.Options{})
	if err != nil {
		t.Fatal(err)
	}
	<-p.Done()
	for i := range 2 {
		if err := p.Stop(); err == nil || !strings.Contains(err.Error(), "exit status 3") {
			t.Errorf("Stop #%d = %v, want the child's own exit status 3", i+1, err)
		}
	}
	if err := p.Wait(); err == nil || !strings.Contains(err.Error(), "exit status 3") {
		t.Errorf("Wait = %v", err)
	}
	if !strings.Contains(p.Log(), "crashing") {
		t.Errorf("Log() = %q", p.Log())
	}
}

func TestStopFromSeveralGoroutines(t *testing.T) {
	t.Parallel()
	p, err := supervise.Start(context.Background(), exec.Command("sleep", "600"), supervise.Options{})
	if err != nil {
		t.Fatal(err)
	}
	const callers = 8
	errs := make(chan error, callers)
	for range callers {
		go func() { errs <- p.Stop() }()
	}
	for range callers {
		if err := <-errs; err != nil {
			t.Errorf("Stop: %v", err)
		}
	}
}

func TestStartReportsExit(t *testing.T) {
	t.Parallel()
	// A child that dies at once: Start must say so quickly, with the child's
	// own complaint, instead of waiting for the timeout.
	begin := time.Now()
	_, err := supervise.Start(context.Background(), exec.Command("sh", "-c", "echo 'unknown flag --no-such-flag' >&2; exit 2"), supervise.Options{
		Name:         "child",
		Ready:        func(context.Context) error { return errors.New("never") },
		ReadyTimeout: 10 * time.Second,
	})
	if err == nil {
		t.Fatal("Start succeeded though the child exited")
	}
	t.Logf("error:\n%v", err)
	if d := time.Since(begin); d > 5*time.Second {
		t.Errorf("Start took %v to notice the child exited", d)
	}
	for _, want := range []string{"child exited", "exit status 2", "no-such-flag", "log"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %q", want)
		}
	}
}

func TestStartNotReady(t *testing.T) {
	t.Parallel()
	pidFile := filepath.Join(t.TempDir(), "pid")
	calls := 0
	begin := time.Now()
	_, err := supervise.Start(context.Background(), shell(`echo $$ > "$1"; echo waiting for something; exec sleep 600`, pidFile), supervise.Options{
		Name: "child",
		Ready: func(ctx context.Context) error {
			calls++
			if calls == 1 {
				return errors.New("still INITIALIZING")
			}
			<-ctx.Done() // an attempt that the deadline cuts short
			return ctx.Err()
		},
		ReadyTimeout: 300 * time.Millisecond,
	})
	if err == nil {
		t.Fatal("Start succeeded though the probe never passed")
	}
	t.Logf("error after %v:\n%v", time.Since(begin).Round(time.Millisecond), err)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("error does not wrap context.DeadlineExceeded")
	}
	for _, want := range []string{"child not ready", "still INITIALIZING", "log", "waiting for something"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %q", want)
		}
	}
	// Start must not leave the child it started behind.
	b, rerr := os.ReadFile(pidFile)
	pid, perr := strconv.Atoi(strings.TrimSpace(string(b)))
	if rerr != nil || perr != nil {
		t.Fatalf("child's pid file: %v %v", rerr, perr)
	}
	if !gone(pid) {
		_ = syscall.Kill(pid, syscall.SIGKILL)
		t.Errorf("child pid %d still running after failed Start", pid)
	}
}

func TestStartHonoursContext(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	never := func(context.Context) error { return errors.New("never") }
	_, err := supervise.Start(ctx, exec.Command("sleep", "600"), supervise.Options{Ready: never})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want context.DeadlineExceeded", err)
	}

	done, cancel2 := context.WithCancel(context.Background())
	cancel2()
	cmd := exec.Command("sleep", "600")
	_, err = supervise.Start(done, cmd, supervise.Options{Ready: never})
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "not started") {
		t.Errorf("err = %v, want not started: context.Canceled", err)
	}
	if cmd.Process != nil {
		_ = cmd.Process.Kill()
		t.Error("Start ran the command under a cancelled context")
	}
}

func TestStartRefusesCallerOutput(t *testing.T) {
	t.Parallel()
	cmd := exec.Command("true")
	cmd.Stdout = &bytes.Buffer{}
	if _, err := supervise.Start(context.Background(), cmd, supervise.Options{}); err == nil {
		t.Error("Start accepted a command whose output the caller already took")
	}
	if cmd.Process != nil {
		t.Error("Start ran the command anyway")
	}
}

func TestStartMissingBinary(t *testing.T) {
	t.Parallel()
	missing := filepath.Join(t.TempDir(), "no-such-binary")
	_, err := supervise.Start(context.Background(), exec.Command(missing), supervise.Options{Name: "thing"})
	if err == nil || !strings.Contains(err.Error(), "thing did not start") || !strings.Contains(err.Error(), missing) {
		t.Errorf("err = %v", err)
	}
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func TestTeeErrorDoesNotStallChild(t *testing.T) {
	t.Parallel()
	// More than a pipe holds: a copy stopped by the tee's error would block
	// the child forever.
	p, err := supervise.Start(context.Background(), exec.Command("sh", "-c", `head -c 1000000 /dev/zero | tr '\0' x; echo; echo end`),
		supervise.Options{Tee: failingWriter{}, Grace: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.Done():
	case <-time.After(10 * time.Second):
		_ = p.Stop()
		t.Fatal("child did not finish writing")
	}
	if err := p.Wait(); err != nil {
		t.Errorf("Wait: %v", err)
	}
	if !strings.HasSuffix(p.Log(), "end\n") {
		t.Errorf("Log() ends with %q", p.Log()[max(0, len(p.Log())-20):])
	}
}

const helperEnv = "SWITCHYARD_SUPERVISE_TEST_HELPER"

// TestHelperStartChild is not a test: TestNoOrphanWhenParentKilled runs the
// test binary with it as a parent that starts a child and then gets killed.
func TestHelperStartChild(t *testing.T) {
	if os.Getenv(helperEnv) != "1" {
		return
	}
	p, err := supervise.Start(context.Background(), exec.Command("sleep", "600"), supervise.Options{})
	if err != nil {
		fmt.Println("ERROR", strings.ReplaceAll(err.Error(), "\n", " | "))
		os.Exit(1)
	}
	fmt.Println("PID", p.Pid())
	time.Sleep(time.Minute) // until the test kills us
	os.Exit(1)
}

func TestNoOrphanWhenParentKilled(t *testing.T) {
	t.Parallel()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperStartChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), helperEnv+"=1")
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()

	pid := 0
	sc := bufio.NewScanner(stdout)
	for pid == 0 && sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "PID "); ok {
			pid, _ = strconv.Atoi(rest)
		} else if strings.HasPrefix(sc.Text(), "ERROR") {
			t.Fatal(sc.Text())
		}
	}
	if pid == 0 {
		t.Fatalf("helper did not report its child's pid (%v)", sc.Err())
	}
	if gone(pid) {
		t.Fatalf("child pid %d not running while its parent is", pid)
	}

	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	waitGone(t, pid, "child of a killed parent")
}
