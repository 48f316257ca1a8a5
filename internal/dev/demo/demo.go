// Package demo drives the demo workload through a running stack and
// reports what happened: requests per pool and variant, hint hits and cold
// loads counted at the runners, and latency percentiles. The load comes
// from vegeta's attacker at a constant rate.
//
// In the code map (README), dev tooling:
//
//	`switchyard demo` ─▶ stack (switchyard, Envoy, simulated runners) ◀── demo's workload
package demo

import (
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"io"
	"math/rand"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"
)

// Config is the demo stack's config file.
//
//go:embed demo.yaml
var Config []byte

// Options shape the workload.
type Options struct {
	EdgeURL  string
	Duration time.Duration
	Rate     int       // requests per second
	Seed     int64     // the workload is the same for the same seed
	Progress io.Writer // a live progress line, rewritten every second; nil for none
}

// Models are the hinted models, most popular first (Zipf).
var Models = []string{"flux-dev", "sdxl", "flux-schnell", "sd3", "playground-v2", "kandinsky", "pixart", "auraflow"}

// Result is what the workload saw from the client side.
type Result struct {
	Metrics   vegeta.Metrics
	ByPool    map[string]int // x-switchyard-pool of each answered request
	ByVariant map[string]int
	ByHint    map[string]int // x-switchyard-hint
	// Pipelines are the pipeline requests alone; PipelineSteps counts
	// where their steps went ("draft=a100"), from x-switchyard-pipeline.
	Pipelines     vegeta.Metrics
	PipelineSteps map[string]int
}

// PipelinePath is the demo's pipeline route: a small draft, then the
// full-size image, each step a request of its own through the edge.
const PipelinePath = "/v1/pipelines/draft-then-final"

// workload builds the request mix: 60 % image generations (60 % small,
// 40 % large; models by Zipf popularity; half send the hint header, the
// others rely on hint_from), 30 % A/B requests from 200 users and 10 %
// pipelines (a draft, then the final image).
func workload(o Options) vegeta.Targeter {
	var mu sync.Mutex
	rng := rand.New(rand.NewSource(o.Seed))
	zipf := rand.NewZipf(rng, 1.3, 1, uint64(len(Models)-1))
	return func(t *vegeta.Target) error {
		mu.Lock()
		defer mu.Unlock()
		t.Method = http.MethodPost
		t.Header = http.Header{"Content-Type": {"application/json"}}
		switch x := rng.Float64(); {
		case x < 0.3:
			t.URL = o.EdgeURL + "/v1/ab/generate"
			t.Header.Set("x-user-id", fmt.Sprintf("user-%d", rng.Intn(200)))
			t.Body = []byte(`{"prompt": "a lighthouse at dusk"}`)
			return nil
		case x < 0.4:
			t.URL = o.EdgeURL + PipelinePath
			t.Body, _ = json.Marshal(map[string]any{"model": Models[zipf.Uint64()], "prompt": "a lighthouse at dusk"})
			return nil
		}
		side := 512 + 128*rng.Intn(5) // 512..1024: small
		if rng.Float64() < 0.4 {
			side = 2048
		}
		model := Models[zipf.Uint64()]
		if rng.Float64() < 0.5 {
			t.Header.Set("x-fal-runner-hint", model)
		}
		body, _ := json.Marshal(map[string]any{"model": model, "prompt": "a lighthouse at dusk", "width": side, "height": side})
		t.URL = o.EdgeURL + "/v1/generate"
		t.Body = body
		return nil
	}
}

// Run sends the workload and returns what came back; it stops early when
// ctx ends.
func Run(ctx context.Context, o Options) *Result {
	total, _ := RunEdges(ctx, o, []string{o.EdgeURL})
	return total
}

// RunEdges sends the workload through several edges at once, o.Rate
// shared among them (each edge's clients with a seed of their own), and
// returns what came back in total and through each edge.
func RunEdges(ctx context.Context, o Options, edges []string) (total *Result, per []*Result) {
	newResult := func() *Result {
		return &Result{ByPool: map[string]int{}, ByVariant: map[string]int{}, ByHint: map[string]int{}, PipelineSteps: map[string]int{}}
	}
	total = newResult()
	type hit struct {
		edge int
		r    *vegeta.Result
	}
	results := make(chan hit, 64)
	var wg sync.WaitGroup
	for k, url := range edges {
		per = append(per, newResult())
		eo := o
		eo.EdgeURL, eo.Seed = url, o.Seed+int64(k)
		rate := vegeta.Rate{Freq: max(1, (o.Rate+len(edges)-1)/len(edges)), Per: time.Second}
		atk := vegeta.NewAttacker(vegeta.Timeout(60*time.Second), vegeta.KeepAlive(true))
		stop := context.AfterFunc(ctx, func() { atk.Stop() })
		defer stop()
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range atk.Attack(workload(eo), rate, o.Duration, fmt.Sprintf("demo-%d", k+1)) {
				results <- hit{k, r}
			}
		}()
	}
	go func() { wg.Wait(); close(results) }()
	start := time.Now()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case h, ok := <-results:
			if !ok {
				total.Metrics.Close()
				total.Pipelines.Close()
				for _, p := range per {
					p.Metrics.Close()
					p.Pipelines.Close()
				}
				if o.Progress != nil {
					fmt.Fprintln(o.Progress)
				}
				return total, per
			}
			total.add(h.r)
			per[h.edge].add(h.r)
		case <-tick.C:
			if o.Progress != nil {
				total.progress(o.Progress, time.Since(start), o.Duration)
			}
		}
	}
}

func (r *Result) add(v *vegeta.Result) {
	r.Metrics.Add(v)
	if strings.HasSuffix(v.URL, PipelinePath) {
		r.Pipelines.Add(v)
		if v.Code == http.StatusOK {
			r.ByPool[""]++ // answered, by no pool of its own: its steps were
			for _, step := range strings.Split(v.Headers.Get("x-switchyard-pipeline"), ",") {
				if name, where, ok := strings.Cut(step, "="); ok {
					pool, _, _ := strings.Cut(where, "@")
					r.PipelineSteps[name+"="+pool]++
				}
			}
		}
		return
	}
	if v.Code != http.StatusOK {
		return
	}
	r.ByPool[v.Headers.Get("x-switchyard-pool")]++
	if x := v.Headers.Get("x-switchyard-variant"); x != "" {
		r.ByVariant[x]++
	}
	if h := v.Headers.Get("x-switchyard-hint"); h != "" {
		r.ByHint[h]++
	}
}

func (r *Result) progress(w io.Writer, elapsed, total time.Duration) {
	ok := 0
	for _, n := range r.ByPool {
		ok += n
	}
	hinted := r.ByHint["hit"] + r.ByHint["miss"] + r.ByHint["busy"]
	hits := 0.0
	if hinted > 0 {
		hits = 100 * float64(r.ByHint["hit"]) / float64(hinted)
	}
	fmt.Fprintf(w, "\r[%3ds/%ds] sent %5d  ok %5d  failed %3d  hint hits (edge) %5.1f%%   ",
		int(elapsed.Seconds()), int(total.Seconds()), r.Metrics.Requests, ok, int(r.Metrics.Requests)-ok, hits)
}

// RunnerStats is what a simulated runner counted.
type RunnerStats struct {
	Pool, Name                                 string
	Requests, Hits, Misses, ColdLoads, Evicted int64
}

// ReportEdge prints what went through one edge: requests, latency and the
// edge's decisions (the runners' counts are the fleet's, in Report).
func (r *Result) ReportEdge(w io.Writer, name string) {
	var b strings.Builder
	fmt.Fprintf(&b, "\n%s:", name)
	r.summary(&b)
	r.decisions(&b)
	r.pipelines(&b)
	io.WriteString(w, b.String())
}

func (r *Result) summary(b *strings.Builder) {
	fmt.Fprintf(b, "\nRequests: %d sent at %.0f/s for %s, %.1f%% answered 200\n",
		r.Metrics.Requests, r.Metrics.Rate, r.Metrics.Duration.Round(time.Second), 100*r.Metrics.Success)
	fmt.Fprintf(b, "Latency:  p50 %s   p90 %s   p99 %s   max %s\n",
		ms(r.Metrics.Latencies.P50), ms(r.Metrics.Latencies.P90), ms(r.Metrics.Latencies.P99), ms(r.Metrics.Latencies.Max))
}

func (r *Result) decisions(b *strings.Builder) {
	fmt.Fprintf(b, "Edge decisions (x-switchyard-hint): hit %d, miss %d, busy %d, none %d\n",
		r.ByHint["hit"], r.ByHint["miss"], r.ByHint["busy"], r.ByHint["none"])
}

// Report prints the results table.
func (r *Result) Report(w io.Writer, runners []RunnerStats) {
	var b strings.Builder
	r.summary(&b)
	b.WriteString("\n")

	pools := map[string]*RunnerStats{}
	var names []string
	for _, s := range runners {
		p, ok := pools[s.Pool]
		if !ok {
			p = &RunnerStats{Pool: s.Pool}
			pools[s.Pool] = p
			names = append(names, s.Pool)
		}
		p.Requests += s.Requests
		p.Hits += s.Hits
		p.Misses += s.Misses
		p.ColdLoads += s.ColdLoads
		p.Evicted += s.Evicted
	}
	sort.Strings(names)
	fmt.Fprintf(&b, "%-10s %9s %9s %9s %11s %10s\n", "pool", "requests", "variant", "hit rate", "cold loads", "evictions")
	var total RunnerStats
	for _, n := range names {
		p := pools[n]
		variant := ""
		if v, ok := r.ByVariant[n]; ok {
			variant = fmt.Sprintf("%.1f%%", 100*float64(v)/float64(max(1, r.ByVariant["model-v1"]+r.ByVariant["model-v2"])))
		}
		fmt.Fprintf(&b, "%-10s %9d %9s %9s %11d %10d\n", n, p.Requests, variant, pct(p.Hits, p.Hits+p.Misses), p.ColdLoads, p.Evicted)
		total.Requests += p.Requests
		total.Hits += p.Hits
		total.Misses += p.Misses
		total.ColdLoads += p.ColdLoads
		total.Evicted += p.Evicted
	}
	fmt.Fprintf(&b, "%-10s %9d %9s %9s %11d %10d\n", "all", total.Requests, "", pct(total.Hits, total.Hits+total.Misses), total.ColdLoads, total.Evicted)
	fmt.Fprintf(&b, "\nHit rate is counted at the runners: requests that found their model loaded, of those that named one.\n")
	r.decisions(&b)
	r.pipelines(&b)
	io.WriteString(w, b.String())
}

// pipelines reports the pipeline requests: how many finished, how long
// they took, and where their steps went (each step is also a request in
// the pool table).
func (r *Result) pipelines(b *strings.Builder) {
	p := &r.Pipelines
	if p.Requests == 0 {
		return
	}
	steps := make([]string, 0, len(r.PipelineSteps))
	for _, k := range sortedKeys(r.PipelineSteps) {
		name, pool, _ := strings.Cut(k, "=")
		steps = append(steps, fmt.Sprintf("%s → %s %d", name, pool, r.PipelineSteps[k]))
	}
	fmt.Fprintf(b, "Pipelines (%s, draft then final): %d sent, %.1f%% answered 200, p50 %s, p99 %s; steps: %s\n",
		PipelinePath, p.Requests, 100*p.Success, ms(p.Latencies.P50), ms(p.Latencies.P99), strings.Join(steps, ", "))
}

func sortedKeys(m map[string]int) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func pct(n, of int64) string {
	if of == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f%%", 100*float64(n)/float64(of))
}

func ms(d time.Duration) string { return fmt.Sprintf("%dms", d.Milliseconds()) }
