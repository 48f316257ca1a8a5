//go:build linux

package envoy_test

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	discoverygrpc "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"google.golang.org/grpc"

	"github.com/switchyard/switchyard/envoy"
	"github.com/switchyard/switchyard/internal/supervise/supervisetest"
	"github.com/switchyard/switchyard/internal/testutil/syncio"
)

// envoyBin returns the Envoy binary or fails the test: the real-Envoy tests
// are part of `make test` and must not silently skip.
func envoyBin(t *testing.T) string {
	t.Helper()
	bin, err := envoy.Find()
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// startADS runs a minimal ADS server on 127.0.0.1:0 that answers node
// switchyard-edge with no listeners and no clusters, which is enough for
// Envoy's initial LDS/CDS fetch to complete.
func startADS(t *testing.T) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	snapshots := cachev3.NewSnapshotCache(true, cachev3.IDHash{}, nil)
	snap, err := cachev3.NewSnapshot("1", map[resourcev3.Type][]types.Resource{
		resourcev3.ListenerType: {},
		resourcev3.ClusterType:  {},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := snapshots.SetSnapshot(ctx, envoy.DefaultNodeID, snap); err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	discoverygrpc.RegisterAggregatedDiscoveryServiceServer(gs, serverv3.NewServer(ctx, snapshots, nil))
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = gs.Serve(lis) }()
	t.Cleanup(func() {
		cancel()
		gs.Stop()
	})
	return lis.Addr().String()
}

func TestStartReadyStatsStop(t *testing.T) {
	t.Parallel()
	bin := envoyBin(t)
	xds := startADS(t)

	var out bytes.Buffer
	begin := time.Now()
	p, err := envoy.Start(context.Background(), envoy.StartOptions{
		Binary:    bin,
		Bootstrap: envoy.BootstrapOptions{XDSAddress: xds},
		Log:       &syncio.Writer{W: &out},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("Envoy ready in %v at %s (pid %d)", time.Since(begin).Round(time.Millisecond), p.AdminURL(), p.Pid())
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			_ = p.Stop()
		}
		if t.Failed() {
			t.Logf("Envoy log:\n%s", p.Log())
		}
	})

	if !strings.HasPrefix(p.AdminURL(), "http://127.0.0.1:") || strings.HasSuffix(p.AdminURL(), ":0") {
		t.Errorf("AdminURL = %q", p.AdminURL())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ready, err := p.Get(ctx, "/ready")
	if err != nil || strings.TrimSpace(string(ready)) != "LIVE" {
		t.Errorf("/ready = %q, %v", ready, err)
	}
	stats, err := p.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := stats["control_plane.connected_state"]; got != 1 {
		t.Errorf("control_plane.connected_state = %d, want 1", got)
	}
	if got := stats["cluster_manager.cds.update_success"]; got < 1 {
		t.Errorf("cluster_manager.cds.update_success = %d, want >= 1", got)
	}
	if got := stats["listener_manager.lds.update_success"]; got < 1 {
		t.Errorf("listener_manager.lds.update_success = %d, want >= 1", got)
	}
	if _, err := p.Get(ctx, "/no-such-admin-page"); err == nil {
		t.Error("Get of an unknown admin page did not fail")
	}
	if !strings.Contains(p.Log(), "starting main dispatch loop") {
		t.Error("Log() does not hold Envoy's start-up log")
	}

	pid := p.Pid()
	dir := filepath.Dir(mustConfigPath(t, pid))
	begin = time.Now()
	// Envoy exits 0 on SIGTERM.
	supervisetest.StopCleanly(t, p)
	stopped = true
	t.Logf("Envoy stopped in %v", time.Since(begin).Round(time.Millisecond))
	// Stop has reaped Envoy, so not even a zombie may be left.
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("Envoy pid %d still exists after Stop (kill 0: %v)", pid, err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("temporary dir %s not removed: %v", dir, err)
	}
	if !strings.Contains(out.String(), "starting main dispatch loop") {
		t.Error("opts.Log did not receive Envoy's output")
	}
}

// mustConfigPath finds the -c argument of the running Envoy.
func mustConfigPath(t *testing.T, pid int) string {
	t.Helper()
	cmdline, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "cmdline"))
	if err != nil {
		t.Fatal(err)
	}
	args := strings.Split(string(cmdline), "\x00")
	for i, a := range args {
		if a == "-c" && i+1 < len(args) {
			return args[i+1]
		}
	}
	t.Fatalf("no -c in %q", args)
	return ""
}

func TestStartFailsWithoutControlPlane(t *testing.T) {
	t.Parallel()
	bin := envoyBin(t)
	// A port nothing listens on: Envoy starts but never gets its first
	// LDS/CDS answer, so it never becomes ready.
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	lis.Close()

	dir := t.TempDir()
	begin := time.Now()
	p, err := envoy.Start(context.Background(), envoy.StartOptions{
		Binary:       bin,
		Dir:          dir,
		Bootstrap:    envoy.BootstrapOptions{XDSAddress: addr},
		ReadyTimeout: 1500 * time.Millisecond,
	})
	if err == nil {
		_ = p.Stop()
		t.Fatal("Start succeeded without a control plane")
	}
	t.Logf("error after %v:\n%v", time.Since(begin).Round(time.Millisecond), err)
	for _, want := range []string{"not ready", "INITIALIZING", "log"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %q", want)
		}
	}
	// Start must not leave the Envoy it started behind.
	if out, _ := exec.Command("pgrep", "-f", filepath.Join(dir, "bootstrap.json")).Output(); len(out) > 0 {
		t.Errorf("Envoy still running after failed Start: pids %s", out)
	}
}

func TestStartReportsEnvoyExit(t *testing.T) {
	t.Parallel()
	bin := envoyBin(t)
	// An unknown flag makes Envoy exit at once; Start must say so quickly,
	// with Envoy's own complaint, instead of waiting for the timeout.
	begin := time.Now()
	_, err := envoy.Start(context.Background(), envoy.StartOptions{
		Binary:       bin,
		Args:         []string{"--no-such-flag"},
		ReadyTimeout: 10 * time.Second,
	})
	if err == nil {
		t.Fatal("Start succeeded with a bad flag")
	}
	if d := time.Since(begin); d > 5*time.Second {
		t.Errorf("Start took %v to notice Envoy exited", d)
	}
	if !strings.Contains(err.Error(), "exited") || !strings.Contains(err.Error(), "no-such-flag") {
		t.Errorf("error = %v", err)
	}
}

func TestStartHonoursContext(t *testing.T) {
	t.Parallel()
	bin := envoyBin(t)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err := envoy.Start(ctx, envoy.StartOptions{
		Binary:    bin,
		Bootstrap: envoy.BootstrapOptions{XDSAddress: "127.0.0.1:1"},
	})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want context.DeadlineExceeded", err)
	}
}

// TestEnvoyAcceptsBootstrap has Envoy itself validate the embedded file and
// Bootstrap's JSON.
func TestEnvoyAcceptsBootstrap(t *testing.T) {
	t.Parallel()
	bin := envoyBin(t)
	dir := t.TempDir()
	js, err := envoy.Bootstrap(envoy.BootstrapOptions{XDSAddress: "[::]:18000", NodeID: "edge-2"})
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{"bootstrap.yaml": envoy.BootstrapFile(), "bootstrap.json": js}
	for name, b := range files {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(bin, "--mode", "validate", "--disable-hot-restart", "-c", path).CombinedOutput()
		if err != nil || !bytes.Contains(out, []byte("OK")) {
			t.Errorf("envoy --mode validate %s: %v\n%s", name, err, out)
		}
	}
}
