package overhead

import (
	"bytes"
	"context"
	_ "embed"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"text/template"
	"time"

	"github.com/switchyard/switchyard/envoy"
	"github.com/switchyard/switchyard/internal/supervise"
	"github.com/switchyard/switchyard/internal/testutil/netutil"
)

//go:embed envoy-static.yaml
var staticBootstrap string

// envoyConcurrency is the worker count of both Envoys (the static one and the
// stack's): two workers on two cores, as the stack runs by default.
const envoyConcurrency = 2

// staticEnvoy is "Envoy alone": the project's Envoy binary with a static
// bootstrap that forwards everything to the runner.
type staticEnvoy struct {
	proc *supervise.Process
	url  string
	dir  string
}

func startStaticEnvoy(ctx context.Context, runnerAddr string) (*staticEnvoy, error) {
	bin, err := envoy.Find()
	if err != nil {
		return nil, err
	}
	host, port, err := net.SplitHostPort(runnerAddr)
	if err != nil {
		return nil, err
	}
	listen, err := netutil.FreePort()
	if err != nil {
		return nil, err
	}
	var cfg bytes.Buffer
	err = template.Must(template.New("bootstrap").Parse(staticBootstrap)).Execute(&cfg, map[string]any{
		"ListenPort": listen, "RunnerHost": host, "RunnerPort": port,
	})
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "switchyard-overhead-envoy-")
	if err != nil {
		return nil, err
	}
	cfgPath := filepath.Join(dir, "envoy-static.yaml")
	addrPath := filepath.Join(dir, "admin-address")
	if err := os.WriteFile(cfgPath, cfg.Bytes(), 0o644); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	listenAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(listen))
	p, err := supervise.Start(ctx, exec.Command(bin,
		"-c", cfgPath,
		"--disable-hot-restart",
		"--concurrency", strconv.Itoa(envoyConcurrency),
		"-l", "warning",
		"--admin-address-path", addrPath,
	), supervise.Options{
		Name:         "static envoy",
		Ready:        staticReady(addrPath, listenAddr),
		ReadyTimeout: 20 * time.Second,
	})
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return &staticEnvoy{proc: p, url: "http://" + listenAddr, dir: dir}, nil
}

// staticReady passes once admin /ready answers 200 and the listener accepts:
// /ready alone can come a moment before the listener is bound.
func staticReady(addrPath, listenAddr string) supervise.Probe {
	return func(ctx context.Context) error {
		b, err := os.ReadFile(addrPath)
		admin := strings.TrimSpace(string(b))
		if err != nil || admin == "" {
			return errors.New("admin address file not written yet")
		}
		if err := supervise.HTTPOK("http://" + admin + "/ready")(ctx); err != nil {
			return err
		}
		return supervise.Listening(listenAddr)(ctx)
	}
}

func (e *staticEnvoy) stop() {
	_ = e.proc.Stop()
	os.RemoveAll(e.dir)
}
