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
}

// workload builds the request mix: 70 % image generations (60 % small,
// 40 % large; models by Zipf popularity; half send the hint header, the
// others rely on hint_from) and 30 % A/B requests from 200 users.
func workload(o Options) vegeta.Targeter {
	var mu sync.Mutex
	rng := rand.New(rand.NewSource(o.Seed))
	zipf := rand.NewZipf(rng, 1.3, 1, uint64(len(Models)-1))
	return func(t *vegeta.Target) error {
		mu.Lock()
		defer mu.Unlock()
		t.Method = http.MethodPost
		t.Header = http.Header{"Content-Type": {"application/json"}}
		if rng.Float64() < 0.3 {
			t.URL = o.EdgeURL + "/v1/ab/generate"
			t.Header.Set("x-user-id", fmt.Sprintf("user-%d", rng.Intn(200)))
			t.Body = []byte(`{"prompt": "a lighthouse at dusk"}`)
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
	atk := vegeta.NewAttacker(vegeta.Timeout(60*time.Second), vegeta.KeepAlive(true))
	stop := context.AfterFunc(ctx, func() { atk.Stop() })
	defer stop()
	res := &Result{ByPool: map[string]int{}, ByVariant: map[string]int{}, ByHint: map[string]int{}}
	rate := vegeta.Rate{Freq: o.Rate, Per: time.Second}
	start := time.Now()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	results := atk.Attack(workload(o), rate, o.Duration, "demo")
	for {
		select {
		case r, ok := <-results:
			if !ok {
				res.Metrics.Close()
				if o.Progress != nil {
					fmt.Fprintln(o.Progress)
				}
				return res
			}
			res.Metrics.Add(r)
			if r.Code == http.StatusOK {
				res.ByPool[r.Headers.Get("x-switchyard-pool")]++
				if v := r.Headers.Get("x-switchyard-variant"); v != "" {
					res.ByVariant[v]++
				}
				if h := r.Headers.Get("x-switchyard-hint"); h != "" {
					res.ByHint[h]++
				}
			}
		case <-tick.C:
			if o.Progress != nil {
				res.progress(o.Progress, time.Since(start), o.Duration)
			}
		}
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

// Report prints the results table.
func (r *Result) Report(w io.Writer, runners []RunnerStats) {
	var b strings.Builder
	fmt.Fprintf(&b, "\nRequests: %d sent at %.0f/s for %s, %.1f%% answered 200\n",
		r.Metrics.Requests, r.Metrics.Rate, r.Metrics.Duration.Round(time.Second), 100*r.Metrics.Success)
	fmt.Fprintf(&b, "Latency:  p50 %s   p90 %s   p99 %s   max %s\n\n",
		ms(r.Metrics.Latencies.P50), ms(r.Metrics.Latencies.P90), ms(r.Metrics.Latencies.P99), ms(r.Metrics.Latencies.Max))

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
	fmt.Fprintf(&b, "Edge decisions (x-switchyard-hint): hit %d, miss %d, busy %d, none %d\n",
		r.ByHint["hit"], r.ByHint["miss"], r.ByHint["busy"], r.ByHint["none"])
	io.WriteString(w, b.String())
}

func pct(n, of int64) string {
	if of == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f%%", 100*float64(n)/float64(of))
}

func ms(d time.Duration) string { return fmt.Sprintf("%dms", d.Milliseconds()) }
