package integration

import (
	"bytes"
	"fmt"
	"math"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/switchyard/switchyard/internal/config"
	"github.com/switchyard/switchyard/internal/dev/simrunner"
)

// examplesDir holds one folder per documented scenario: switchyard.yaml,
// checks.yaml (the requests its README shows and what they must get) and
// README.md.
const examplesDir = "../examples"

// The address and port every example's listener uses, as its README's curl
// commands do.
const exampleEdge = "http://127.0.0.1:10000"

// exampleSim keeps the simulated GPUs fast so the examples run in seconds;
// the checks' large requests (scaled by width x height) still take long
// enough to be caught in flight.
var exampleSim = simrunner.Options{LoadTime: 50 * time.Millisecond, InferTime: 20 * time.Millisecond, Slots: 2}

// exampleChecks is an example's checks.yaml.
type exampleChecks struct {
	// DeadPools are pools whose runners are down: nothing listens at the
	// addresses they get.
	DeadPools []string       `yaml:"dead_pools"`
	Checks    []exampleCheck `yaml:"checks"`
}

// exampleCheck is one request, sent Repeat times, and what it must get.
type exampleCheck struct {
	Name    string            `yaml:"name"`
	Method  string            `yaml:"method"` // GET without a body, POST with one, as curl does
	Path    string            `yaml:"path"`
	Headers map[string]string `yaml:"headers"`
	Body    string            `yaml:"body"`
	// Repeat sends the request this many times (default 1), over
	// Concurrency clients (default 1); every reply must meet Expect.
	Repeat      int `yaml:"repeat"`
	Concurrency int `yaml:"concurrency"`
	// Background sends the request without waiting for it: the next check
	// starts once it is in flight on a runner. Its expectations are checked
	// when it ends, after the last check.
	Background  bool          `yaml:"background"`
	Expect      exampleExpect `yaml:"expect"`
	ExpectShare *exampleShare `yaml:"expect_share"`
	Notes       string        `yaml:"notes"` // for the reader; not checked
}

// exampleExpect lists what a reply must show; only the keys given are
// checked. An empty string for pool, variant, hint or a header means the
// header must be absent.
type exampleExpect struct {
	Status  int               `yaml:"status"`
	Pool    *string           `yaml:"pool"`    // x-switchyard-pool, and the serving runner is in that pool
	Variant *string           `yaml:"variant"` // x-switchyard-variant
	Hint    *string           `yaml:"hint"`    // x-switchyard-hint: hit, miss, busy or none
	Headers map[string]string `yaml:"headers"` // other response headers, exact values
	// Body holds top-level fields of the JSON answer, e.g. the model the
	// runner received ({model: flux-dev}) or the error of a 400.
	Body map[string]string `yaml:"body"`
	// Pipeline maps a pipeline's steps to the pool each must have gone
	// to, as x-switchyard-pipeline says (step=pool@runner,...); each
	// step's runner must be in that pool.
	Pipeline map[string]string `yaml:"pipeline"`
	// SameRunnerAs and OtherRunnerThan name an earlier check whose (last)
	// reply came from the same, or another, runner.
	SameRunnerAs    string `yaml:"same_runner_as"`
	OtherRunnerThan string `yaml:"other_runner_than"`
}

// exampleShare: of the Repeat replies, Percent ± Tolerance came from Pool.
type exampleShare struct {
	Pool      string  `yaml:"pool"`
	Percent   float64 `yaml:"percent"`
	Tolerance float64 `yaml:"tolerance"`
}

func (c exampleCheck) method() string {
	switch {
	case c.Method != "":
		return strings.ToUpper(c.Method)
	case c.Body != "":
		return http.MethodPost
	}
	return http.MethodGet
}

// curl is the command the example's README must show for the check:
// `curl -si [-X M] URL [-H 'k: v']... [--json 'body']`.
func (c exampleCheck) curl() string {
	var b strings.Builder
	b.WriteString("curl -si")
	implied := http.MethodGet
	if c.Body != "" {
		implied = http.MethodPost
	}
	if m := c.method(); m != implied {
		b.WriteString(" -X " + m)
	}
	b.WriteString(" " + exampleEdge + c.Path)
	for _, k := range exampleKeys(c.Headers) {
		fmt.Fprintf(&b, " -H '%s: %s'", k, c.Headers[k])
	}
	if c.Body != "" {
		fmt.Fprintf(&b, " --json '%s'", c.Body)
	}
	return b.String()
}

func exampleKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// example is one folder of examples/.
type example struct {
	name   string
	dir    string
	raw    []byte
	cfg    *config.Config
	checks exampleChecks
}

// seedScenarios are the examples the seed pages call for; each must exist.
var seedScenarios = []string{"route-by-size", "model-variants", "ab-test", "hint-affinity", "fallback", "cost-optimisation", "pipeline"}

// loadExamples loads every examples/*/switchyard.yaml and fails on any
// problem: an invalid config, runner addresses shared between examples (two
// examples could not run side by side). It returns the scenarios, the
// examples with a checks.yaml, after checking that `switchyard up
// --simulate` can serve them and that their checks are well formed.
func loadExamples(t *testing.T) []example {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(examplesDir, "*", "switchyard.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var out []example
	ports := map[string]string{} // runner address → example, across all examples
	for _, f := range files {
		ex := example{dir: filepath.Dir(f)}
		ex.name = filepath.Base(ex.dir)
		if ex.raw, err = os.ReadFile(f); err != nil {
			t.Fatal(err)
		}
		if ex.cfg, err = config.Load(f); err != nil {
			t.Errorf("%s: %v", ex.name, err)
			continue
		}
		for _, p := range ex.cfg.Pools {
			for _, addr := range p.Runners {
				if other, ok := ports[addr]; ok {
					t.Errorf("%s: runner %s is also used by example %s", ex.name, addr, other)
				}
				ports[addr] = ex.name
			}
		}
		checks := filepath.Join(ex.dir, "checks.yaml")
		if _, err := os.Stat(checks); err != nil {
			continue // not a scenario (examples/python has its own tests)
		}
		ex.checks = readChecks(t, checks)
		checkScenario(t, ex)
		out = append(out, ex)
	}
	for _, name := range seedScenarios {
		if !slices.ContainsFunc(out, func(ex example) bool { return ex.name == name }) {
			t.Errorf("examples/%s: missing, or without checks.yaml", name)
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	return out
}

func readChecks(t *testing.T, path string) exampleChecks {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	var c exampleChecks
	if err := dec.Decode(&c); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return c
}

// checkScenario holds a scenario to what its README promises: it runs with
// `switchyard up --simulate` (one listener on 127.0.0.1:10000, every runner
// on loopback), and its checks are well formed.
func checkScenario(t *testing.T, ex example) {
	t.Helper()
	if l := ex.cfg.Listeners; len(l) != 1 || l[0].Name != "public" || l[0].Address != "127.0.0.1" || l[0].Port != 10000 {
		t.Errorf("%s: want one listener, public on 127.0.0.1:10000, got %+v", ex.name, l)
	}
	for _, p := range ex.cfg.Pools {
		for _, addr := range p.Runners {
			if ap, err := netip.ParseAddrPort(addr); err != nil || !ap.Addr().IsLoopback() {
				t.Errorf("%s: pool %s: runner %s is not on loopback, `up --simulate` would not start it", ex.name, p.Name, addr)
			}
		}
	}
	for _, d := range ex.checks.DeadPools {
		if _, ok := ex.cfg.Pool(d); !ok {
			t.Errorf("%s: dead pool %q is not in the config", ex.name, d)
		}
	}
	if len(ex.checks.Checks) == 0 {
		t.Errorf("%s: checks.yaml has no checks", ex.name)
	}
	names := map[string]bool{}
	for _, c := range ex.checks.Checks {
		switch {
		case c.Name == "" || names[c.Name]:
			t.Errorf("%s: check names must be present and unique, got %q", ex.name, c.Name)
		case !strings.HasPrefix(c.Path, "/"):
			t.Errorf("%s: check %s: path %q must start with /", ex.name, c.Name, c.Path)
		case strings.Contains(c.Body, "'"):
			t.Errorf("%s: check %s: a body with ' cannot be pasted into the README's shell commands", ex.name, c.Name)
		case c.ExpectShare != nil && c.Repeat < 100:
			t.Errorf("%s: check %s: a share needs repeat >= 100", ex.name, c.Name)
		case c.Background && (c.Repeat > 1 || c.ExpectShare != nil):
			t.Errorf("%s: check %s: a background check is one request", ex.name, c.Name)
		}
		names[c.Name] = true
	}
}

// TestExamplesDocs: the index lists every example, and each README says how
// to run it and shows every check's curl command as checks.yaml has it.
func TestExamplesDocs(t *testing.T) {
	index, err := os.ReadFile(filepath.Join(examplesDir, "README.md"))
	if err != nil {
		t.Fatalf("the examples index: %v", err)
	}
	for _, ex := range loadExamples(t) {
		if !bytes.Contains(index, []byte("("+ex.name+"/")) {
			t.Errorf("examples/README.md does not link %s/", ex.name)
		}
		readme, err := os.ReadFile(filepath.Join(ex.dir, "README.md"))
		if err != nil {
			t.Errorf("%s: %v", ex.name, err)
			continue
		}
		if up := "switchyard up --config examples/" + ex.name + "/switchyard.yaml"; !bytes.Contains(readme, []byte(up)) {
			t.Errorf("%s: README.md does not say how to run it (%q)", ex.name, up)
		}
		for _, c := range ex.checks.Checks {
			if !bytes.Contains(readme, []byte(c.curl())) {
				t.Errorf("%s: README.md does not show check %s as\n  %s", ex.name, c.Name, c.curl())
			}
		}
	}
}

// TestExamples runs every example through the real Envoy: its config with
// in-process simulated runners in place of its static runners, then its
// checks, each reply held to its expectations.
func TestExamples(t *testing.T) {
	for _, ex := range loadExamples(t) {
		t.Run(ex.name, func(t *testing.T) {
			start := time.Now()
			runExample(t, ex)
			t.Logf("%s: %d checks in %v", ex.name, len(ex.checks.Checks), time.Since(start).Round(time.Millisecond))
		})
	}
}

// exampleFleet maps the runners started for an example to their pools.
type exampleFleet struct {
	poolOfName map[string]string // sim runner name → pool
	poolOfAddr map[string]string // address → pool
	runners    []*TestRunner
}

func (f *exampleFleet) inFlight() int64 {
	var n int64
	for _, r := range f.runners {
		n += r.Stats().InFlight
	}
	return n
}

// exampleBody turns the example's config into a harness config body: no
// listeners or server section (the harness writes them with free ports),
// and every static runner replaced by an in-process simulated runner named
// like `switchyard up` names them (<pool>-<n>), or, in a dead pool, by an
// address where nothing listens.
func exampleBody(t *testing.T, ex example) (string, *exampleFleet) {
	t.Helper()
	var doc map[string]any
	if err := yaml.Unmarshal(ex.raw, &doc); err != nil {
		t.Fatal(err)
	}
	delete(doc, "listeners")
	delete(doc, "server")
	dead := map[string]bool{}
	for _, p := range ex.checks.DeadPools {
		dead[p] = true
	}
	f := &exampleFleet{poolOfName: map[string]string{}, poolOfAddr: map[string]string{}}
	pools, _ := doc["pools"].([]any)
	for _, p := range pools {
		pool := p.(map[string]any)
		name := pool["name"].(string)
		runners, _ := pool["runners"].([]any)
		for i, r := range runners {
			runner := r.(map[string]any)
			var addr string
			if dead[name] {
				addr = deadAddr(t)
			} else {
				tr := StartRunner(t, fmt.Sprintf("%s-%d", name, i+1), exampleSim)
				f.runners = append(f.runners, tr)
				f.poolOfName[tr.Stats().Name] = name
				addr = tr.Addr
			}
			f.poolOfAddr[addr] = name
			runner["address"] = addr
		}
	}
	out, err := yaml.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	return string(out), f
}

// exampleOutcome is one reply, reduced to what checks compare.
type exampleOutcome struct {
	status int
	pool   string // x-switchyard-pool
	runner string // the sim runner's name, from its answer
	reply  Reply
	err    error
}

func runExample(t *testing.T, ex example) {
	body, f := exampleBody(t, ex)
	s := NewStack(t, StackConfig{Body: body})

	lastRunner := map[string]string{} // check name → runner of its last reply
	type pending struct {
		c    exampleCheck
		done chan exampleOutcome
	}
	var background []pending
	for _, c := range ex.checks.Checks {
		if c.Background {
			p := pending{c: c, done: make(chan exampleOutcome, 1)}
			before := f.inFlight()
			go func() { p.done <- sendExampleOnce(s, c) }()
			background = append(background, p)
			Eventually(t, 10*time.Second, c.Name+" in flight on a runner", func() bool { return f.inFlight() > before })
			continue
		}
		// What the last check's runners reported is learnt before the next.
		s.Settle(len(background))
		outs := sendExample(s, c)
		for _, o := range outs {
			if !verifyExample(t, ex, f, c, o, lastRunner) {
				break // one report per check is enough
			}
		}
		if c.ExpectShare != nil {
			verifyExampleShare(t, c, outs)
		}
		lastRunner[c.Name] = outs[len(outs)-1].runner
		logExampleOutcome(t, c, outs)
	}
	for _, p := range background {
		o := <-p.done
		verifyExample(t, ex, f, p.c, o, lastRunner)
		lastRunner[p.c.Name] = o.runner
		logExampleOutcome(t, p.c, []exampleOutcome{o})
	}
}

// sendExampleOnce makes one request of c through Envoy.
func sendExampleOnce(s *Stack, c exampleCheck) exampleOutcome {
	r, err := s.Do(c.method(), c.Path, c.Headers, c.Body)
	return exampleOutcome{status: r.Status, pool: r.Header.Get("x-switchyard-pool"), runner: r.Runner(), reply: r, err: err}
}

// sendExample makes c's Repeat requests over its Concurrency clients.
func sendExample(s *Stack, c exampleCheck) []exampleOutcome {
	n, workers := max(c.Repeat, 1), max(c.Concurrency, 1)
	outs := make([]exampleOutcome, n)
	jobs := make(chan int)
	var wg sync.WaitGroup
	for range min(workers, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				outs[i] = sendExampleOnce(s, c)
			}
		}()
	}
	for i := range n {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	return outs
}

// verifyExample reports every exampleExpect o misses; false when it missed one.
func verifyExample(t *testing.T, ex example, f *exampleFleet, c exampleCheck, o exampleOutcome, lastRunner map[string]string) bool {
	t.Helper()
	if o.err != nil {
		t.Errorf("%s: %s %s: %v", ex.name, c.method(), c.Path, o.err)
		return false
	}
	var problems []string
	fail := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	e := c.Expect
	if e.Status != 0 && o.status != e.Status {
		fail("status %d, want %d (%.200s)", o.status, e.Status, o.reply.RawBody)
	}
	header := func(name string, want *string) {
		if want != nil {
			if got := o.reply.Header.Get(name); got != *want {
				fail("%s %q, want %q", name, got, *want)
			}
		}
	}
	header("x-switchyard-pool", e.Pool)
	header("x-switchyard-variant", e.Variant)
	header("x-switchyard-hint", e.Hint)
	for _, k := range exampleKeys(e.Headers) {
		v := e.Headers[k]
		header(k, &v)
	}
	for _, k := range exampleKeys(e.Body) {
		if got := fmt.Sprint(o.reply.Body[k]); o.reply.Body[k] == nil || got != e.Body[k] {
			fail("answer field %s = %v, want %q", k, o.reply.Body[k], e.Body[k])
		}
	}
	if e.Pipeline != nil {
		steps := map[string]string{} // step → pool@runner
		for _, part := range strings.Split(o.reply.Header.Get("x-switchyard-pipeline"), ",") {
			if step, where, ok := strings.Cut(part, "="); ok {
				steps[step] = where
			}
		}
		for _, step := range exampleKeys(e.Pipeline) {
			pool, runner, _ := strings.Cut(steps[step], "@")
			switch {
			case pool != e.Pipeline[step]:
				fail("step %s went to pool %q, want %q (x-switchyard-pipeline %q)", step, pool, e.Pipeline[step], o.reply.Header.Get("x-switchyard-pipeline"))
			case f.poolOfAddr[runner] != pool:
				fail("step %s: runner %q is not in pool %s", step, runner, pool)
			}
		}
		if len(steps) > len(e.Pipeline) && o.status == http.StatusOK {
			fail("x-switchyard-pipeline %q has more steps than expected", o.reply.Header.Get("x-switchyard-pipeline"))
		}
	}
	// Whatever the check expects, a served reply's decision headers must
	// name the pool whose runner actually served it.
	if o.runner != "" {
		served, ok := f.poolOfName[o.runner]
		switch {
		case !ok:
			fail("served by %q, which is not one of the example's runners", o.runner)
		case e.Pool != nil && served != *e.Pool:
			fail("served by %s of pool %s, want pool %s", o.runner, served, *e.Pool)
		case o.pool != "" && o.pool != served:
			fail("x-switchyard-pool %q but served by %s of pool %s", o.pool, o.runner, served)
		}
		if addr := o.reply.Header.Get("x-switchyard-runner"); addr != "" && f.poolOfAddr[addr] != served {
			fail("x-switchyard-runner %s is not in pool %s, which served", addr, served)
		}
	} else if e.Pool != nil && *e.Pool != "" {
		fail("no runner answered (%.200s), want pool %s", o.reply.RawBody, *e.Pool)
	}
	if e.SameRunnerAs != "" {
		want, ok := lastRunner[e.SameRunnerAs]
		switch {
		case !ok:
			fail("same_runner_as %q: no such earlier check", e.SameRunnerAs)
		case o.runner != want:
			fail("served by %q, want %q as for %s", o.runner, want, e.SameRunnerAs)
		}
	}
	if e.OtherRunnerThan != "" {
		other, ok := lastRunner[e.OtherRunnerThan]
		switch {
		case !ok:
			fail("other_runner_than %q: no such earlier check", e.OtherRunnerThan)
		case o.runner == other || o.runner == "":
			fail("served by %q, want another runner than %s's", o.runner, e.OtherRunnerThan)
		}
	}
	if len(problems) > 0 {
		t.Errorf("%s: check %s:\n  %s\n  %s", ex.name, c.Name, c.curl(), strings.Join(problems, "\n  "))
		return false
	}
	return true
}

func verifyExampleShare(t *testing.T, c exampleCheck, outs []exampleOutcome) {
	t.Helper()
	hits := 0
	for _, o := range outs {
		if o.pool == c.ExpectShare.Pool {
			hits++
		}
	}
	share := 100 * float64(hits) / float64(len(outs))
	t.Logf("check %s: %.1f%% of %d requests to %s (want %.0f ± %.0f)", c.Name, share, len(outs), c.ExpectShare.Pool, c.ExpectShare.Percent, c.ExpectShare.Tolerance)
	if math.Abs(share-c.ExpectShare.Percent) > c.ExpectShare.Tolerance {
		t.Errorf("check %s: %.1f%% of %d requests to %s, want %.0f ± %.0f", c.Name, share, len(outs), c.ExpectShare.Pool, c.ExpectShare.Percent, c.ExpectShare.Tolerance)
	}
}

// logExampleOutcome prints what the check got, as the README shows it.
func logExampleOutcome(t *testing.T, c exampleCheck, outs []exampleOutcome) {
	t.Helper()
	o := outs[len(outs)-1]
	h := o.reply.Header
	line := fmt.Sprintf("%-22s %d pool=%s runner=%s(%s)", c.Name, o.status, h.Get("x-switchyard-pool"), o.runner, h.Get("x-switchyard-runner"))
	for _, k := range []string{"x-switchyard-variant", "x-switchyard-hint", "x-fal-runner-hints", "x-switchyard-pipeline"} {
		if v := h.Get(k); v != "" {
			line += fmt.Sprintf(" %s=%s", strings.TrimPrefix(k, "x-switchyard-"), v)
		}
	}
	if len(outs) > 1 {
		line += fmt.Sprintf(" (last of %d)", len(outs))
	}
	if o.status != http.StatusOK {
		line += " " + strings.TrimSpace(o.reply.RawBody)
	}
	t.Log(line)
}
