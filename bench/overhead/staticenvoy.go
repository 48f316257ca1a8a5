package overhead

import (
	"bytes"
	"context"
	_ "embed"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"text/template"
	"time"

	"github.com/switchyard/switchyard/envoy"
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
	*proc
	url string
	dir string
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
	p, err := startProc("static envoy", exec.Command(bin,
		"-c", cfgPath,
		"--disable-hot-restart",
		"--concurrency", strconv.Itoa(envoyConcurrency),
		"-l", "warning",
		"--admin-address-path", addrPath,
	))
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	e := &staticEnvoy{proc: p, url: "http://127.0.0.1:" + strconv.Itoa(listen), dir: dir}
	if err := e.waitReady(ctx, addrPath); err != nil {
		e.stop()
		return nil, p.failure(err)
	}
	return e, nil
}

// waitReady waits for admin /ready and for the listener to accept.
func (e *staticEnvoy) waitReady(ctx context.Context, addrPath string) error {
	client := &http.Client{Timeout: time.Second}
	err := e.proc.waitReady(ctx, 20*time.Second, 25*time.Millisecond, "not ready", func() bool {
		b, err := os.ReadFile(addrPath)
		if err != nil || len(bytes.TrimSpace(b)) == 0 {
			return false
		}
		resp, err := client.Get("http://" + strings.TrimSpace(string(b)) + "/ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	if err != nil {
		return err
	}
	return waitListening(ctx, strings.TrimPrefix(e.url, "http://"))
}

func (e *staticEnvoy) stop() {
	e.proc.stop()
	os.RemoveAll(e.dir)
}

func waitListening(ctx context.Context, addr string) error {
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not listening: %w", addr, err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}
