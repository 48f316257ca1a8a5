package overhead

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"slices"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"
)

// Options shape a run. The zero value is the full suite.
type Options struct {
	// Rates are the request rates tried, in requests per second. Default
	// 250, 500, 1000, 2000 (Smoke: 100). The 1 MB setups run at a tenth of
	// each: a 2-core machine cannot move 1 MB bodies through three processes
	// at the headers-only rates, and rates they all fail say nothing.
	Rates []int
	// Duration is the measured time per setup and rate, after a warm-up.
	// Default 3s (Smoke: 1s).
	Duration time.Duration
	// Smoke is a quick check that every setup works (about 25 s): one low
	// rate, short attacks, one round.
	Smoke bool
	// Log receives a line per measured attack; nil for none.
	Log io.Writer
}

// SLO: the highest rate a setup holds is the highest tried rate with a p99
// under P99 and at least Success of requests answered 2xx.
const (
	SLOP99     = 10 * time.Millisecond
	SLOSuccess = 0.999
)

// saturation: a setup this far gone at one rate is not tried at higher
// ones; its backlog would only spill into the setups measured after it.
const (
	saturatedP99     = 100 * time.Millisecond
	saturatedSuccess = 0.99
)

// targetRate is the rate the targets are quoted at.
const targetRate = 1000

// settings are the options with defaults and the derived timings.
type settings struct {
	rates    []int
	duration time.Duration // measured per setup and rate
	warmUp   time.Duration // per setup and rate, before its first round
	rounds   int           // the measured time is split into this many interleaved rounds
	timeout  time.Duration // per request
}

func (o Options) settings() (settings, error) {
	s := settings{rates: slices.Clone(o.Rates), duration: o.Duration, warmUp: 500 * time.Millisecond, rounds: 3, timeout: 5 * time.Second}
	if o.Smoke {
		s.warmUp, s.rounds, s.timeout = 300*time.Millisecond, 1, 3*time.Second
		if len(s.rates) == 0 {
			s.rates = []int{100}
		}
		if s.duration == 0 {
			s.duration = time.Second
		}
	}
	if len(s.rates) == 0 {
		s.rates = []int{250, 500, 1000, 2000}
	}
	if s.duration == 0 {
		s.duration = 3 * time.Second
	}
	slices.Sort(s.rates)
	s.rates = slices.Compact(s.rates)
	if s.rates[0] <= 0 {
		return s, fmt.Errorf("overhead: rate %d: must be positive", s.rates[0])
	}
	if s.duration < 100*time.Millisecond*time.Duration(s.rounds) {
		return s, fmt.Errorf("overhead: duration %v is too short", s.duration)
	}
	return s, nil
}

// Result is a run's outcome; it marshals to the benchmark's JSON.
type Result struct {
	Smoke           bool      `json:"smoke"`
	Started         time.Time `json:"started"`
	ElapsedSeconds  float64   `json:"elapsed_seconds"`
	Rates           []int     `json:"rates"`
	DurationSeconds float64   `json:"duration_seconds"` // measured, per setup and rate
	WarmUpSeconds   float64   `json:"warm_up_seconds"`  // per setup and rate, not measured
	Rounds          int       `json:"rounds"`           // interleaved rounds the measured time is split into
	// The machine and the software measured.
	CPUs             int    `json:"cpus"`
	GoVersion        string `json:"go_version"`
	EnvoyVersion     string `json:"envoy_version"`
	EnvoyConcurrency int    `json:"envoy_concurrency"`
	PythonVersion    string `json:"python_version"`
	// The bar for a setup's highest rate.
	SLOP99Ms   float64 `json:"slo_p99_ms"`
	SLOSuccess float64 `json:"slo_success"`

	Setups  []SetupResult `json:"setups"`
	Targets []Target      `json:"targets"`
}

// SetupResult is one setup (path and payload) at every rate.
type SetupResult struct {
	Name        string       `json:"name"` // path/payload
	Path        string       `json:"path"`
	Payload     string       `json:"payload"`
	BodyBytes   int          `json:"body_bytes"`
	Description string       `json:"description"`
	Rates       []RateResult `json:"rates"`
	// MaxRate is the highest tried rate the setup held with p99 < 10 ms and
	// ≥ 99.9 % success; 0 when it held none.
	MaxRate int `json:"max_rate_p99_under_10ms"`
}

// RateResult is what vegeta measured for one setup at one rate. The
// percentiles are the median round's (each round's are vegeta's), so that
// one round disturbed by other work on a shared machine does not decide the
// figure; Rounds has every round, P99AllMs the p99 over all requests.
type RateResult struct {
	Rate     int    `json:"rate"`
	Skipped  string `json:"skipped,omitempty"` // why it was not measured
	Requests uint64 `json:"requests"`
	// Success is the fraction of all requests answered 2xx or 3xx.
	Success  float64 `json:"success"`
	P50Ms    float64 `json:"p50_ms"`
	P90Ms    float64 `json:"p90_ms"`
	P99Ms    float64 `json:"p99_ms"`
	MaxMs    float64 `json:"max_ms"` // over all requests
	P99AllMs float64 `json:"p99_all_rounds_ms"`
	// Added latency over the direct call and over Envoy alone with the same
	// payload at the same rate (absent for the baselines themselves).
	AddedVsDirect *Added `json:"added_vs_direct,omitempty"`
	AddedVsEnvoy  *Added `json:"added_vs_envoy,omitempty"`
	// CPU is what the setup's own processes cost the machine (absent for
	// direct, which has none of its own, and where there is no /proc).
	CPU       *CPUCost          `json:"cpu,omitempty"`
	Holds     bool              `json:"holds_slo"`
	Rounds    []RoundResult     `json:"rounds,omitempty"`
	Histogram []HistogramBucket `json:"histogram,omitempty"` // all requests
	Errors    []string          `json:"errors,omitempty"`    // the first few distinct ones
}

// RoundResult is one round of a rate, as vegeta measured it.
type RoundResult struct {
	Requests uint64  `json:"requests"`
	Success  float64 `json:"success"`
	P50Ms    float64 `json:"p50_ms"`
	P90Ms    float64 `json:"p90_ms"`
	P99Ms    float64 `json:"p99_ms"`
	MaxMs    float64 `json:"max_ms"`
}

// Added is a latency difference in milliseconds (negative: faster).
type Added struct {
	P50Ms float64 `json:"p50_ms"`
	P99Ms float64 `json:"p99_ms"`
}

// HistogramBucket counts latencies in [FromMs, ToMs); ToMs is absent for the
// last, open bucket.
type HistogramBucket struct {
	FromMs float64  `json:"from_ms"`
	ToMs   *float64 `json:"to_ms,omitempty"`
	Count  uint64   `json:"count"`
}

// Target is one of the design targets, reported, never asserted.
type Target struct {
	Name       string  `json:"name"`
	Rate       int     `json:"rate"`
	MeasuredMs float64 `json:"measured_ms"`
	LimitMs    float64 `json:"limit_ms"`
	Met        *bool   `json:"met"` // null when a figure it needs was not measured
	Note       string  `json:"note,omitempty"`
	// Rates says the measured and the bar are request rates (the
	// highest held), not milliseconds.
	Rates bool `json:"rates,omitempty"`
}

var histogramBuckets = vegeta.Buckets{0, 250 * time.Microsecond, 500 * time.Microsecond, time.Millisecond,
	2 * time.Millisecond, 5 * time.Millisecond, 10 * time.Millisecond, 25 * time.Millisecond,
	100 * time.Millisecond, time.Second}

// cell accumulates one setup's measured attacks at one rate.
type cell struct {
	all     vegeta.Metrics   // every request of every round
	hist    vegeta.Histogram // of all
	rounds  []vegeta.Metrics // each round's, closed
	cpu     []cpuTime        // each round's CPU time of the setup's processes; nil when not measured
	skipped string
}

// median returns the median over the rounds of f (the lower middle one for
// an even count).
func (c *cell) median(f func(vegeta.LatencyMetrics) time.Duration) time.Duration {
	v := make([]time.Duration, len(c.rounds))
	for i, m := range c.rounds {
		v[i] = f(m.Latencies)
	}
	slices.Sort(v)
	return v[(len(v)-1)/2]
}

// Run starts every setup on this machine, drives each with vegeta at every
// rate and returns what it measured. Within each rate the setups take turns
// (rotating the order every round) so that they share the machine's noise.
func Run(ctx context.Context, o Options) (*Result, error) {
	cfg, err := o.settings()
	if err != nil {
		return nil, err
	}
	logf := func(format string, args ...any) {
		if o.Log != nil {
			fmt.Fprintf(o.Log, format+"\n", args...)
		}
	}
	started := time.Now()
	e, err := startEnv(ctx)
	if err != nil {
		return nil, fmt.Errorf("overhead: %w", err)
	}
	defer e.stop()
	setups, err := e.setups(cfg.timeout)
	if err != nil {
		return nil, fmt.Errorf("overhead: %w", err)
	}
	for _, s := range setups {
		// Envoy may still be taking its routes when its listener opens.
		deadline := time.Now().Add(15 * time.Second)
		for {
			_, err := s.probe(ctx)
			if err == nil {
				break
			}
			if time.Now().After(deadline) || ctx.Err() != nil {
				return nil, fmt.Errorf("overhead: %s: a first request failed: %w", s.name, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
		// The best of a few single requests: what settle waits to see again.
		s.idle = time.Hour
		for range 5 {
			d, err := s.probe(ctx)
			if err != nil {
				return nil, fmt.Errorf("overhead: %s: %w", s.name, err)
			}
			s.idle = min(s.idle, d)
		}
	}
	logf("overhead: %d setups ready in %v; %d rate(s), %v measured per setup and rate in %d round(s), %v warm-up",
		len(setups), time.Since(started).Round(time.Millisecond), len(cfg.rates), cfg.duration, cfg.rounds, cfg.warmUp)

	cells := make([][]*cell, len(setups))
	for i := range cells {
		cells[i] = make([]*cell, len(cfg.rates))
		for j := range cells[i] {
			cells[i][j] = &cell{hist: vegeta.Histogram{Buckets: histogramBuckets}}
		}
	}
	saturated := make([]string, len(setups))
	slice := cfg.duration / time.Duration(cfg.rounds)
	for ri := range cfg.rates {
		var active []int
		for i := range setups {
			if saturated[i] != "" {
				cells[i][ri].skipped = saturated[i]
				continue
			}
			active = append(active, i)
		}
		for round := range cfg.rounds {
			for _, i := range rotate(active, ri*cfg.rounds+round) {
				s, c := setups[i], cells[i][ri]
				rate := s.rate(cfg.rates[ri])
				if round == 0 {
					if err := s.attack(ctx, rate, cfg.warmUp, nil); err != nil {
						return nil, err
					}
					e.settle(ctx, s)
				}
				runtime.GC() // the previous attack's garbage is not this one's cost
				if err := s.attack(ctx, rate, slice, c); err != nil {
					return nil, err
				}
				e.settle(ctx, s)
				logf("  %5d req/s  round %d/%d  %-22s  %s%s", rate, round+1, cfg.rounds, s.name, summary(c.rounds[len(c.rounds)-1]), c.lastCPU(s.switchyard()))
			}
		}
		for _, i := range active {
			c := cells[i][ri]
			c.all.Close()
			if c.all.Success < saturatedSuccess || c.median(p99) > saturatedP99 {
				saturated[i] = fmt.Sprintf("not tried: saturated at %d req/s", setups[i].rate(cfg.rates[ri]))
			}
		}
	}

	r := &Result{
		Smoke: o.Smoke, Started: started.UTC(), Rates: cfg.rates,
		DurationSeconds: cfg.duration.Seconds(), WarmUpSeconds: cfg.warmUp.Seconds(), Rounds: cfg.rounds,
		CPUs: runtime.NumCPU(), GoVersion: runtime.Version(), EnvoyVersion: e.envoyVersion,
		EnvoyConcurrency: envoyConcurrency, PythonVersion: e.py.version,
		SLOP99Ms: ms(SLOP99), SLOSuccess: SLOSuccess,
	}
	for i, s := range setups {
		sr := SetupResult{Name: s.name, Path: s.path, Payload: s.payload, BodyBytes: len(s.req.body), Description: s.desc}
		for ri, rate := range cfg.rates {
			rr := cells[i][ri].result(s.rate(rate))
			rr.CPU = cells[i][ri].cpuCost(s.switchyard())
			if rr.Holds {
				sr.MaxRate = rr.Rate
			}
			sr.Rates = append(sr.Rates, rr)
		}
		r.Setups = append(r.Setups, sr)
	}
	r.addDifferences()
	r.Targets = r.targets()
	r.ElapsedSeconds = time.Since(started).Seconds()
	return r, nil
}

// rotate returns order rotated left by k.
func rotate(order []int, k int) []int {
	if len(order) == 0 {
		return nil
	}
	k %= len(order)
	return append(slices.Clone(order[k:]), order[:k]...)
}

// attack drives s at rate for d with a fresh vegeta attacker over the
// setup's client (so keep-alive connections carry over between attacks) and
// adds the results, and the CPU time the setup's processes used meanwhile,
// to c (nil: a warm-up).
func (s *setup) attack(ctx context.Context, rate int, d time.Duration, c *cell) error {
	measureCPU := c != nil && s.procs != 0
	var before cpuTime
	if measureCPU {
		var err error
		if before, err = treeCPU(s.procs); err != nil {
			return fmt.Errorf("overhead: %s: %w", s.name, err)
		}
	}
	atk := vegeta.NewAttacker(vegeta.Client(s.client), vegeta.MaxBody(0))
	stop := context.AfterFunc(ctx, func() { atk.Stop() })
	defer stop()
	tr := vegeta.NewStaticTargeter(vegeta.Target{Method: http.MethodPost, URL: s.base + s.req.path, Body: s.req.body, Header: s.req.header})
	var round vegeta.Metrics
	for res := range atk.Attack(tr, vegeta.ConstantPacer{Freq: rate, Per: time.Second}, d, s.name) {
		if c != nil {
			round.Add(res)
			c.all.Add(res)
			c.hist.Add(res)
		}
	}
	if c != nil {
		round.Close()
		c.rounds = append(c.rounds, round)
	}
	if measureCPU {
		after, err := treeCPU(s.procs)
		if err != nil {
			return fmt.Errorf("overhead: %s: %w", s.name, err)
		}
		c.cpu = append(c.cpu, after.sub(before))
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("overhead: %w", err)
	}
	return nil
}

func (c *cell) result(rate int) RateResult {
	rr := RateResult{Rate: rate, Skipped: c.skipped}
	m := &c.all
	if c.skipped != "" || m.Requests == 0 {
		if rr.Skipped == "" {
			rr.Skipped = "no requests"
		}
		return rr
	}
	rr.Requests = m.Requests
	rr.Success = m.Success
	rr.P50Ms, rr.P90Ms, rr.P99Ms = ms(c.median(p50)), ms(c.median(p90)), ms(c.median(p99))
	rr.MaxMs = ms(m.Latencies.Max)
	rr.P99AllMs = ms(m.Latencies.P99)
	rr.Holds = c.median(p99) < SLOP99 && m.Success >= SLOSuccess
	for _, rm := range c.rounds {
		rr.Rounds = append(rr.Rounds, RoundResult{
			Requests: rm.Requests, Success: rm.Success,
			P50Ms: ms(rm.Latencies.P50), P90Ms: ms(rm.Latencies.P90), P99Ms: ms(rm.Latencies.P99), MaxMs: ms(rm.Latencies.Max),
		})
	}
	for i, b := range c.hist.Buckets {
		hb := HistogramBucket{FromMs: ms(b), Count: c.hist.Counts[i]}
		if i+1 < len(c.hist.Buckets) {
			to := ms(c.hist.Buckets[i+1])
			hb.ToMs = &to
		}
		rr.Histogram = append(rr.Histogram, hb)
	}
	if len(m.Errors) > 0 {
		rr.Errors = m.Errors[:min(len(m.Errors), 5)]
	}
	return rr
}

// lastCPU describes the last round's CPU time for the log, split into
// switchyard and Envoy when split.
func (c *cell) lastCPU(split bool) string {
	if len(c.cpu) == 0 {
		return ""
	}
	t := c.cpu[len(c.cpu)-1]
	if split {
		return fmt.Sprintf("  cpu %v (switchyard %v + envoy %v)", t.total(), t.other, t.envoy)
	}
	return fmt.Sprintf("  cpu %v", t.total())
}

func p50(l vegeta.LatencyMetrics) time.Duration { return l.P50 }
func p90(l vegeta.LatencyMetrics) time.Duration { return l.P90 }
func p99(l vegeta.LatencyMetrics) time.Duration { return l.P99 }

// addDifferences fills in the added latencies over the direct call and over
// Envoy alone, per payload and rate.
func (r *Result) addDifferences() {
	for si := range r.Setups {
		s := &r.Setups[si]
		direct, envoy := r.find(PathDirect, s.Payload), r.find(PathEnvoy, s.Payload)
		for ri := range s.Rates {
			rr := &s.Rates[ri]
			if s.Path != PathDirect {
				rr.AddedVsDirect = added(rr, direct, ri)
			}
			if s.Path != PathDirect && s.Path != PathEnvoy {
				rr.AddedVsEnvoy = added(rr, envoy, ri)
			}
		}
	}
}

func added(rr *RateResult, base *SetupResult, ri int) *Added {
	if base == nil || rr.Skipped != "" || base.Rates[ri].Skipped != "" {
		return nil
	}
	b := base.Rates[ri]
	return &Added{P50Ms: round3(rr.P50Ms - b.P50Ms), P99Ms: round3(rr.P99Ms - b.P99Ms)}
}

// find returns the setup with this path and payload, nil if there is none.
func (r *Result) find(path, payload string) *SetupResult {
	for i := range r.Setups {
		if r.Setups[i].Path == path && r.Setups[i].Payload == payload {
			return &r.Setups[i]
		}
	}
	return nil
}

// targets reports the design targets at 1,000 req/s, or at the highest rate
// tried when 1,000 was not.
func (r *Result) targets() []Target {
	ri := slices.Index(r.Rates, targetRate)
	if ri < 0 {
		ri = len(r.Rates) - 1
	}
	rate := r.Rates[ri]
	note := ""
	if rate != targetRate {
		note = fmt.Sprintf("quoted at %d req/s: %d req/s was not tried", rate, targetRate)
	}
	at := func(path, payload string) *RateResult {
		s := r.find(path, payload)
		if s == nil || s.Rates[ri].Skipped != "" {
			return nil
		}
		return &s.Rates[ri]
	}
	var ts []Target
	for _, c := range []struct {
		payload string
		limit   float64
	}{{PayloadHeaders, 0.5}, {Payload64KB, 2}} {
		t := Target{Name: fmt.Sprintf("switchyard adds ≤ %g ms p99 over Envoy alone (%s)", c.limit, c.payload), Rate: rate, LimitMs: c.limit, Note: note}
		if rr := at(PathSwitchyard, c.payload); rr != nil && rr.AddedVsEnvoy != nil {
			t.MeasuredMs = rr.AddedVsEnvoy.P99Ms
			t.Met = ptr(t.MeasuredMs <= c.limit)
		}
		ts = append(ts, t)
	}
	for _, payload := range []string{PayloadHeaders, Payload64KB} {
		t := Target{Name: fmt.Sprintf("switchyard adds less p99 over direct than the Go router-app hop (%s)", payload), Rate: rate, Note: note}
		sy, gr := at(PathSwitchyard, payload), at(PathGoRouter, payload)
		if sy != nil && gr != nil && sy.AddedVsDirect != nil && gr.AddedVsDirect != nil {
			t.MeasuredMs, t.LimitMs = sy.AddedVsDirect.P99Ms, gr.AddedVsDirect.P99Ms
			t.Met = ptr(t.MeasuredMs < t.LimitMs)
		}
		ts = append(ts, t)
	}
	return append(ts, r.routerTargets()...)
}

// routerTargets compare each switchyard path with the router-app hop it
// replaces: what it adds over Envoy alone against what the Go router adds
// over calling the runner, p50 and p99, headers only at 1,000 req/s and
// with 64 KB bodies at 500 and 1,000; and the highest rate held with 64 KB
// bodies. A rate that was not tried is left out.
func (r *Result) routerTargets() []Target {
	var ts []Target
	for _, path := range []string{PathSwitchyard, PathModule} {
		for _, c := range []struct {
			payload string
			rate    int
		}{{PayloadHeaders, 1000}, {Payload64KB, 500}, {Payload64KB, 1000}} {
			ri := slices.Index(r.Rates, c.rate)
			sy, gr := r.find(path, c.payload), r.find(PathGoRouter, c.payload)
			if ri < 0 || sy == nil || gr == nil {
				continue
			}
			for _, pct := range []struct {
				name string
				of   func(*Added) float64
			}{{"p50", func(a *Added) float64 { return a.P50Ms }}, {"p99", func(a *Added) float64 { return a.P99Ms }}} {
				t := Target{Name: fmt.Sprintf("%s adds over Envoy alone ≤ the Go router hop over direct, %s (%s)", path, pct.name, c.payload), Rate: c.rate}
				if a, g := sy.Rates[ri].AddedVsEnvoy, gr.Rates[ri].AddedVsDirect; a != nil && g != nil {
					t.MeasuredMs, t.LimitMs = pct.of(a), pct.of(g)
					t.Met = ptr(t.MeasuredMs <= t.LimitMs)
				}
				ts = append(ts, t)
			}
		}
		sy, gr := r.find(path, Payload64KB), r.find(PathGoRouter, Payload64KB)
		if sy != nil && gr != nil {
			ts = append(ts, Target{Name: fmt.Sprintf("%s holds as high a rate as the Go router (64KB)", path), Rates: true,
				MeasuredMs: float64(sy.MaxRate), LimitMs: float64(gr.MaxRate), Met: ptr(sy.MaxRate >= gr.MaxRate)})
		}
	}
	return ts
}

func summary(m vegeta.Metrics) string {
	if m.Requests == 0 {
		return "no requests"
	}
	s := fmt.Sprintf("n=%-6d ok %6.2f%%  p50 %6.2fms  p99 %7.2fms  max %7.2fms",
		m.Requests, 100*m.Success, ms(m.Latencies.P50), ms(m.Latencies.P99), ms(m.Latencies.Max))
	if len(m.Errors) > 0 {
		s += "  first error: " + m.Errors[0]
	}
	return s
}

func ms(d time.Duration) float64 { return round3(float64(d) / float64(time.Millisecond)) }

func round3(f float64) float64 {
	if f < 0 {
		return -round3(-f)
	}
	return float64(int64(f*1000+0.5)) / 1000
}

func ptr[T any](v T) *T { return &v }
