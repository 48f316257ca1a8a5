package affinity_test

import (
	"testing"
	"time"

	"github.com/switchyard/switchyard/affinity"
)

func TestCostsLearn(t *testing.T) {
	c := affinity.NewCosts()
	for i := range 2 {
		c.Observe("p", true, 100*time.Millisecond)
		c.Observe("p", false, time.Second+time.Duration(i)*time.Millisecond)
	}
	if c.Get("p").Known() {
		t.Fatal("known after 2 samples of each kind")
	}
	c.Observe("p", true, 100*time.Millisecond)
	c.Observe("p", false, time.Second)
	got := c.Get("p")
	if !got.Known() || got.Hit != 100*time.Millisecond || got.Miss < time.Second || got.Miss > time.Second+5*time.Millisecond {
		t.Fatalf("cost = %+v", got)
	}
	if c.Get("other").Known() {
		t.Error("a pool with no samples has a known cost")
	}
}

// With costs known, the soonest mode queues on a busy warm runner when the wait
// is shorter than a model load, and fal's rule never does.
func TestPickCostQueues(t *testing.T) {
	cost := affinity.Cost{Hit: 100 * time.Millisecond, Miss: 1100 * time.Millisecond} // a load costs 1 s
	tests := []struct {
		name    string
		spec    []r
		maxConc int
		mode    affinity.Mode
		cost    affinity.Cost
		primary int
		outcome affinity.Outcome
		queued  bool
	}{
		{"short queue on the warm runner: wait", []r{{load: 2, hints: "m"}, {load: 0, hints: "x"}}, 2, affinity.ModeSoonest, cost, 0, affinity.OutcomeHit, true},
		{"the default never waits", []r{{load: 2, hints: "m"}, {load: 0, hints: "x"}}, 2, affinity.ModeSwitchyard, cost, 1, affinity.OutcomeBusy, false},
		{"fal never waits", []r{{load: 2, hints: "m"}, {load: 0, hints: "x"}}, 2, affinity.ModeFal, cost, 1, affinity.OutcomeBusy, false},
		// Before costs are measured a load counts as four inferences.
		{"unknown costs: three ahead is shorter than a load", []r{{load: 3, hints: "m"}, {load: 0, hints: "x"}}, 1, affinity.ModeSoonest, affinity.Cost{}, 0, affinity.OutcomeHit, true},
		{"never past four times max concurrency", []r{{load: 8, hints: "m"}, {load: 0, hints: "x"}}, 2, affinity.ModeSoonest, affinity.Cost{}, 1, affinity.OutcomeBusy, false},
		{"a short queue beats a load on a busy runner", []r{{load: 3, hints: "m"}, {load: 1, hints: "x"}}, 1, affinity.ModeSoonest, cost, 0, affinity.OutcomeHit, true},
		{"long queue: load elsewhere", []r{{load: 30, hints: "m"}, {load: 0, hints: "x"}}, 1, affinity.ModeSoonest, cost, 1, affinity.OutcomeBusy, false},
		// 1 + (8-1)*... : 7 ahead at 100 ms on one slot = 700 ms < 1 s, but over 4 x max concurrency.
		{"capped over-commit", []r{{load: 7, hints: "m"}, {load: 0, hints: "x"}}, 1, affinity.ModeSoonest, cost, 1, affinity.OutcomeBusy, false},
		{"the least loaded warm runner", []r{{load: 3, hints: "m"}, {load: 2, hints: "m"}, {load: 0}}, 2, affinity.ModeSoonest, cost, 1, affinity.OutcomeHit, true},
		{"a free warm runner is a plain hit", []r{{load: 2, hints: "m"}, {load: 1, hints: "m"}}, 2, affinity.ModeSoonest, cost, 1, affinity.OutcomeHit, false},
	}
	for _, tt := range tests {
		rs, idx := setup(t, tt.spec)
		p := affinity.NewPicker(affinity.PickerOptions{Index: idx, Mode: tt.mode})
		got := p.PickCost(rs, tt.maxConc, "m", tt.cost)
		if got.Runners[0] != rs[tt.primary] || got.Outcome != tt.outcome || got.Queued != tt.queued {
			t.Errorf("%s: primary %v outcome %s queued %v; want runner %d, %s, %v",
				tt.name, indices(rs, got.Runners[:1]), got.Outcome, got.Queued, tt.primary, tt.outcome, tt.queued)
		}
		if len(got.Runners) > 1 && got.Runners[1] == got.Runners[0] {
			t.Errorf("%s: the primary is repeated as an alternative", tt.name)
		}
	}
}
