package quality_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/bench/quality"
	"github.com/switchyard/switchyard/bench/workload"
	"github.com/switchyard/switchyard/envoy"
)

// A smoke run: two policies through the real Envoy, a few seconds each.
func TestSmoke(t *testing.T) {
	if _, err := envoy.Find(); err != nil {
		t.Fatalf("the routing-quality benchmark needs the real Envoy: %v", err)
	}
	o := quality.Options{
		Shape: workload.Shape{Duration: 3 * time.Second, LoadTime: 100 * time.Millisecond, InferTime: 20 * time.Millisecond},
		Loads: []float64{0.3}, Policies: []quality.Policy{quality.Policies[2], quality.Policies[6], quality.ModulePolicies[1]},
	}
	o.Defaults(true)
	res, err := quality.RunAll(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Runs) != 3 {
		t.Fatalf("%d runs, want 3", len(res.Runs))
	}
	for _, r := range res.Runs {
		if r.Requests == 0 || r.OK == 0 || r.Hits+r.Misses == 0 || r.ColdLoads == 0 || r.P50 <= 0 || r.Ceiling <= 0 || r.Ceiling >= 1 {
			t.Errorf("%s: incomplete run %+v", r.Policy, r)
		}
		if r.WarmAnswers == 0 || r.WarmAnswers > r.OK || int64(r.WarmAnswers) > r.Hits {
			t.Errorf("%s: %d warm answers, with %d answers and %d hits", r.Policy, r.WarmAnswers, r.OK, r.Hits)
		}
		if r.Hits+r.Misses > int64(r.Requests) {
			t.Errorf("%s: runners counted %d hinted requests of %d sent", r.Policy, r.Hits+r.Misses, r.Requests)
		}
	}
	if md := res.Markdown(); !strings.Contains(md, "| switchyard, soonest (default) |") || !strings.Contains(md, "| switchyard, soonest, in Envoy |") {
		t.Errorf("markdown lacks the switchyard row:\n%s", md)
	}
}

// A smoke run through two edges sharing state and two isolated ones.
func TestEdgesSmoke(t *testing.T) {
	if _, err := envoy.Find(); err != nil {
		t.Fatalf("the several-edges benchmark needs the real Envoy: %v", err)
	}
	o := quality.Options{
		Shape: workload.Shape{Duration: 3 * time.Second, LoadTime: 100 * time.Millisecond, InferTime: 20 * time.Millisecond},
		Loads: []float64{0.8}, Policies: []quality.Policy{quality.EdgePolicies[0], quality.EdgePolicies[1], quality.EdgePolicies[2]},
	}
	o.Defaults(true)
	res, err := quality.RunAll(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res.Runs {
		if r.Requests == 0 || r.OK == 0 || r.WarmAnswers == 0 {
			t.Errorf("%s: incomplete run %+v", r.Policy, r)
		}
	}
	md := res.EdgesMarkdown()
	for _, want := range []string{"| 2 edges, shared state |", "| 2 edges, isolated | 80% |"} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
}

// Propagation between two edges is measured and reported.
func TestPropagationSmoke(t *testing.T) {
	p, err := quality.MeasurePropagation(context.Background(), 3)
	if err != nil {
		t.Fatal(err)
	}
	if p.Samples != 3 || p.RegistrationP50 <= 0 || p.HintP50 <= 0 || p.RegistrationP99 < p.RegistrationP50 || p.HintP99 < p.HintP50 {
		t.Errorf("propagation %+v", p)
	}
	md := (&quality.Result{Propagation: p}).EdgesMarkdown()
	if !strings.Contains(md, "**Propagation** between two edges") {
		t.Errorf("markdown lacks the propagation:\n%s", md)
	}
	t.Logf("%+v", p)
}

// A smoke run of the mixed-size workload, without and with the cost
// expression: requests carry their sizes, soonest measures its predictions.
func TestMixedSmoke(t *testing.T) {
	if _, err := envoy.Find(); err != nil {
		t.Fatalf("the mixed-size benchmark needs the real Envoy: %v", err)
	}
	o := quality.Options{
		Shape: workload.Shape{Mixed: true, Duration: 2 * time.Second, LoadTime: 100 * time.Millisecond, InferTime: 20 * time.Millisecond},
		Loads: []float64{0.8}, Seeds: []int64{1, 2}, Policies: quality.MixedPolicies,
	}
	o.Defaults(true)
	res, err := quality.RunAll(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	seeds := map[int64]int{}
	for _, r := range res.Runs {
		seeds[r.Seed]++
		if r.Requests == 0 || r.OK == 0 || r.Prediction == nil || r.Prediction.Samples == 0 {
			t.Errorf("%s: incomplete run %+v (prediction %+v)", r.Policy, r, r.Prediction)
		}
	}
	if len(res.Runs) != 4 || seeds[1] != 2 || seeds[2] != 2 {
		t.Errorf("runs by seed %v, want both policies on seeds 1 and 2", seeds)
	}
	md := res.MixedMarkdown()
	for _, want := range []string{"| soonest with cost, seed 2 |", "**Prediction error**", "| 80% | mean |", "Mixed sizes", "seeds 1, 2"} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
}

// The mixed suite's target over several seeds is judged on the means of
// their p99s and hit rates, each seed shown too.
func TestMixedMarkdownSeeds(t *testing.T) {
	run := func(seed int64, def bool, p99, hit float64) quality.Run {
		name := "soonest, one average per pool"
		if def {
			name = "soonest with cost"
		}
		return quality.Run{Policy: name, Default: def, Load: 0.8, Seed: seed, P99: p99, HitRate: hit}
	}
	for _, tt := range []struct {
		name string
		runs []quality.Run
		want string
	}{
		// 2000 → 1400 and 2000 → 1600: 1500 on average, 25 % lower.
		{"met on the mean", []quality.Run{run(1, false, 2000, 0.99), run(1, true, 1400, 0.99), run(2, false, 2000, 0.99), run(2, true, 1600, 0.99)},
			"| 80% | mean | 2000 → 1500 ms | 25% | 99.0% → 99.0% | yes |"},
		// One seed far lower does not carry a mean under 25 %.
		{"not met", []quality.Run{run(1, false, 2000, 0.99), run(1, true, 1000, 0.99), run(2, false, 2000, 0.99), run(2, true, 2200, 0.99)},
			"| 80% | mean | 2000 → 1600 ms | 20% | 99.0% → 99.0% | no |"},
		// Lower p99 but fewer hits.
		{"hits lost", []quality.Run{run(1, false, 2000, 0.99), run(1, true, 1000, 0.98), run(2, false, 2000, 0.99), run(2, true, 1000, 0.99)},
			"| 80% | mean | 2000 → 1000 ms | 50% | 99.0% → 98.5% | no |"},
	} {
		r := &quality.Result{Options: quality.Options{Loads: []float64{0.8}, Seeds: []int64{1, 2}}, Runs: tt.runs}
		md := r.MixedMarkdown()
		if !strings.Contains(md, tt.want) || !strings.Contains(md, "| 80% | 1 | 2000 → ") || !strings.Contains(md, "| 80% | 2 | 2000 → ") {
			t.Errorf("%s: want %q and a row per seed in:\n%s", tt.name, tt.want, md)
		}
	}
}
