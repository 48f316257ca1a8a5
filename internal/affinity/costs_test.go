package affinity_test

import (
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/affinity"
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

// job is a request dispatched to a runner before the pick under test: its
// hint, and whether it was a hit there (cost.Hit) or a load (cost.Miss).
type job struct {
	hint string
	hit  bool
	done bool // it has ended (it only ordered the runner's recent hints)
}

// In ModeSoonest the pick is the runner expected to finish the request
// first, from the jobs dispatched to each runner; fal's rule never waits.
func TestPickCostSoonest(t *testing.T) {
	cost := affinity.Cost{Hit: 100 * time.Millisecond, Miss: 1100 * time.Millisecond} // a load costs 1 s
	hits := func(n int, hint string) []job {
		var js []job
		for range n {
			js = append(js, job{hint: hint, hit: true})
		}
		return js
	}
	tests := []struct {
		name    string
		spec    []r
		jobs    [][]job // per runner, dispatched in order
		elapsed time.Duration
		maxConc int
		mode    affinity.Mode
		cost    affinity.Cost
		primary int
		outcome affinity.Outcome
		queued  bool
	}{
		{name: "short queue on the warm runner: wait", spec: []r{{hints: "m"}, {hints: "x"}}, jobs: [][]job{hits(2, "m")},
			maxConc: 1, mode: affinity.ModeSoonest, cost: cost, primary: 0, outcome: affinity.OutcomeHit, queued: true},
		{name: "fal never waits", spec: []r{{hints: "m"}, {hints: "x"}}, jobs: [][]job{hits(2, "m")},
			maxConc: 1, mode: affinity.ModeFal, cost: cost, primary: 1, outcome: affinity.OutcomeBusy},
		{name: "long queue: load elsewhere", spec: []r{{hints: "m"}, {}}, jobs: [][]job{hits(11, "m")},
			maxConc: 1, mode: affinity.ModeSoonest, cost: cost, primary: 1, outcome: affinity.OutcomeBusy},
		// 35 × 100 ms on the warm runner beats a load that evicts a model
		// (1.1 s + 3 loads) on a runner as full as any.
		{name: "an eviction counts", spec: []r{{hints: "m"}, {hints: "x"}}, jobs: [][]job{hits(35, "m")},
			maxConc: 1, mode: affinity.ModeSoonest, cost: cost, primary: 0, outcome: affinity.OutcomeHit, queued: true},
		// Before costs are measured a hit counts 100 ms and a load 400 ms (a
		// tie goes to the warm runner).
		{name: "unknown costs: three ahead is shorter than a load", spec: []r{{hints: "m"}, {}}, jobs: [][]job{hits(3, "m")},
			maxConc: 1, mode: affinity.ModeSoonest, primary: 0, outcome: affinity.OutcomeHit, queued: true},
		{name: "unknown costs: five ahead is not", spec: []r{{hints: "m"}, {}}, jobs: [][]job{hits(5, "m")},
			maxConc: 1, mode: affinity.ModeSoonest, primary: 1, outcome: affinity.OutcomeBusy},
		// A load in progress makes the runner warm for the hint: 300 ms of
		// it left, then 100 ms, beats a 1.1 s load elsewhere.
		{name: "a model being loaded is warm", spec: []r{{}, {}}, jobs: [][]job{{{hint: "m"}}}, elapsed: 800 * time.Millisecond,
			maxConc: 1, mode: affinity.ModeSoonest, cost: cost, primary: 0, outcome: affinity.OutcomeHit, queued: true},
		{name: "the least loaded warm runner", spec: []r{{hints: "m"}, {hints: "m"}, {}}, jobs: [][]job{hits(3, "m"), hits(2, "m")},
			maxConc: 2, mode: affinity.ModeSoonest, cost: cost, primary: 1, outcome: affinity.OutcomeHit, queued: true},
		{name: "a free warm runner is a plain hit", spec: []r{{hints: "m"}, {hints: "m"}}, jobs: [][]job{hits(2, "m"), hits(1, "m")},
			maxConc: 2, mode: affinity.ModeSoonest, cost: cost, primary: 1, outcome: affinity.OutcomeHit},
		// The runner reported m among its three models (its slots), but m
		// was sent there first and two loads are on their way: m will be
		// gone when the request runs.
		{name: "a model the loads ahead evict is cold", spec: []r{{hints: "m,a,b"}, {}},
			jobs:    [][]job{{{hint: "m", hit: true, done: true}, {hint: "a", hit: true, done: true}, {hint: "b", hit: true, done: true}, {hint: "c"}, {hint: "d"}}},
			maxConc: 4, mode: affinity.ModeSoonest, cost: cost, primary: 1, outcome: affinity.OutcomeMiss},
		{name: "a model the loads ahead keep is warm", spec: []r{{hints: "m,a,b"}, {}},
			jobs:    [][]job{{{hint: "a", hit: true, done: true}, {hint: "b", hit: true, done: true}, {hint: "m", hit: true, done: true}, {hint: "c"}, {hint: "d"}}},
			maxConc: 4, mode: affinity.ModeSoonest, cost: cost, primary: 0, outcome: affinity.OutcomeHit},
	}
	for _, tt := range tests {
		rs, idx := setup(t, tt.spec)
		now := time.Unix(1000, 0)
		p := affinity.NewPicker(affinity.PickerOptions{Index: idx, Mode: tt.mode, Now: func() time.Time { return now }})
		for i, js := range tt.jobs {
			for _, j := range js {
				outcome := affinity.OutcomeMiss
				if j.hit {
					outcome = affinity.OutcomeHit
				}
				jb := p.Begin(affinity.Pick{Runners: rs[i : i+1], Outcome: outcome}, affinity.Request{Hint: j.hint, Cost: tt.cost})
				if j.done {
					jb.Done()
				}
			}
		}
		now = now.Add(tt.elapsed)
		got := p.PickCost(rs, affinity.Request{MaxConcurrency: tt.maxConc, Hint: "m", Cost: tt.cost})
		if got.Runners[0] != rs[tt.primary] || got.Outcome != tt.outcome || got.Queued != tt.queued {
			t.Errorf("%s: primary %v outcome %s queued %v; want runner %d, %s, %v",
				tt.name, indices(rs, got.Runners[:1]), got.Outcome, got.Queued, tt.primary, tt.outcome, tt.queued)
		}
		if len(got.Runners) > 1 && got.Runners[1] == got.Runners[0] {
			t.Errorf("%s: the primary is repeated as an alternative", tt.name)
		}
	}
}

// A Job counts its request in flight until Done, once however often Done is
// called, and leaves no backlog behind.
func TestJobDone(t *testing.T) {
	rs, idx := setup(t, []r{{}, {}})
	p := affinity.NewPicker(affinity.PickerOptions{Index: idx, Mode: affinity.ModeSoonest})
	j := p.Begin(affinity.Pick{Runners: rs[:1], Outcome: affinity.OutcomeMiss}, affinity.Request{Hint: "m", Cost: affinity.Cost{}})
	if rs[0].InFlight() != 1 {
		t.Fatalf("in flight %d after Begin, want 1", rs[0].InFlight())
	}
	if got := p.PickCost(rs, affinity.Request{MaxConcurrency: 2, Hint: "m", Cost: affinity.Cost{}}); got.Runners[0] != rs[0] || got.Outcome != affinity.OutcomeHit {
		t.Errorf("a job for m in flight: pick %v %s, want runner 0 hit", indices(rs, got.Runners[:1]), got.Outcome)
	}
	j.Done()
	j.Done()
	if rs[0].InFlight() != 0 {
		t.Fatalf("in flight %d after Done twice, want 0", rs[0].InFlight())
	}
	if got := p.PickCost(rs, affinity.Request{MaxConcurrency: 2, Hint: "m", Cost: affinity.Cost{}}); got.Outcome != affinity.OutcomeMiss {
		t.Errorf("no job and no report: outcome %s, want miss", got.Outcome)
	}
	var nilJob *affinity.Job
	nilJob.Done()
	if p.Begin(affinity.Pick{}, affinity.Request{Hint: "m", Cost: affinity.Cost{}}) != nil {
		t.Error("Begin without a runner returned a job")
	}
}

// With sizes, a pool learns a hit's time per unit and the load a miss adds,
// and prices each request by its size; without, the per-request average.
func TestCostsPerUnit(t *testing.T) {
	c := affinity.NewCosts()
	rate, load := 50*time.Millisecond, 2*time.Second
	for i := range 6 {
		units := float64(1 + i%3) // 1, 2, 3
		c.ObserveSized("p", true, time.Duration(units*float64(rate)), units)
		c.ObserveSized("p", false, load+time.Duration(units*float64(rate)), units)
	}
	small, large := c.For("p", 1), c.For("p", 8)
	near := func(got, want time.Duration) bool { return got > want-want/50 && got < want+want/50 }
	if !near(small.Hit, rate) || !near(small.Miss, rate+load) || !near(large.Hit, 8*rate) || !near(large.Miss, 8*rate+load) {
		t.Errorf("small %+v, large %+v: want hit 50ms per unit and a 2s load", small, large)
	}
	if got, want := c.For("p", 0), c.Get("p"); got != want {
		t.Errorf("without a size: %+v, want the average %+v", got, want)
	}
	if c.For("q", 4) != (affinity.Cost{}) {
		t.Error("an unknown pool has a cost")
	}
	snap := c.Snapshot()["p"]
	// Every miss teaches the load: the two seen before the line was
	// known once it is.
	if snap.UnitSamples != 6 || snap.LoadSamples != 6 || snap.PerUnitMillis < 49 || snap.PerUnitMillis > 51 {
		t.Errorf("snapshot %+v", snap)
	}
}

// A fixed overhead on every request (the edge, the network) is learnt
// apart from the time per unit: it does not inflate small requests' rate.
func TestCostsFixedOverhead(t *testing.T) {
	c := affinity.NewCosts()
	base, rate, load := 2*time.Millisecond, 100*time.Millisecond, time.Second
	for i := range 40 {
		units := []float64{0.03, 0.5, 1, 3, 6}[i%5]
		c.ObserveSized("p", true, base+time.Duration(units*float64(rate)), units)
		c.ObserveSized("p", false, base+load+time.Duration(units*float64(rate)), units)
	}
	near := func(got, want time.Duration) bool { return got > want-want/20 && got < want+want/20 }
	tiny, big := c.For("p", 0.03), c.For("p", 6)
	if !near(tiny.Hit, base+3*time.Millisecond) || !near(big.Hit, base+600*time.Millisecond) || !near(big.Miss-big.Hit, load) {
		t.Errorf("tiny %+v, big %+v: want 2 ms + 100 ms per unit, and a 1 s load", tiny, big)
	}
	if s := c.Snapshot()["p"]; s.BaseMillis < 1.9 || s.BaseMillis > 2.1 || s.PerUnitMillis < 99 || s.PerUnitMillis > 101 {
		t.Errorf("snapshot %+v", s)
	}
}

// A pool's first requests are misses: sized ones price requests by their
// line (slope per unit, intercept a load) before any hit is measured, and
// teach the load once the hits' line is known.
func TestCostsEarlyMisses(t *testing.T) {
	c := affinity.NewCosts()
	rate, load := 100*time.Millisecond, 400*time.Millisecond
	for _, units := range []float64{0.5, 3, 1} {
		c.ObserveSized("p", false, load+time.Duration(units*float64(rate)), units)
	}
	near := func(got, want time.Duration) bool { return got > want-want/50 && got < want+want/50 }
	if got := c.For("p", 2); !near(got.Hit, 2*rate) || !near(got.Miss, 2*rate+load) {
		t.Errorf("from misses alone: %+v, want hit 200ms and a 400ms load", got)
	}
	// Misses all of one size cannot tell the load from the time per unit.
	same := affinity.NewCosts()
	for range 3 {
		same.ObserveSized("p", false, load+rate, 1)
	}
	if got := same.For("p", 2); got != (affinity.Cost{}) {
		t.Errorf("misses of one size: %+v, want nothing known", got)
	}
	for _, units := range []float64{1, 2, 4} {
		c.ObserveSized("p", true, time.Duration(units*float64(rate)), units)
	}
	if s := c.Snapshot()["p"]; s.LoadSamples != 3 || s.LoadMillis < 399 || s.LoadMillis > 401 {
		t.Errorf("after the hits: %+v, want the three early misses' 400ms load", s)
	}
}

// With a size, soonest prices an eviction by the model it evicts: one
// nobody asked for lately goes nearly for free, a popular one at the full
// three loads. Without a size, every eviction costs the full price.
func TestPickSizedEviction(t *testing.T) {
	cost := affinity.Cost{Hit: 100 * time.Millisecond, Miss: 1100 * time.Millisecond} // a load costs 1 s
	for _, tt := range []struct {
		name     string
		units    float64
		xAsked   int // requests for x just sent to runner 1 (and answered)
		primary  int
		evictsOn bool
	}{
		// 35 × 100 ms on the warm runner against 1.1 s and 3 loads.
		{name: "without a size: the full price", units: 0, primary: 0},
		{name: "sized, the evicted model unasked: load", units: 1, primary: 1, evictsOn: true},
		{name: "sized, the evicted model popular: wait", units: 1, xAsked: 20, primary: 0},
	} {
		rs, idx := setup(t, []r{{hints: "m"}, {hints: "x"}})
		now := time.Unix(1000, 0)
		p := affinity.NewPicker(affinity.PickerOptions{Index: idx, Mode: affinity.ModeSoonest, Now: func() time.Time { return now }})
		for range 35 {
			p.Begin(affinity.Pick{Runners: rs[:1], Outcome: affinity.OutcomeHit}, affinity.Request{Hint: "m", Cost: cost})
		}
		for range tt.xAsked {
			p.Begin(affinity.Pick{Runners: rs[1:2], Outcome: affinity.OutcomeHit}, affinity.Request{Hint: "x", Cost: cost}).Done()
		}
		got := p.PickCost(rs, affinity.Request{MaxConcurrency: 1, Hint: "m", Cost: cost, Units: tt.units})
		if got.Runners[0] != rs[tt.primary] || got.Reasons[0].Evicts != tt.evictsOn {
			t.Errorf("%s: primary %v (evicts %v); want runner %d", tt.name, indices(rs, got.Runners[:1]), got.Reasons[0].Evicts, tt.primary)
		}
	}
}
