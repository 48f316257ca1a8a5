// Package soak is the long-running stability check behind `make soak`: the
// real stack (`switchyard up`: switchyard and its Envoy, as processes of
// their own) under a steady request stream in which every request carries
// a hint never seen before, while runners keep registering and draining.
// It samples switchyard's and Envoy's memory, switchyard's goroutines and
// the gRPC streams between them at the start, along the way and at the end,
// so that a leak shows as growth.
package soak

import (
	"bufio"
	"bytes"
	"context"
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
	"sync"
	"sync/atomic"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"

	"github.com/switchyard/switchyard/internal/testutil/netutil"
)

// Options shape a run.
type Options struct {
	Duration time.Duration // of the request stream; 30 minutes when zero
	Rate     int           // requests per second; 600 when zero
	Samples  int           // taken evenly over the run, the first after a warm-up; 7 when zero
	Log      io.Writer
}

// Sample is the stack's state at one moment.
type Sample struct {
	AtSeconds           float64 `json:"at_s"`
	Requests            int64   `json:"requests"`
	Failed              int64   `json:"failed"`
	DistinctHints       int64   `json:"distinct_hints"`
	RunnerChanges       int64   `json:"runner_changes"`
	SwitchyardRSSMiB    float64 `json:"switchyard_rss_mib"`
	SwitchyardHeapMiB   float64 `json:"switchyard_heap_mib"`
	Goroutines          float64 `json:"switchyard_goroutines"`
	AwaitingEnd         float64 `json:"switchyard_requests_awaiting_end"`
	EnvoyRSSMiB         float64 `json:"envoy_rss_mib"`
	EnvoyAllocMiB       float64 `json:"envoy_allocated_mib"`
	StreamsToSwitchyard float64 `json:"envoy_streams_to_switchyard"`
	XDSStreams          float64 `json:"switchyard_xds_streams"`
}

// Result is a whole run.
type Result struct {
	DurationSeconds float64  `json:"duration_seconds"`
	Rate            int      `json:"rate"`
	Runners         int      `json:"runners"`
	ChurnRunners    int      `json:"churn_runners"`
	Samples         []Sample `json:"samples"`
}

const (
	staticRunners = 4
	churnRunners  = 4
)

// Run builds switchyard, starts the stack and the runners on loopback, and
// drives it for o.Duration.
func Run(ctx context.Context, o Options) (*Result, error) {
	if o.Duration == 0 {
		o.Duration = 30 * time.Minute
	}
	if o.Rate == 0 {
		o.Rate = 600
	}
	if o.Samples < 2 {
		o.Samples = 7
	}
	logf := func(format string, args ...any) {
		if o.Log != nil {
			fmt.Fprintf(o.Log, format+"\n", args...)
		}
	}
	dir, err := os.MkdirTemp("", "switchyard-soak-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	bin, err := build(ctx, dir)
	if err != nil {
		return nil, err
	}
	var procs []*exec.Cmd
	defer func() {
		for _, p := range procs {
			p.Process.Signal(os.Interrupt)
		}
		for _, p := range procs {
			p.Wait()
		}
	}()
	start := func(args ...string) (*exec.Cmd, io.Reader, error) {
		cmd := exec.CommandContext(ctx, bin, args...)
		out, err := cmd.StdoutPipe()
		if err != nil {
			return nil, nil, err
		}
		cmd.Stderr = io.Discard
		if err := cmd.Start(); err != nil {
			return nil, nil, err
		}
		procs = append(procs, cmd)
		return cmd, out, nil
	}
	var static, churn []string
	for i := range staticRunners + churnRunners {
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort()))
		_, out, err := start("sim-runner", "--listen", addr, "--name", fmt.Sprintf("r%d", i+1),
			"--load-time", "1ms", "--infer-time", "1ms", "--slots", "8")
		if err != nil {
			return nil, err
		}
		go io.Copy(io.Discard, out)
		if i < staticRunners {
			static = append(static, addr)
		} else {
			churn = append(churn, addr)
		}
	}
	edge, admin := freePort(), freePort()
	cfg := fmt.Sprintf(`listeners: [{name: public, address: 127.0.0.1, port: %d}]
server: {grpc: 127.0.0.1:%d, admin: 127.0.0.1:%d}
pools:
  - name: gpu
    max_concurrency: 64
    runners: [%s]
routes:
  - {name: gen, match: {prefix: /}, rules: [{pool: gpu}]}
`, edge, freePort(), admin, runnerList(static))
	cfgPath := filepath.Join(dir, "switchyard.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		return nil, err
	}
	up, out, err := start("up", "--config", cfgPath, "--envoy-admin-port", "0", "--log-dir", filepath.Join(dir, "up"))
	if err != nil {
		return nil, err
	}
	envoyPid, envoyAdmin, err := waitUp(out, 60*time.Second)
	if err != nil {
		return nil, fmt.Errorf("switchyard up: %w", err)
	}
	st := &stack{
		adminURL: fmt.Sprintf("http://127.0.0.1:%d", admin), envoyAdmin: envoyAdmin,
		switchyardPid: up.Process.Pid, envoyPid: envoyPid, client: &http.Client{Timeout: 5 * time.Second},
	}
	logf("soak: stack up (switchyard pid %d, envoy pid %d); %d req/s for %v, a new hint on every request", st.switchyardPid, envoyPid, o.Rate, o.Duration)

	// Runners come and go: every second one more registers (TTL 5 s) and
	// the one registered four seconds before drains.
	var changes atomic.Int64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			st.call(http.MethodPut, "/v1/pools/gpu/runners/"+churn[i%len(churn)], `{"ttl_seconds": 5}`)
			if i >= len(churn)-1 {
				st.call(http.MethodDelete, "/v1/pools/gpu/runners/"+churn[(i+1)%len(churn)], "")
			}
			changes.Add(2)
		}
	}()

	// Every request a hint of its own.
	var hints, sent, failed atomic.Int64
	targeter := func(t *vegeta.Target) error {
		t.Method, t.URL = http.MethodPost, fmt.Sprintf("http://127.0.0.1:%d/gen", edge)
		t.Body = []byte(`{"width": 64, "height": 64}`)
		t.Header = http.Header{"Content-Type": {"application/json"}, "X-Fal-Runner-Hint": {"soak-" + strconv.FormatInt(hints.Add(1), 36)}}
		return nil
	}
	began := time.Now()
	loadDone := make(chan struct{})
	go func() {
		defer close(loadDone)
		atk := vegeta.NewAttacker(vegeta.Timeout(10 * time.Second))
		stop := context.AfterFunc(ctx, func() { atk.Stop() })
		defer stop()
		for res := range atk.Attack(targeter, vegeta.ConstantPacer{Freq: o.Rate, Per: time.Second}, o.Duration, "soak") {
			sent.Add(1)
			if res.Code != http.StatusOK {
				failed.Add(1)
			}
		}
	}()

	r := &Result{DurationSeconds: o.Duration.Seconds(), Rate: o.Rate, Runners: staticRunners, ChurnRunners: churnRunners}
	take := func() {
		s := st.sample()
		s.AtSeconds = time.Since(began).Seconds()
		s.Requests, s.Failed, s.DistinctHints, s.RunnerChanges = sent.Load(), failed.Load(), hints.Load(), changes.Load()
		r.Samples = append(r.Samples, s)
		logf("soak: %6.0fs  %d requests (%d failed), switchyard %.0f MiB RSS / %.0f MiB heap / %.0f goroutines, envoy %.0f MiB RSS, %.0f streams to switchyard, %.0f awaiting",
			s.AtSeconds, s.Requests, s.Failed, s.SwitchyardRSSMiB, s.SwitchyardHeapMiB, s.Goroutines, s.EnvoyRSSMiB, s.StreamsToSwitchyard, s.AwaitingEnd)
	}
	warmUp := min(10*time.Second, o.Duration/10)
	every := (o.Duration - warmUp) / time.Duration(o.Samples-1)
	timer := time.NewTimer(warmUp)
	for len(r.Samples) < o.Samples-1 {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-timer.C:
		}
		take()
		timer.Reset(every)
	}
	<-loadDone
	time.Sleep(2 * time.Second) // the last requests' ends reported
	take()
	cancel()
	wg.Wait()
	return r, nil
}

// build compiles switchyard from this module into dir.
func build(ctx context.Context, dir string) (string, error) {
	root, err := exec.CommandContext(ctx, "go", "list", "-m", "-f", "{{.Dir}}").Output()
	if err != nil {
		return "", fmt.Errorf("finding the module: %w", err)
	}
	bin := filepath.Join(dir, "switchyard")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/switchyard")
	cmd.Dir = strings.TrimSpace(string(root))
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build: %w\n%s", err, out)
	}
	return bin, nil
}

var envoyLine = regexp.MustCompile(`envoy admin\s+(\S+)\s+\(pid (\d+)\)`)

// waitUp reads `switchyard up`'s output until it is ready.
func waitUp(out io.Reader, timeout time.Duration) (pid int, adminURL string, err error) {
	type found struct {
		pid int
		url string
		err error
	}
	done := make(chan found, 1)
	go func() {
		sc := bufio.NewScanner(out)
		var f found
		for sc.Scan() {
			line := sc.Text()
			if m := envoyLine.FindStringSubmatch(line); m != nil {
				f.url = m[1]
				f.pid, _ = strconv.Atoi(m[2])
			}
			if strings.HasPrefix(line, "ready: send requests to") {
				done <- f
				io.Copy(io.Discard, out)
				return
			}
		}
		done <- found{err: fmt.Errorf("exited before it was ready")}
	}()
	select {
	case f := <-done:
		if f.err == nil && f.pid == 0 {
			f.err = fmt.Errorf("no envoy admin line")
		}
		return f.pid, f.url, f.err
	case <-time.After(timeout):
		return 0, "", fmt.Errorf("not ready within %v", timeout)
	}
}

type stack struct {
	adminURL, envoyAdmin    string
	switchyardPid, envoyPid int
	client                  *http.Client
}

func (s *stack) call(method, path, body string) {
	req, err := http.NewRequest(method, s.adminURL+path, strings.NewReader(body))
	if err != nil {
		return
	}
	if resp, err := s.client.Do(req); err == nil {
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
}

func (s *stack) sample() Sample {
	sw := s.scrape(s.adminURL+"/metrics", " ")
	ev := s.scrape(s.envoyAdmin+"/stats", ": ")
	return Sample{
		SwitchyardRSSMiB:    rssMiB(s.switchyardPid),
		SwitchyardHeapMiB:   sw["go_memstats_heap_inuse_bytes"] / (1 << 20),
		Goroutines:          sw["go_goroutines"],
		AwaitingEnd:         sw["switchyard_requests_awaiting_end"],
		XDSStreams:          sw["switchyard_xds_connected_clients"],
		EnvoyRSSMiB:         rssMiB(s.envoyPid),
		EnvoyAllocMiB:       ev["server.memory_allocated"] / (1 << 20),
		StreamsToSwitchyard: ev["cluster.switchyard_extproc.upstream_rq_active"],
	}
}

// scrape reads "name<sep>value" lines (Prometheus text, Envoy's /stats).
func (s *stack) scrape(url, sep string) map[string]float64 {
	out := map[string]float64{}
	resp, err := s.client.Get(url)
	if err != nil {
		return out
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	for _, line := range bytes.Split(raw, []byte("\n")) {
		k, v, ok := strings.Cut(string(line), sep)
		if !ok || strings.HasPrefix(k, "#") {
			continue
		}
		if f, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil {
			out[k] = f
		}
	}
	return out
}

// rssMiB is a process's resident memory.
func rssMiB(pid int) float64 {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(rest)
			if len(f) > 0 {
				kb, _ := strconv.ParseFloat(f[0], 64)
				return kb / 1024
			}
		}
	}
	return 0
}

func runnerList(addrs []string) string {
	var parts []string
	for _, a := range addrs {
		parts = append(parts, "{address: "+a+"}")
	}
	return strings.Join(parts, ", ")
}

func freePort() int {
	p, _ := netutil.FreePort()
	return p
}
