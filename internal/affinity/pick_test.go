package affinity_test

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/switchyard/switchyard/internal/affinity"
	"github.com/switchyard/switchyard/internal/config"
	"github.com/switchyard/switchyard/internal/registry"
	"github.com/switchyard/switchyard/internal/runner"
)

// newPool returns n active runners of one pool, sorted by address, with
// nothing in flight.
func newPool(t testing.TB, n int) []*runner.Runner {
	t.Helper()
	var b strings.Builder
	b.WriteString("listeners: [{name: l, address: 127.0.0.1, port: 10000}]\npools:\n  - name: p\n    runners:\n")
	for i := range n {
		fmt.Fprintf(&b, "      - address: 10.0.0.1:%d\n", 9000+i)
	}
	b.WriteString("routes: [{name: r, match: {prefix: /}, rules: [{pool: p}]}]\n")
	cfg, err := config.Parse("t.yaml", []byte(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	reg := registry.New(registry.Options{})
	reg.ApplyConfig(cfg)
	rs := reg.Active("p")
	if len(rs) != n {
		t.Fatalf("%d active runners, want %d", len(rs), n)
	}
	return rs
}

// r is a runner's state before a pick: requests in flight, hints reported.
type r struct {
	load  int
	hints string
}

// setup makes a pool in the given state and an index of its hints.
func setup(t testing.TB, spec []r) ([]*runner.Runner, *affinity.Index) {
	t.Helper()
	if len(spec) == 0 {
		return nil, affinity.NewIndex(affinity.IndexOptions{})
	}
	rs := newPool(t, len(spec))
	x := affinity.NewIndex(affinity.IndexOptions{})
	for i, s := range spec {
		for range s.load {
			rs[i].Acquire()
		}
		x.Report(rs[i].Address, s.hints, true)
	}
	return rs, x
}

func indices(all, picked []*runner.Runner) []int {
	out := []int{}
	for _, p := range picked {
		for i, r := range all {
			if r == p {
				out = append(out, i)
			}
		}
	}
	return out
}

func TestPick(t *testing.T) {
	tests := []struct {
		name    string
		runners []r
		maxConc int
		hint    string
		want    []int // runner indices, primary first
		outcome affinity.Outcome
	}{
		// No hint: least in-flight, hints do not matter.
		{"no hint: least in-flight first", []r{{2, ""}, {0, "x,y,z"}, {1, "a"}}, 4, "",
			[]int{1, 2, 0}, affinity.OutcomeNone},
		{"no hint: busy runners left out while one is free", []r{{1, ""}, {0, ""}, {1, ""}}, 1, "",
			[]int{1}, affinity.OutcomeNone},
		{"no hint: all busy over-commits the least loaded", []r{{3, ""}, {1, ""}, {2, ""}, {5, ""}}, 1, "",
			[]int{1, 2, 0}, affinity.OutcomeNone},
		{"no hint: at most 1+MaxAlternatives runners", []r{{4, ""}, {3, ""}, {2, ""}, {1, ""}, {0, ""}}, 9, "",
			[]int{4, 3, 2}, affinity.OutcomeNone},
		{"no runners, no hint", nil, 1, "", nil, affinity.OutcomeNone},

		// Hit: a non-busy runner holding the hint.
		{"hit: holder beats an emptier, idler runner", []r{{0, ""}, {1, "a,b"}}, 2, "a",
			[]int{1, 0}, affinity.OutcomeHit},
		{"hit: least in-flight among holders", []r{{2, "a"}, {1, "b,a"}, {3, "a"}, {0, ""}}, 4, "a",
			[]int{1, 0, 2}, affinity.OutcomeHit},
		{"hit: a busy holder is skipped for a free one", []r{{1, "a"}, {0, "a"}, {0, ""}}, 1, "a",
			[]int{1, 2}, affinity.OutcomeHit},
		{"hit: alternatives are free non-holders by room", []r{{0, "a"}, {0, "b,c"}, {1, ""}}, 2, "a",
			[]int{0, 2, 1}, affinity.OutcomeHit},
		{"hit: exact match only", []r{{0, "A,a-1,a/"}, {1, "a"}}, 2, "a",
			[]int{1, 0}, affinity.OutcomeHit},

		// Busy: holders exist, all busy: a free runner, preferring room to load.
		{"busy: free runner with room, never waiting", []r{{1, "a"}, {0, "b,c"}, {0, ""}}, 1, "a",
			[]int{2, 1}, affinity.OutcomeBusy},
		{"busy: room beats in-flight", []r{{2, "a"}, {0, "b,c"}, {1, "d"}}, 2, "a",
			[]int{2, 1}, affinity.OutcomeBusy},

		// Miss: nobody holds the hint.
		{"miss: fewest hints before least in-flight", []r{{0, "b,c"}, {1, "b"}, {2, ""}}, 4, "a",
			[]int{2, 1, 0}, affinity.OutcomeMiss},
		{"miss: equal room, least in-flight", []r{{2, "b"}, {1, "c"}, {3, "d"}}, 4, "a",
			[]int{1, 0, 2}, affinity.OutcomeMiss},
		{"miss: busy runners left out", []r{{1, ""}, {0, "b,c"}}, 1, "a",
			[]int{1}, affinity.OutcomeMiss},
		{"miss: no runners", nil, 1, "a", nil, affinity.OutcomeMiss},

		// Every runner busy: over-commit the least loaded, holder first.
		{"all busy: least loaded, then holder, then room", []r{{2, "a"}, {1, "b,c"}, {1, "a"}, {1, ""}}, 1, "a",
			[]int{2, 3, 1}, affinity.OutcomeBusy},
		{"all busy: least loaded beats holder", []r{{3, "a"}, {2, "b"}}, 2, "a",
			[]int{1, 0}, affinity.OutcomeBusy},
		{"all busy, nobody holds: miss", []r{{3, "b"}, {2, ""}, {2, "c,d"}}, 1, "a",
			[]int{1, 2, 0}, affinity.OutcomeMiss},

		// Odd inputs.
		{"invalid hint counts as none", []r{{1, "a b"}, {0, ""}}, 4, "a b",
			[]int{1, 0}, affinity.OutcomeNone},
		{"max concurrency below 1 counts as 1", []r{{1, ""}, {0, ""}}, 0, "",
			[]int{1}, affinity.OutcomeNone},
	}
	for _, tt := range tests {
		for _, mode := range []affinity.Mode{affinity.ModeFal, affinity.ModeLoadingMarks} {
			t.Run(string(mode)+"/"+tt.name, func(t *testing.T) {
				rs, x := setup(t, tt.runners)
				p := affinity.NewPicker(affinity.PickerOptions{Index: x, Mode: mode, Rand: rand.NewPCG(1, 2)})
				got := p.Pick(rs, affinity.Request{MaxConcurrency: tt.maxConc, Hint: tt.hint})
				if got.Outcome != tt.outcome {
					t.Errorf("outcome %q, want %q", got.Outcome, tt.outcome)
				}
				if diff := cmp.Diff(tt.want, indices(rs, got.Runners)); tt.want != nil && diff != "" {
					t.Errorf("runners (-want +got):\n%s", diff)
				}
				if tt.want == nil && len(got.Runners) != 0 {
					t.Errorf("runners %d, want none", len(got.Runners))
				}
				// Pick leaves the in-flight counts to the caller.
				for i, r := range rs {
					if r.InFlight() != int64(tt.runners[i].load) {
						t.Errorf("runner %d: in flight %d, want %d", i, r.InFlight(), tt.runners[i].load)
					}
				}
				// Only Switchyard marks the runner a miss or busy hint goes to.
				if len(got.Runners) == 0 {
					return
				}
				primary := tt.runners[tt.want[0]]
				held := strings.Contains(","+primary.hints+",", ","+tt.hint+",")
				wantHas := held || mode == affinity.ModeLoadingMarks && (got.Outcome == affinity.OutcomeMiss || got.Outcome == affinity.OutcomeBusy)
				if tt.hint != "" && affinity.ValidHint(tt.hint) && x.Has(got.Runners[0].Address, tt.hint) != wantHas {
					t.Errorf("Has(primary, %q) = %v, want %v", tt.hint, !wantHas, wantHas)
				}
				affinity.CheckInvariants(t, x)
			})
		}
	}
}

// Equally good runners are chosen at random, so load spreads evenly.
func TestPickTiesAreRandom(t *testing.T) {
	tests := []struct {
		name    string
		runners []r
		hint    string
		tied    []int
	}{
		{"no hint", []r{{0, ""}, {0, "a"}, {0, "b"}, {1, ""}}, "", []int{0, 1, 2}},
		{"hit", []r{{0, "a"}, {0, ""}, {0, "a,b"}, {0, "a"}}, "a", []int{0, 2, 3}},
		{"miss", []r{{0, "b"}, {0, "c"}, {0, "b,c"}, {0, "d"}}, "a", []int{0, 1, 3}},
	}
	const picks = 30000
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rs, x := setup(t, tt.runners)
			p := affinity.NewPicker(affinity.PickerOptions{Index: x, Mode: affinity.ModeFal, Rand: rand.NewPCG(3, 4)})
			count := make([]int, len(rs))
			for range picks {
				count[indices(rs, p.Pick(rs, affinity.Request{MaxConcurrency: 4, Hint: tt.hint}).Runners[:1])[0]]++
			}
			share := picks / len(tt.tied)
			for _, i := range tt.tied {
				if count[i] < share*9/10 || count[i] > share*11/10 {
					t.Errorf("runner %d picked %d times, want about %d (counts %v)", i, count[i], share, count)
				}
			}
			total := 0
			for _, i := range tt.tied {
				total += count[i]
			}
			if total != picks {
				t.Errorf("a runner outside the tie was picked: counts %v", count)
			}
		})
	}
}

// The same seed gives the same picks, and the runtime generator works too.
func TestPickDeterministicRand(t *testing.T) {
	rs, x := setup(t, []r{{0, ""}, {0, ""}, {0, ""}, {0, ""}, {0, ""}})
	run := func(src rand.Source) []int {
		p := affinity.NewPicker(affinity.PickerOptions{Index: x, Rand: src, Mode: affinity.ModeLoadingMarks})
		var out []int
		for range 20 {
			out = append(out, indices(rs, p.Pick(rs, affinity.Request{MaxConcurrency: 1, Hint: ""}).Runners)...)
		}
		return out
	}
	a, b := run(rand.NewPCG(7, 7)), run(rand.NewPCG(7, 7))
	if diff := cmp.Diff(a, b); diff != "" {
		t.Errorf("same seed, different picks (-first +second):\n%s", diff)
	}
	if got := run(nil); len(got) != 20*3 {
		t.Errorf("runtime generator: %d runners picked, want %d", len(got), 20*3)
	}
}

// A burst of requests for a model nobody holds: fal spreads them over the
// idlest runners, each cold-loading it; Switchyard sends them to the runner
// already loading it until that runner is busy.
func TestBurstForNewModel(t *testing.T) {
	const maxConc = 4
	tests := []struct {
		mode         affinity.Mode
		wantRunners  int // distinct runners the first maxConc requests reach
		wantOutcomes []affinity.Outcome
	}{
		{affinity.ModeFal, maxConc, []affinity.Outcome{"miss", "miss", "miss", "miss", "miss"}},
		{affinity.ModeLoadingMarks, 1, []affinity.Outcome{"miss", "hit", "hit", "hit", "busy"}},
	}
	for _, tt := range tests {
		t.Run(string(tt.mode), func(t *testing.T) {
			rs, x := setup(t, make([]r, 8))
			p := affinity.NewPicker(affinity.PickerOptions{Index: x, Mode: tt.mode, Rand: rand.NewPCG(5, 6)})
			used := map[*runner.Runner]bool{}
			var outcomes []affinity.Outcome
			for i := range maxConc + 1 {
				pk := p.Pick(rs, affinity.Request{MaxConcurrency: maxConc, Hint: "flux"})
				pk.Runners[0].Acquire() // in flight: no response, no report yet
				outcomes = append(outcomes, pk.Outcome)
				if i < maxConc {
					used[pk.Runners[0]] = true
				} else if used[pk.Runners[0]] && tt.mode == affinity.ModeLoadingMarks {
					t.Error("request past max_concurrency went to the busy loading runner")
				}
			}
			if len(used) != tt.wantRunners {
				t.Errorf("burst reached %d runners, want %d", len(used), tt.wantRunners)
			}
			if diff := cmp.Diff(tt.wantOutcomes, outcomes); diff != "" {
				t.Errorf("outcomes (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseMode(t *testing.T) {
	for in, want := range map[string]affinity.Mode{"loading_marks": affinity.ModeLoadingMarks, "fal": affinity.ModeFal, "soonest": affinity.ModeSoonest} {
		if got, err := affinity.ParseMode(in); err != nil || got != want {
			t.Errorf("ParseMode(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	// The one default hint policy is the config's: no mode is implied here.
	for _, in := range []string{"FAL", "", "switchyard"} {
		if _, err := affinity.ParseMode(in); err == nil {
			t.Errorf("ParseMode(%q) did not fail", in)
		}
	}
	if p := affinity.NewPicker(affinity.PickerOptions{Mode: affinity.ModeFal}); p.Mode() != affinity.ModeFal || p.Index() == nil {
		t.Errorf("picker without an index: mode %q, index %v", p.Mode(), p.Index())
	}
}

// Reports, loading marks and picks race freely; run with -race.
func TestPickConcurrent(t *testing.T) {
	rs, x := setup(t, make([]r, 16))
	p := affinity.NewPicker(affinity.PickerOptions{Index: x, Rand: rand.NewPCG(1, 1), Mode: affinity.ModeLoadingMarks})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() { // request path: pick, acquire, release
			for i := range 3000 {
				pk := p.Pick(rs, affinity.Request{MaxConcurrency: 2, Hint: fmt.Sprintf("m%d", (i+w)%10)})
				if len(pk.Runners) == 0 {
					t.Error("no runner picked")
					return
				}
				pk.Runners[0].Acquire()
				pk.Runners[0].Release()
			}
		})
		wg.Go(func() { // response path: reports
			for i := range 3000 {
				x.Report(rs[(i*3+w)%len(rs)].Address, fmt.Sprintf("m%d,m%d", i%10, (i+w)%10), i%7 != 0)
				if i%500 == 0 {
					x.Forget(rs[i%len(rs)].Address)
				}
			}
		})
	}
	wg.Wait()
	affinity.CheckInvariants(t, x)
	for _, r := range rs {
		if r.InFlight() != 0 {
			t.Errorf("%s: %d in flight", r.Address, r.InFlight())
		}
	}
}
