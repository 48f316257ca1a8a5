// Package quality is the routing-quality benchmark: the same request
// sequence (Poisson arrivals, Zipf model popularity with a shift half-way)
// is sent through the real Envoy to simulated GPU runners under each
// routing policy — Envoy's own balancers, fal's rule and switchyard's
// default — and the runners count what matters: how often a request found
// its model loaded, and how many cold loads it cost.
package quality

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"

	"github.com/switchyard/switchyard/bench/workload"
	"github.com/switchyard/switchyard/internal/cluster"
	"github.com/switchyard/switchyard/internal/config"
	"github.com/switchyard/switchyard/internal/dev/simrunner"
	"github.com/switchyard/switchyard/internal/dev/stack"
	"github.com/switchyard/switchyard/internal/edgemodule"
	"github.com/switchyard/switchyard/internal/testutil/netutil"
)

// Policy is one way of picking runners.
type Policy struct {
	Name              string            `json:"name"`
	LoadBalancer      config.Balancer   `json:"load_balancer"` // the pools' load_balancer.policy
	HashBalanceFactor int               `json:"hash_balance_factor,omitempty"`
	HintPolicy        config.HintPolicy `json:"hint_policy,omitempty"` // hints.policy when switchyard picks
	// Edges, above 1, sends the requests through that many edges in
	// turn (Envoy + switchyard each, in front of the same runners),
	// sharing runner state through NATS unless Isolated.
	Edges    int  `json:"edges,omitempty"`
	Isolated bool `json:"isolated,omitempty"`
	Default  bool `json:"default,omitempty"` // switchyard's default: the one the targets are about
	// Cost gives the routes workload.CostExpr: soonest prices each request
	// by its size (the Mixed workload).
	Cost bool `json:"cost,omitempty"`
	// Module decides in Envoy, with switchyard's dynamic module
	// (server.edge_module), built from this tree for the run.
	Module bool `json:"module,omitempty"`
}

// MixedPolicies are soonest without and with a cost expression, on the
// mixed workload.
var MixedPolicies = []Policy{
	{Name: "soonest, one average per pool", LoadBalancer: config.LBHintAffinity, HintPolicy: config.HintSoonest},
	{Name: "soonest with cost", LoadBalancer: config.LBHintAffinity, HintPolicy: config.HintSoonest, Cost: true, Default: true},
}

// Policies are the alternatives a user would pick from, and switchyard.
var Policies = []Policy{
	{Name: "Envoy round_robin", LoadBalancer: config.LBRoundRobin},
	{Name: "Envoy least_request", LoadBalancer: config.LBLeastRequest},
	{Name: "Envoy ring_hash on the hint", LoadBalancer: config.LBRingHash},
	{Name: "Envoy maglev, bounded load 150", LoadBalancer: config.LBMaglev, HashBalanceFactor: 150},
	{Name: "switchyard, fal's rule", LoadBalancer: config.LBHintAffinity, HintPolicy: config.HintFal},
	{Name: "switchyard, loading marks", LoadBalancer: config.LBHintAffinity, HintPolicy: config.HintLoadingMarks},
	{Name: "switchyard, soonest (default)", LoadBalancer: config.LBHintAffinity, HintPolicy: config.HintSoonest, Default: true},
}

// ModulePolicies are switchyard's default deciding over ext_proc and in
// Envoy (server.edge_module): the same policy on its two paths.
var ModulePolicies = []Policy{
	{Name: "switchyard, soonest (default)", LoadBalancer: config.LBHintAffinity, HintPolicy: config.HintSoonest, Default: true},
	{Name: "switchyard, soonest, in Envoy", LoadBalancer: config.LBHintAffinity, HintPolicy: config.HintSoonest, Module: true},
}

// EdgePolicies are switchyard's default through 1, 2 and 4 edges, sharing
// runner state and isolated.
var EdgePolicies = []Policy{
	{Name: "1 edge", LoadBalancer: config.LBHintAffinity, HintPolicy: config.HintSoonest, Edges: 1, Default: true},
	{Name: "2 edges, shared state", LoadBalancer: config.LBHintAffinity, HintPolicy: config.HintSoonest, Edges: 2},
	{Name: "2 edges, isolated", LoadBalancer: config.LBHintAffinity, HintPolicy: config.HintSoonest, Edges: 2, Isolated: true},
	{Name: "4 edges, shared state", LoadBalancer: config.LBHintAffinity, HintPolicy: config.HintSoonest, Edges: 4},
	{Name: "4 edges, isolated", LoadBalancer: config.LBHintAffinity, HintPolicy: config.HintSoonest, Edges: 4, Isolated: true},
}

// Options are the workload and the benchmark's runs of it.
type Options struct {
	workload.Shape
	Loads []float64 `json:"loads"` // fractions of capacity
	// Seeds, when set, replace the shape's Seed: each load runs every
	// seed's sequence through every policy, seed by seed, so that the
	// policies are compared over several sequences, interleaved.
	Seeds    []int64   `json:"seeds,omitempty"`
	Policies []Policy  `json:"-"`
	Log      io.Writer `json:"-"`
	module   string    // the built module, when a policy decides in Envoy
}

// Defaults fills the unset options.
func (o *Options) Defaults(smoke bool) {
	o.Shape.Defaults()
	if len(o.Policies) == 0 {
		o.Policies = Policies
	}
	if smoke {
		if len(o.Loads) == 0 {
			o.Loads = []float64{0.8}
		}
		if o.Duration == 0 {
			o.Duration = 4 * time.Second
		}
	}
	if len(o.Loads) == 0 {
		o.Loads = []float64{0.5, 0.8, 0.95}
	}
	if o.Duration == 0 {
		o.Duration = 30 * time.Second
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
}

// Run is one policy at one load.
type Run struct {
	Policy  string `json:"policy"`
	Default bool   `json:"default,omitempty"`
	// Module says switchyard decided in Envoy (server.edge_module): the
	// default's other path, not an alternative to it.
	Module   bool    `json:"module,omitempty"`
	Load     float64 `json:"load"`
	Seed     int64   `json:"seed,omitempty"` // with Options.Seeds
	Rate     float64 `json:"rate_per_s"`
	Requests int     `json:"requests"`
	OK       int     `json:"ok"`
	Hits     int64   `json:"hits"`
	// WarmAnswers counts, at the client, the 200 answers whose runner
	// found the model loaded: what a user gets from a hit.
	WarmAnswers int     `json:"warm_answers"`
	Misses      int64   `json:"misses"`
	ColdLoads   int64   `json:"cold_loads"`
	Evictions   int64   `json:"evictions"`
	Queued      int64   `json:"queued_decisions"`
	HitRate     float64 `json:"hit_rate"`
	Ceiling     float64 `json:"ceiling"`
	P50         float64 `json:"p50_ms"`
	P95         float64 `json:"p95_ms"`
	P99         float64 `json:"p99_ms"`
	Throughput  float64 `json:"throughput_per_s"`
	// Prediction is soonest's prediction error (actual − predicted time
	// to the response headers), from switchyard's histogram.
	Prediction *PredictionError `json:"prediction_error,omitempty"`
}

// PredictionError summarises switchyard_prediction_error_seconds: its
// mean and quantiles (interpolated in the histogram's buckets), in ms.
type PredictionError struct {
	Samples int     `json:"samples"`
	Mean    float64 `json:"mean_ms"`
	P10     float64 `json:"p10_ms"`
	P50     float64 `json:"p50_ms"`
	P90     float64 `json:"p90_ms"`
}

// WarmRate is the warm answers over every request sent: a request that
// timed out, queued or running, got no answer, warm or not. HitRate counts
// every request a runner started, answered or not, which flatters a policy
// that lets queues grow until clients give up.
func (r Run) WarmRate() float64 {
	if r.Requests == 0 {
		return 0
	}
	return float64(r.WarmAnswers) / float64(r.Requests)
}

// Result is the whole benchmark.
type Result struct {
	Options  Options `json:"options"`
	Capacity float64 `json:"capacity_per_s"`
	Runs     []Run   `json:"runs"`
	// Propagation, for the edges suite, is how fast edges learn from
	// each other.
	Propagation *Propagation `json:"propagation,omitempty"`
}

// Run runs every policy at every load.
func RunAll(ctx context.Context, o Options) (*Result, error) {
	res := &Result{Options: o, Capacity: o.Capacity()}
	if slices.ContainsFunc(o.Policies, func(p Policy) bool { return p.Module }) {
		dir, err := os.MkdirTemp("", "switchyard-quality-module-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(dir)
		if o.module, err = edgemodule.Build(ctx, dir); err != nil {
			return nil, err
		}
	}
	for _, load := range o.Loads {
		for _, seed := range o.runSeeds() {
			so := o
			if seed != 0 {
				so.Seed = seed
			}
			seq := so.Sequence(load * o.Capacity())
			for _, p := range o.Policies {
				if err := ctx.Err(); err != nil {
					return nil, err
				}
				fmt.Fprintf(o.Log, "routing quality: %-32s at %3.0f%% load, seed %d (%d requests)...", p.Name, 100*load, so.Seed, len(seq))
				run, err := runOne(ctx, so, p, load, seq)
				if err != nil {
					return nil, fmt.Errorf("%s at %.0f%%: %w", p.Name, 100*load, err)
				}
				run.Seed = seed
				fmt.Fprintf(o.Log, " hit rate %.1f%%, p99 %.0f ms, %d/%d ok, %d cold loads, %d queued\n", 100*run.HitRate, run.P99, run.OK, run.Requests, run.ColdLoads, run.Queued)
				res.Runs = append(res.Runs, *run)
			}
		}
	}
	return res, nil
}

func runOne(ctx context.Context, o Options, p Policy, load float64, seq []workload.Request) (*Run, error) {
	dir, err := os.MkdirTemp("", "switchyard-quality-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	cfgPath := filepath.Join(dir, "switchyard.yaml")
	if err := os.WriteFile(cfgPath, []byte(configFor(o, p)), 0o644); err != nil {
		return nil, err
	}
	so := stack.Options{
		ConfigPath: cfgPath,
		Simulate:   true,
		Sim: simrunner.Options{
			Slots: o.Slots, LoadTime: o.LoadTime, InferTime: o.InferTime,
			MaxConcurrency: o.MaxConcurrency, Overload: simrunner.OverloadQueue,
		},
	}
	es, err := stack.StartEdges(ctx, stack.EdgesOptions{Options: so, N: max(p.Edges, 1), Dir: dir, Isolated: p.Isolated || p.Edges <= 1,
		Port: func(int, int) int { return freePort() }})
	if err != nil {
		return nil, err
	}
	defer es.Stop()
	st := es.Edges[0] // its simulated runners serve every edge

	var next atomic.Int64
	targeter := func(t *vegeta.Target) error {
		i := next.Add(1) - 1
		if int(i) >= len(seq) {
			return vegeta.ErrNoTargets
		}
		r := seq[i]
		t.Method = "POST"
		// Clients are spread over the edges.
		t.URL = fmt.Sprintf("%s/p%d/generate", es.Edges[int(i)%len(es.Edges)].EdgeURL, r.Pool)
		t.Header = map[string][]string{"Content-Type": {"application/json"}, "X-Fal-Runner-Hint": {r.Model}}
		t.Body = []byte(r.Body())
		return nil
	}
	pacer := replay{seq: seq, rate: load * o.Capacity()}
	// Clients give up after ten model loads: an overloaded policy shows as
	// failed requests and a capped p99, and a run ends soon after its last
	// arrival.
	atk := vegeta.NewAttacker(vegeta.Timeout(o.Timeout()), vegeta.KeepAlive(true), vegeta.Connections(10000))
	stop := context.AfterFunc(ctx, func() { atk.Stop() })
	defer stop()
	var m vegeta.Metrics
	warm := 0
	for r := range atk.Attack(targeter, pacer, o.Duration+o.Timeout(), p.Name) {
		m.Add(r)
		if r.Code == http.StatusOK && bytes.Contains(r.Body, []byte(`"hit":true`)) {
			warm++
		}
	}
	m.Close()

	run := &Run{Policy: p.Name, Default: p.Default, Module: p.Module, Load: load, Rate: load * o.Capacity(), Requests: int(m.Requests), Ceiling: workload.Ceiling(seq)}
	run.OK = int(math.Round(m.Success * float64(m.Requests)))
	run.WarmAnswers = warm
	for _, r := range st.Runners {
		s := r.Runner.Stats()
		run.Hits += s.Hits
		run.Misses += s.Misses
		run.ColdLoads += s.ColdLoads
		run.Evictions += s.Evictions
	}
	var hist histogram
	for _, e := range es.Edges {
		run.Queued += int64(metric(e.AdminURL, "switchyard_queued_decisions_total"))
		hist.add(e.AdminURL, "switchyard_prediction_error_seconds")
		if Inspect != nil {
			Inspect(e.AdminURL)
		}
	}
	if p.HintPolicy == config.HintSoonest {
		run.Prediction = hist.summary()
	}
	if n := run.Hits + run.Misses; n > 0 {
		run.HitRate = float64(run.Hits) / float64(n)
	}
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	run.P50, run.P95, run.P99 = ms(m.Latencies.P50), ms(m.Latencies.P95), ms(m.Latencies.P99)
	run.Throughput = m.Throughput
	return run, nil
}

// Inspect, when set, is called with switchyard's admin URL at the end of each run.
var Inspect func(adminURL string)

// metric reads one unlabelled sample from switchyard's /metrics; 0 when absent.
func metric(adminURL, name string) float64 {
	resp, err := http.Get(adminURL + "/metrics")
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, _ := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return f
		}
	}
	return 0
}

// replay is a vegeta pacer that replays the pre-generated arrival times.
type replay struct {
	seq  []workload.Request
	rate float64
}

func (p replay) Pace(elapsed time.Duration, hits uint64) (time.Duration, bool) {
	if hits >= uint64(len(p.seq)) {
		return 0, true
	}
	return max(p.seq[hits].At-elapsed, 0), false
}

func (p replay) Rate(time.Duration) float64 { return p.rate }

// configFor writes the stack's config for a policy, on free ports.
func configFor(o Options, p Policy) string {
	var b strings.Builder
	fmt.Fprintf(&b, "listeners: [{name: public, address: 127.0.0.1, port: %d}]\n", freePort())
	module := ""
	if p.Module {
		module = ", edge_module: " + o.module
	}
	fmt.Fprintf(&b, "server: {grpc: 127.0.0.1:%d, admin: 127.0.0.1:%d%s}\n", freePort(), freePort(), module)
	if p.HintPolicy != "" {
		fmt.Fprintf(&b, "hints: {policy: %s}\n", p.HintPolicy)
	}
	b.WriteString("pools:\n")
	for i := range o.Pools {
		var runners []string
		for range o.RunnersPerPool {
			runners = append(runners, fmt.Sprintf("{address: 127.0.0.1:%d}", freePort()))
		}
		lb := "{policy: " + string(p.LoadBalancer)
		if p.HashBalanceFactor > 0 {
			lb += fmt.Sprintf(", hash_balance_factor: %d", p.HashBalanceFactor)
		}
		lb += "}"
		fmt.Fprintf(&b, "  - {name: p%d, max_concurrency: %d, load_balancer: %s, runners: [%s]}\n", i, o.MaxConcurrency, lb, strings.Join(runners, ", "))
	}
	b.WriteString("routes:\n")
	cost := ""
	if p.Cost {
		cost = ", cost: '" + workload.CostExpr + "'"
	}
	for i := range o.Pools {
		fmt.Fprintf(&b, "  - {name: p%d, match: {prefix: /p%d/}%s, rules: [{pool: p%d}]}\n", i, i, cost, i)
	}
	return b.String()
}

func freePort() int {
	p, err := netutil.FreePort()
	if err != nil {
		panic(err) // loopback always has free ports
	}
	return p
}

// Markdown renders the results as tables, one per load, and the targets.
func (r *Result) Markdown() string {
	var b strings.Builder
	r.tables(&b)
	r.targets(&b)
	return b.String()
}

// tables writes the workload and one table per load.
func (r *Result) tables(b *strings.Builder) {
	o := r.Options
	fmt.Fprintf(b, "%d pools × %d runners, %d model slots each, %d models per pool with Zipf(s=%.1f) popularity reversed half-way, "+
		"max_concurrency %d, model load %s, inference %s; capacity %.0f requests/s (every request a hit); Poisson arrivals for %s per run; %s.\n\n",
		o.Pools, o.RunnersPerPool, o.Slots, o.Models, o.ZipfS, o.MaxConcurrency, o.LoadTime, o.InferTime, r.Capacity, o.Duration, seedList(o))
	if o.Mixed {
		fmt.Fprintf(b, "Mixed sizes: square images of %s px and %s inference steps (shares in `bench/workload`), drawn independently; "+
			"a request's inference is the listed time × (pixels / 1024²) × (steps / 30): a 200-fold spread, mean %.2f× (capacity counts it). "+
			"The cost expression: `%s`.\n\n", shareList(workload.Sizes), shareList(workload.Steps), o.MeanScale(), workload.CostExpr)
	}
	for _, load := range o.Loads {
		fmt.Fprintf(b, "**%.0f%% of capacity** (%.0f requests/s)\n\n", 100*load, load*r.Capacity)
		b.WriteString("| policy | hit rate | warm answers | ceiling | cold loads | p50 ms | p95 ms | p99 ms | throughput/s | ok |\n|---|---|---|---|---|---|---|---|---|---|\n")
		for _, run := range r.Runs {
			if run.Load != load {
				continue
			}
			fmt.Fprintf(b, "| %s | %.1f%% | %.1f%% | %.1f%% | %d | %.0f | %.0f | %.0f | %.1f | %d/%d |\n",
				run.label(), 100*run.HitRate, 100*run.WarmRate(), 100*run.Ceiling, run.ColdLoads, run.P50, run.P95, run.P99, run.Throughput, run.OK, run.Requests)
		}
		b.WriteString("\n")
	}
}

// targetLoads are the loads the targets are about.
var targetLoads = []float64{0.8, 0.95}

// ceilingMargin is how close to the ceiling the default's hit rate must be.
const ceilingMargin = 0.05

// targets reports, at 80 and 95 % load, whether switchyard's default has
// the highest hit rate and the lowest p99 of every policy, and a hit rate
// within 5 points of the ceiling. A p99 at the client timeout is a tie,
// not a win: it says only that more than 1 % of requests timed out.
func (r *Result) targets(b *strings.Builder) {
	var rows []string
	for _, load := range targetLoads {
		var def *Run
		var others []Run
		for i, run := range r.Runs {
			switch {
			case run.Load != load, run.Module:
			case run.Default:
				def = &r.Runs[i]
			default:
				others = append(others, run)
			}
		}
		if def == nil || len(others) == 0 {
			continue
		}
		bestHit, bestWarm, bestP99 := others[0], others[0], others[0]
		for _, o := range others[1:] {
			if o.HitRate > bestHit.HitRate {
				bestHit = o
			}
			if o.WarmRate() > bestWarm.WarmRate() {
				bestWarm = o
			}
			if o.P99 < bestP99.P99 {
				bestP99 = o
			}
		}
		// A p99 at the client timeout (vegeta reports it a millisecond or
		// so above) says only that over 1 % of requests timed out.
		capMillis := float64(r.Options.Timeout().Milliseconds())
		yes := func(ok bool) string {
			if ok {
				return "yes"
			}
			return "no"
		}
		rows = append(rows,
			fmt.Sprintf("| highest hit rate | %.0f%% | %.1f%% | %.1f%% (%s) | %s |", 100*load, 100*def.HitRate, 100*bestHit.HitRate, bestHit.Policy, yes(def.HitRate > bestHit.HitRate)),
			fmt.Sprintf("| most warm answers | %.0f%% | %.1f%% | %.1f%% (%s) | %s |", 100*load, 100*def.WarmRate(), 100*bestWarm.WarmRate(), bestWarm.Policy, yes(def.WarmRate() > bestWarm.WarmRate())),
			fmt.Sprintf("| lowest p99 | %.0f%% | %.0f ms | %.0f ms (%s) | %s |", 100*load, def.P99, bestP99.P99, bestP99.Policy, yes(def.P99 < bestP99.P99 && def.P99 < capMillis)),
			fmt.Sprintf("| hit rate within %.0f points of the ceiling | %.0f%% | %.1f%% | ceiling %.1f%% | %s |", 100*ceilingMargin, 100*load, 100*def.HitRate, 100*def.Ceiling, yes(def.HitRate >= def.Ceiling-ceilingMargin)))
	}
	if len(rows) == 0 {
		return
	}
	b.WriteString("**Targets** (reported, not asserted): switchyard's default against the best of the other policies. " +
		"*Hit rate* is counted at the runners over the requests they started, answered or not; *warm answers* is counted at the " +
		"client: the requests answered 200 by a runner that had the model loaded, of all requests sent. A p99 at the client timeout is a tie, not a win.\n\n| target | load | switchyard (default) | best other | met |\n|---|--:|--:|--:|---|\n")
	b.WriteString(strings.Join(rows, "\n"))
	b.WriteString("\n\n")
}

// runSeeds are the seeds runs are made for: Seeds, or 0 for the shape's
// own Seed (runs without Options.Seeds carry seed 0).
func (o Options) runSeeds() []int64 {
	if len(o.Seeds) == 0 {
		return []int64{0}
	}
	return o.Seeds
}

// seedList says which sequences the runs replayed.
func seedList(o Options) string {
	if len(o.Seeds) == 0 {
		return fmt.Sprintf("seed %d", o.Seed)
	}
	var parts []string
	for _, s := range o.Seeds {
		parts = append(parts, fmt.Sprint(s))
	}
	return fmt.Sprintf("one sequence for each of the seeds %s, every policy in turn on each", strings.Join(parts, ", "))
}

// label is the run's policy, and its seed when there are several.
func (r Run) label() string {
	if r.Seed == 0 {
		return r.Policy
	}
	return fmt.Sprintf("%s, seed %d", r.Policy, r.Seed)
}

func shareList(ss []workload.Share) string {
	var parts []string
	for _, s := range ss {
		parts = append(parts, fmt.Sprintf("%d (%.0f%%)", s.Value, 100*s.Share))
	}
	return strings.Join(parts, ", ")
}

// mixedTarget is how much lower the p99 with cost must be at 80 % load.
const mixedTarget = 0.25

// MixedMarkdown renders a run of MixedPolicies: the tables, soonest's
// prediction error, and the target of cost against one average per pool.
func (r *Result) MixedMarkdown() string {
	var b strings.Builder
	r.tables(&b)
	b.WriteString("**Prediction error** of soonest (actual − predicted time to the response headers, requests its chosen runner answered with a 2xx; from `switchyard_prediction_error_seconds`, quantiles interpolated in its buckets):\n\n")
	b.WriteString("| policy | load | samples | mean ms | p10 ms | p50 ms | p90 ms |\n|---|--:|--:|--:|--:|--:|--:|\n")
	for _, run := range r.Runs {
		if p := run.Prediction; p != nil {
			fmt.Fprintf(&b, "| %s | %.0f%% | %d | %.0f | %.0f | %.0f | %.0f |\n", run.label(), 100*run.Load, p.Samples, p.Mean, p.P10, p.P50, p.P90)
		}
	}
	b.WriteString("\n**Target** (reported, not asserted): at 80 % load, p99 with cost at least 25 % lower than with one average per pool, hit rate no worse" +
		" (with several seeds: each seed's p99 and hit rate, and their means over the seeds, which the target is judged on).\n\n")
	b.WriteString("| load | seed | p99 without → with cost | lower by | hit rate without → with | met |\n|--:|--|--:|--:|--:|---|\n")
	for _, load := range r.Options.Loads {
		var p99s, hits [2]float64 // without, with
		n := 0
		row := func(seed string, without, with, hitWithout, hitWith float64, judged bool) {
			lower := 1 - with/without
			met := "—"
			if judged && load == 0.8 {
				met = map[bool]string{true: "yes", false: "no"}[lower >= mixedTarget && hitWith >= hitWithout]
			}
			fmt.Fprintf(&b, "| %.0f%% | %s | %.0f → %.0f ms | %.0f%% | %.1f%% → %.1f%% | %s |\n", 100*load, seed, without, with, 100*lower, 100*hitWithout, 100*hitWith, met)
		}
		for _, seed := range r.Options.runSeeds() {
			var without, with *Run
			for i, run := range r.Runs {
				if run.Load != load || run.Seed != seed {
					continue
				}
				if run.Default {
					with = &r.Runs[i]
				} else {
					without = &r.Runs[i]
				}
			}
			if with == nil || without == nil || without.P99 == 0 {
				continue
			}
			label := "—"
			if seed != 0 {
				label = fmt.Sprint(seed)
			}
			row(label, without.P99, with.P99, without.HitRate, with.HitRate, len(r.Options.Seeds) == 0)
			p99s[0], p99s[1] = p99s[0]+without.P99, p99s[1]+with.P99
			hits[0], hits[1] = hits[0]+without.HitRate, hits[1]+with.HitRate
			n++
		}
		if len(r.Options.Seeds) > 0 && n > 0 {
			k := float64(n)
			row("mean", p99s[0]/k, p99s[1]/k, hits[0]/k, hits[1]/k, true)
		}
	}
	return b.String()
}

// EdgesMarkdown renders a run of EdgePolicies: the tables, and the target
// of several edges sharing state against one edge.
func (r *Result) EdgesMarkdown() string {
	var b strings.Builder
	r.tables(&b)
	b.WriteString("**Target** (reported, not asserted): with shared state, 4 edges keep at least 95 % of one edge's warm answers at 80 % load; isolated edges for contrast.\n\n")
	b.WriteString("| edges | load | warm answers | of one edge's | met |\n|---|--:|--:|--:|---|\n")
	for _, load := range r.Options.Loads {
		var one *Run
		for i, run := range r.Runs {
			if run.Load == load && run.Default {
				one = &r.Runs[i]
			}
		}
		if one == nil || one.WarmRate() == 0 {
			continue
		}
		for _, run := range r.Runs {
			if run.Load != load || run.Default {
				continue
			}
			ratio := run.WarmRate() / one.WarmRate()
			met := "—"
			if strings.HasPrefix(run.Policy, "4 edges, shared") && load == 0.8 {
				met = map[bool]string{true: "yes", false: "no"}[ratio >= 0.95]
			}
			fmt.Fprintf(&b, "| %s | %.0f%% | %.1f%% | %.0f%% | %s |\n", run.Policy, 100*load, 100*run.WarmRate(), 100*ratio, met)
		}
	}
	if p := r.Propagation; p != nil {
		fmt.Fprintf(&b, "\n**Propagation** between two edges sharing state, %d samples each: a runner registered through edge 1 is listed by edge 2 after %.1f ms p50, %.1f ms p99; a hint a runner reported on a response through edge 1 after %.1f ms p50, %.1f ms p99 (polled every millisecond on edge 2's admin API; each sample a change on its own: back-to-back changes are batched, one write per %v at most).\n",
			p.Samples, p.RegistrationP50, p.RegistrationP99, p.HintP50, p.HintP99, cluster.FlushInterval)
	}
	return b.String()
}
