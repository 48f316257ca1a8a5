package envoy

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/switchyard/switchyard/internal/supervise"
)

const defaultReadyTimeout = 20 * time.Second

// StartOptions configure [Start]. The zero value is usable when a control
// plane listens on [DefaultXDSAddress].
type StartOptions struct {
	// Bootstrap is passed to [Bootstrap]. AdminPort 0 (the zero value) lets
	// Envoy pick a free admin port, which suits parallel tests.
	Bootstrap BootstrapOptions
	// Binary is the Envoy executable; empty means [Find].
	Binary string
	// Dir receives bootstrap.json, the admin address file and, with
	// Bootstrap.TLS and no Bootstrap.SecretsDir, the SDS files of
	// [BootstrapSecrets]. Empty means a new temporary directory, removed by
	// Stop.
	Dir string
	// Concurrency is Envoy's worker thread count; 0 means 1.
	Concurrency int
	// LogLevel is Envoy's -l level; empty means "info".
	LogLevel string
	// Log, if set, also receives Envoy's stdout and stderr as they are
	// written. The log is always kept in memory too, see [Process.Log].
	Log io.Writer
	// ReadyTimeout bounds the wait for admin /ready to answer LIVE; 0 means
	// 20s. Envoy is not ready until its first CDS and then LDS answers arrive
	// (about 0.1s with a local control plane). Without a control plane each
	// waits out its 15s initial_fetch_timeout, one after the other, so Envoy
	// 1.40 only turns LIVE after about 30s: start the control plane first.
	ReadyTimeout time.Duration
	// Args are extra command-line arguments, appended last.
	Args []string
}

// Process is a running Envoy started by [Start].
type Process struct {
	proc     *supervise.Process
	adminURL string
	xds      string // for error messages
	node     string
	dir      string
	ownDir   bool
	client   *http.Client

	cleanupOnce sync.Once
}

// Start runs Envoy with the bootstrap from opts.Bootstrap and returns once
// its admin API reports ready. ctx bounds only the start-up: after Start
// returns, Envoy runs until [Process.Stop] (or until it exits by itself).
//
// Envoy runs under package supervise: in its own process group, so a
// terminal's Ctrl-C reaches only the caller, which decides when to stop
// Envoy, and on Linux killed if the starting process dies.
//
// If Envoy exits or does not become ready in time, Start stops it and returns
// an error that includes the tail of its log.
func Start(ctx context.Context, opts StartOptions) (*Process, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("envoy: not started: %w", err)
	}
	bin := opts.Binary
	if bin == "" {
		var err error
		if bin, err = Find(); err != nil {
			return nil, err
		}
	}
	var err error
	p := &Process{
		xds:    cmp.Or(opts.Bootstrap.XDSAddress, DefaultXDSAddress),
		node:   cmp.Or(opts.Bootstrap.NodeID, DefaultNodeID),
		dir:    opts.Dir,
		client: &http.Client{Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}},
	}
	if p.dir == "" {
		if p.dir, err = os.MkdirTemp("", "switchyard-envoy-"); err != nil {
			return nil, fmt.Errorf("envoy: %w", err)
		}
		p.ownDir = true
	} else if err := os.MkdirAll(p.dir, 0o755); err != nil {
		return nil, fmt.Errorf("envoy: %w", err)
	}
	bo := opts.Bootstrap
	if bo.TLS != nil && bo.SecretsDir == "" {
		bo.SecretsDir = p.dir
	}
	cfg, err := Bootstrap(bo)
	if err != nil {
		p.cleanupDir()
		return nil, err
	}
	secrets, err := BootstrapSecrets(bo)
	if err != nil {
		p.cleanupDir()
		return nil, err
	}
	for path, b := range secrets {
		if err := os.WriteFile(path, b, 0o644); err != nil {
			p.cleanupDir()
			return nil, fmt.Errorf("envoy: %w", err)
		}
	}
	cfgPath := filepath.Join(p.dir, "bootstrap.json")
	addrPath := filepath.Join(p.dir, "admin-address")
	// A stale address file from an earlier run in the same Dir would point
	// at the wrong (or a dead) admin port.
	if err := os.Remove(addrPath); err != nil && !errors.Is(err, os.ErrNotExist) {
		p.cleanupDir()
		return nil, fmt.Errorf("envoy: %w", err)
	}
	if err := os.WriteFile(cfgPath, cfg, 0o644); err != nil {
		p.cleanupDir()
		return nil, fmt.Errorf("envoy: %w", err)
	}

	concurrency := opts.Concurrency
	if concurrency <= 0 {
		concurrency = 1
	}
	level := opts.LogLevel
	if level == "" {
		level = "info"
	}
	args := []string{
		"-c", cfgPath,
		// Several Envoys on one machine must not share hot-restart memory.
		"--disable-hot-restart",
		"--concurrency", strconv.Itoa(concurrency),
		"-l", level,
		"--admin-address-path", addrPath,
	}
	args = append(args, opts.Args...)

	timeout := opts.ReadyTimeout
	if timeout <= 0 {
		timeout = defaultReadyTimeout
	}
	cmd := exec.Command(bin, args...)
	// switchyard's dynamic module (server.edge_module) is Go: its runtime
	// must not check pointers handed to Envoy (see cmd/switchyard-module).
	cmd.Env = append(os.Environ(), "GODEBUG=cgocheck=0")
	p.proc, err = supervise.Start(ctx, cmd, supervise.Options{
		Name:         "Envoy",
		Tee:          opts.Log,
		Ready:        p.readyProbe(addrPath),
		ReadyTimeout: timeout,
	})
	if err != nil {
		p.cleanupDir()
		return nil, fmt.Errorf("envoy: %w", err)
	}
	return p, nil
}

// readyProbe waits for the admin address file, then for /ready == 200.
func (p *Process) readyProbe(addrPath string) supervise.Probe {
	return func(ctx context.Context) error {
		// Re-read until ready: the file might be caught half-written.
		b, err := os.ReadFile(addrPath)
		addr := strings.TrimSpace(string(b))
		if err != nil || addr == "" {
			return errors.New("admin address file not written yet")
		}
		p.adminURL = "http://" + addr
		qctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		body, code, err := p.get(qctx, "/ready")
		switch {
		case err != nil:
			return fmt.Errorf("admin /ready: %w", err)
		case code != http.StatusOK:
			// 503 PRE_INITIALIZING or INITIALIZING: normally still waiting
			// for the first LDS/CDS answer from the control plane.
			return fmt.Errorf("admin /ready answered %d %s (Envoy is ready only after its first LDS and CDS answers; is the control plane at %s serving node %q?)",
				code, strings.TrimSpace(string(body)), p.xds, p.node)
		}
		return nil
	}
}

// AdminURL is the base URL of Envoy's admin API, e.g. http://127.0.0.1:9901.
func (p *Process) AdminURL() string { return p.adminURL }

// Pid is Envoy's process id (also its process group id on Unix).
func (p *Process) Pid() int { return p.proc.Pid() }

// Log returns Envoy's output so far (the last 4 MiB if it wrote more).
func (p *Process) Log() string { return p.proc.Log() }

// Done is closed when Envoy has exited.
func (p *Process) Done() <-chan struct{} { return p.proc.Done() }

// Wait blocks until Envoy exits and returns its exit error (nil for status 0).
func (p *Process) Wait() error { return p.proc.Wait() }

// Stop asks Envoy to exit (SIGTERM), kills it if it has not exited within
// 5s, waits for it and removes the directory Start created. It is safe to
// call more than once and from several goroutines; every call returns the
// same result. Stop returns nil when Envoy exited cleanly or because of
// Stop's signals, and otherwise the error it exited with earlier (e.g. a
// crash).
func (p *Process) Stop() error {
	err := p.proc.Stop()
	p.cleanupOnce.Do(p.cleanupDir)
	return err
}

func (p *Process) cleanupDir() {
	if p.ownDir {
		_ = os.RemoveAll(p.dir)
	}
}

// Get fetches path (e.g. "/clusters?format=json") from the admin API and
// returns the body; a non-2xx answer is an error.
func (p *Process) Get(ctx context.Context, path string) ([]byte, error) {
	body, code, err := p.get(ctx, path)
	if err != nil {
		return nil, fmt.Errorf("envoy: admin %s: %w", path, err)
	}
	if code < 200 || code > 299 {
		return body, fmt.Errorf("envoy: admin %s: HTTP %d: %s", path, code, strings.TrimSpace(string(body)))
	}
	return body, nil
}

func (p *Process) get(ctx context.Context, path string) ([]byte, int, error) {
	if p.adminURL == "" {
		return nil, 0, errors.New("admin address not known yet")
	}
	if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.adminURL+path, nil)
	if err != nil {
		return nil, 0, err
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return body, resp.StatusCode, err
}

// Stats returns Envoy's counters and gauges by name (from the admin
// /stats?format=json). Histograms and text readouts are left out.
func (p *Process) Stats(ctx context.Context) (map[string]uint64, error) {
	body, err := p.Get(ctx, "/stats?format=json")
	if err != nil {
		return nil, err
	}
	return parseStats(body)
}

func parseStats(body []byte) (map[string]uint64, error) {
	var doc struct {
		Stats []struct {
			Name  string          `json:"name"`
			Value json.RawMessage `json:"value"`
		} `json:"stats"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return nil, fmt.Errorf("envoy: parse /stats?format=json: %w", err)
	}
	stats := make(map[string]uint64, len(doc.Stats))
	for _, s := range doc.Stats {
		if s.Name == "" || len(s.Value) == 0 {
			continue // the histograms entry
		}
		v, err := strconv.ParseUint(string(s.Value), 10, 64)
		if err != nil {
			continue // text readouts (quoted strings)
		}
		stats[s.Name] = v
	}
	return stats, nil
}
