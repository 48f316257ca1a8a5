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
		Shape: workload.Shape{Mixed: true, Duration: 3 * time.Second, LoadTime: 100 * time.Millisecond, InferTime: 20 * time.Millisecond},
		Loads: []float64{0.8}, Policies: quality.MixedPolicies,
	}
	o.Defaults(true)
	res, err := quality.RunAll(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res.Runs {
		if r.Requests == 0 || r.OK == 0 || r.Prediction == nil || r.Prediction.Samples == 0 {
			t.Errorf("%s: incomplete run %+v (prediction %+v)", r.Policy, r, r.Prediction)
		}
	}
	md := res.MixedMarkdown()
	for _, want := range []string{"| soonest with cost |", "**Prediction error**", "| 80% |", "Mixed sizes"} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
}
