package overhead

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/switchyard/switchyard/envoy"
	"github.com/switchyard/switchyard/internal/dev/simrunner"
	"github.com/switchyard/switchyard/internal/edgemodule"
	"github.com/switchyard/switchyard/internal/testutil/netutil"
)

// Paths: how a request gets to the runner.
const (
	PathDirect     = "direct"
	PathEnvoy      = "envoy"
	PathSwitchyard = "switchyard"
	// PathModule is switchyard with server.edge_module: the decision in
	// Envoy's process, by switchyard's dynamic module.
	PathModule       = "switchyard-module"
	PathGoRouter     = "go-router"
	PathPythonRouter = "python-router"
)

// setup is one measured combination of a path and a payload.
type setup struct {
	name, path, payload, desc string
	req                       request
	rateDiv                   int           // runs at the suite's rates divided by this
	idle                      time.Duration // a single request's latency on an idle machine
	base                      string        // base URL of the first hop
	client                    *http.Client
	// procs is the process whose tree does the path's work, whose CPU time
	// is measured; 0 for none (direct, or no /proc to read it from).
	procs int
}

// Description of each path, for the JSON and the Markdown.
var pathDesc = map[string]string{
	PathDirect:       "client → runner",
	PathEnvoy:        "client → Envoy (static listener + cluster, no ext_proc) → runner",
	PathSwitchyard:   "client → Envoy + switchyard ext_proc → runner (the real stack)",
	PathModule:       "client → Envoy + switchyard's dynamic module, deciding in Envoy (server.edge_module) → runner",
	PathGoRouter:     "client → Go router app (net/http, encoding/json, httputil.ReverseProxy) → runner",
	PathPythonRouter: "client → Python router app (FastAPI on uvicorn, httpx AsyncClient) → runner",
}

// rateDiv: 1 MB bodies run at a tenth of the suite's rates.
var rateDiv = map[string]int{PayloadHeaders: 1, Payload64KB: 1, Payload1MB: 10}

// switchyard says s is one of switchyard's stacks: a switchyard process
// and its Envoy, whose CPU is shown apart.
func (s *setup) switchyard() bool { return s.path == PathSwitchyard || s.path == PathModule }

// rate is the rate s runs at when the suite runs at rate.
func (s *setup) rate(rate int) int { return max(1, rate/s.rateDiv) }

// plan lists the setups in a fixed order: paths outermost.
var plan = []struct{ path, payload string }{
	{PathDirect, PayloadHeaders}, {PathDirect, Payload64KB}, {PathDirect, Payload1MB},
	{PathEnvoy, PayloadHeaders}, {PathEnvoy, Payload64KB}, {PathEnvoy, Payload1MB},
	{PathSwitchyard, PayloadHeaders}, {PathSwitchyard, Payload64KB}, {PathSwitchyard, Payload1MB},
	{PathModule, PayloadHeaders}, {PathModule, Payload64KB}, {PathModule, Payload1MB},
	{PathGoRouter, PayloadHeaders}, {PathGoRouter, Payload64KB},
	{PathPythonRouter, PayloadHeaders}, {PathPythonRouter, Payload64KB},
}

// stackConfig is switchyard's config: two pools on the one runner (the rule
// has to choose between something), a route that reads only headers and one
// whose rule reads body fields, so Envoy buffers the body for ext_proc. The
// last argument is extra server keys: the module's stack is the same
// config with server.edge_module.
const stackConfig = `listeners:
  - {name: public, address: 127.0.0.1, port: %d}
server:
  grpc: 127.0.0.1:%d
  admin: 127.0.0.1:%d
%[5]spools:
  - name: small
    max_concurrency: 1000
    runners: [{address: %[4]s}]
  - name: large
    max_concurrency: 1000
    runners: [{address: %[4]s}]
routes:
  - name: headers
    match: {prefix: /hdr/}
    rules:
      - when: int(headers["x-pixels"]) <= 1048576
        pool: small
      - pool: large
  - name: body
    match: {prefix: /}
    rules:
      - when: body.width * body.height <= 1048576
        pool: small
      - pool: large
`

// env is everything the setups run on.
type env struct {
	runner       *child
	goRouter     *child
	py           *pyRouter
	envoy        *staticEnvoy
	stack        *child
	module       *child // the stack with server.edge_module
	dir          string
	envoyVersion string
	stats        *http.Client
}

func startEnv(ctx context.Context) (_ *env, err error) {
	e := &env{stats: &http.Client{Timeout: 2 * time.Second}}
	defer func() {
		if err != nil {
			e.stop()
		}
	}()
	// Checked first: a missing Envoy or Python dependency should fail in a
	// second, with the install command, not after the rest has started.
	bin, err := envoy.Find()
	if err != nil {
		return nil, err
	}
	if out, verr := exec.CommandContext(ctx, bin, "--version").Output(); verr == nil {
		e.envoyVersion = envoyVersion(string(out))
	}
	if _, err := findPython(); err != nil {
		return nil, err
	}

	if e.runner, err = startChild(ctx, childSpec{Role: "runner"}); err != nil {
		return nil, err
	}
	runnerURL := "http://" + e.runner.addr

	if e.py, err = startPyRouter(ctx, runnerURL, runnerURL); err != nil {
		return nil, err
	}
	if e.goRouter, err = startChild(ctx, childSpec{Role: "go-router", Small: runnerURL, Large: runnerURL}); err != nil {
		return nil, err
	}
	if e.envoy, err = startStaticEnvoy(ctx, e.runner.addr); err != nil {
		return nil, err
	}

	if e.dir, err = os.MkdirTemp("", "switchyard-overhead-"); err != nil {
		return nil, err
	}
	var ports [3]int
	for i := range ports {
		if ports[i], err = netutil.FreePort(); err != nil {
			return nil, err
		}
	}
	cfgPath := filepath.Join(e.dir, "switchyard.yaml")
	if err := os.WriteFile(cfgPath, fmt.Appendf(nil, stackConfig, ports[0], ports[1], ports[2], e.runner.addr, ""), 0o644); err != nil {
		return nil, err
	}
	e.stack, err = startChild(ctx, childSpec{Role: "stack", Config: cfgPath, Listen: net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[0]))})
	if err != nil {
		return nil, fmt.Errorf("switchyard stack: %w", err)
	}

	// The module is built from this tree, so the run measures this code.
	lib, err := edgemodule.Build(ctx, e.dir)
	if err != nil {
		return nil, err
	}
	for i := range ports {
		if ports[i], err = netutil.FreePort(); err != nil {
			return nil, err
		}
	}
	modPath := filepath.Join(e.dir, "switchyard-module.yaml")
	if err := os.WriteFile(modPath, fmt.Appendf(nil, stackConfig, ports[0], ports[1], ports[2], e.runner.addr, "  edge_module: "+lib+"\n"), 0o644); err != nil {
		return nil, err
	}
	e.module, err = startChild(ctx, childSpec{Role: "stack", Config: modPath, Listen: net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[0]))})
	if err != nil {
		return nil, fmt.Errorf("switchyard stack with the module: %w", err)
	}
	return e, nil
}

func (e *env) stop() {
	if e.stack != nil {
		e.stack.stop()
	}
	if e.module != nil {
		e.module.stop()
	}
	if e.envoy != nil {
		e.envoy.stop()
	}
	if e.py != nil {
		e.py.stop()
	}
	if e.goRouter != nil {
		e.goRouter.stop()
	}
	if e.runner != nil {
		e.runner.stop()
	}
	if e.dir != "" {
		os.RemoveAll(e.dir)
	}
}

// runnerStats reads the runner's request counters.
func (e *env) runnerStats(ctx context.Context) (simrunner.Stats, error) {
	var st simrunner.Stats
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+e.runner.addr+"/_sim/stats", nil)
	if err != nil {
		return st, err
	}
	resp, err := e.stats.Do(req)
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return st, fmt.Errorf("runner stats: HTTP %d", resp.StatusCode)
	}
	return st, json.NewDecoder(resp.Body).Decode(&st)
}

// settle waits until nothing is on its way to the runner any more (none in
// flight, no new request for 100ms), then until a single request through s
// is about as fast as on an idle machine, at most 20s in all: a setup that fell behind must not hand
// its backlog to the next one. (A router keeps forwarding requests whose
// client has already given up.)
func (e *env) settle(ctx context.Context, s *setup) {
	deadline := time.Now().Add(20 * time.Second)
	var last int64 = -1
	for time.Now().Before(deadline) && ctx.Err() == nil {
		st, err := e.runnerStats(ctx)
		if err == nil && st.InFlight == 0 && st.Requests == last {
			break
		}
		last = st.Requests
		time.Sleep(100 * time.Millisecond)
	}
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if d, err := s.probe(ctx); err == nil && d < max(20*time.Millisecond, 4*s.idle) {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// setups builds the plan's setups, each with its own client (its own
// keep-alive pool, kept across the attacks of a run).
func (e *env) setups(timeout time.Duration) ([]*setup, error) {
	base := map[string]string{
		PathDirect:       "http://" + e.runner.addr,
		PathEnvoy:        e.envoy.url,
		PathSwitchyard:   "http://" + e.stack.addr,
		PathModule:       "http://" + e.module.addr,
		PathGoRouter:     "http://" + e.goRouter.addr,
		PathPythonRouter: e.py.url,
	}
	// The switchyard stack child runs switchyard's server in its own process
	// and Envoy as its child; the other processes are each their path's own.
	procs := map[string]int{
		PathEnvoy:        e.envoy.proc.Pid(),
		PathSwitchyard:   e.stack.proc.Pid(),
		PathModule:       e.module.proc.Pid(),
		PathGoRouter:     e.goRouter.proc.Pid(),
		PathPythonRouter: e.py.proc.Pid(),
	}
	if !cpuMeasured {
		clear(procs)
	}
	var out []*setup
	for _, p := range plan {
		req, err := newRequest(p.payload)
		if err != nil {
			return nil, err
		}
		out = append(out, &setup{
			name: p.path + "/" + p.payload, path: p.path, payload: p.payload, desc: pathDesc[p.path],
			req: req, rateDiv: rateDiv[p.payload], base: base[p.path], client: newClient(timeout),
			procs: procs[p.path],
		})
	}
	return out, nil
}

func newClient(timeout time.Duration) *http.Client {
	return &http.Client{
		Timeout: timeout,
		Transport: &http.Transport{
			Proxy:               nil,
			DialContext:         (&net.Dialer{Timeout: 2 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConnsPerHost: 10000,
			IdleConnTimeout:     5 * time.Minute,
			DisableCompression:  true,
		},
	}
}

// probe sends one request through s and says whether it succeeded.
func (s *setup) probe(ctx context.Context) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.base+s.req.path, bytes.NewReader(s.req.body))
	if err != nil {
		return 0, err
	}
	req.Header = s.req.header.Clone()
	start := time.Now()
	resp, err := s.client.Do(req)
	if err != nil {
		return 0, err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	d := time.Since(start)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	if err == nil && s.switchyard() && resp.Header.Get("x-switchyard-pool") != "small" {
		err = errors.New("switchyard did not route the request to pool small (x-switchyard-pool: " + resp.Header.Get("x-switchyard-pool") + ")")
	}
	return d, err
}

// envoyVersion picks "1.40.0" out of `envoy --version` ("… version:
// <commit>/1.40.0/Clean/RELEASE/BoringSSL").
func envoyVersion(out string) string {
	if i := strings.Index(out, "version: "); i >= 0 {
		if f := strings.Fields(out[i+len("version: "):]); len(f) > 0 {
			if parts := strings.Split(f[0], "/"); len(parts) > 1 {
				return parts[1]
			}
			return f[0]
		}
	}
	return strings.TrimSpace(out)
}
