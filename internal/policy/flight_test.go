package policy_test

import (
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/affinity"
	"github.com/switchyard/switchyard/internal/config"
	"github.com/switchyard/switchyard/internal/policy"
	"github.com/switchyard/switchyard/internal/registry"
)

// flightEnv is an Engine with its default pickers, a registry and a clock
// the test moves.
type flightEnv struct {
	cfg     *config.Config
	runners *registry.Registry
	engine  *policy.Engine
	now     time.Time
}

func newFlightEnv(t *testing.T, hp config.HintPolicy) *flightEnv {
	t.Helper()
	cfg, err := config.Parse("t.yaml", []byte(base+"hints: {policy: "+string(hp)+"}\n"))
	if err != nil {
		t.Fatal(err)
	}
	f := &flightEnv{cfg: cfg, runners: registry.New(registry.Options{}), now: time.Unix(1000, 0)}
	f.runners.ApplyConfig(cfg)
	f.engine = policy.New(policy.Options{Runners: f.runners, Now: func() time.Time { return f.now }})
	return f
}

func (f *flightEnv) dispatch(t *testing.T, route string, req policy.Request) (policy.Decision, *policy.Flight) {
	t.Helper()
	r, _ := f.cfg.Route(route)
	d, err := f.engine.Decide(f.cfg, r, req)
	if err != nil {
		t.Fatal(err)
	}
	return d, f.engine.Dispatch(f.cfg, d)
}

func (f *flightEnv) inFlight(pool, addr string) int64 {
	r, _ := f.runners.Runner(pool, addr)
	return r.InFlight()
}

var fluxHint = policy.Request{Headers: map[string]string{"x-fal-runner-hint": "flux"}, Body: map[string]any{"width": 64.0, "height": 64.0}}

// Every hint policy has a default picker: a hinted request is decided and
// dispatched under each.
func TestDefaultPickers(t *testing.T) {
	for _, hp := range config.HintPolicies {
		f := newFlightEnv(t, hp)
		d, fl := f.dispatch(t, "images", fluxHint)
		if d.Policy != hp || d.Outcome != affinity.OutcomeMiss || len(d.Runners) == 0 {
			t.Fatalf("%s: policy %q outcome %q runners %d", hp, d.Policy, d.Outcome, len(d.Runners))
		}
		if n := f.inFlight("a100", d.Runners[0].Address); n != 1 {
			t.Errorf("%s: %d in flight on the chosen runner after Dispatch, want 1", hp, n)
		}
		fl.End()
	}
}

// The whole life of a request: dispatched, answered (hints learnt, a final
// response frees the runner), ended once however often End is called.
func TestFlightLife(t *testing.T) {
	f := newFlightEnv(t, config.HintSoonest)
	d, fl := f.dispatch(t, "images", fluxHint)
	addr := d.Runners[0].Address
	if got := fl.Decision(); got.Target.Pool != "a100" || got.Runners[0].Address != addr {
		t.Fatalf("Decision() = %+v", got)
	}
	// A streamed response: its headers teach the hints but the runner's
	// work goes on until the end.
	fl.Respond(policy.Response{Runner: addr, Status: 200, Hints: "flux", HintsReported: true})
	if !f.engine.Hints().Has(addr, "flux") {
		t.Error("the runner's reported hints were not learnt")
	}
	if n := f.inFlight("a100", addr); n != 1 {
		t.Errorf("%d in flight during a streamed response, want 1", n)
	}
	fl.End()
	fl.End()
	if n := f.inFlight("a100", addr); n != 0 {
		t.Errorf("%d in flight after End (twice), want 0", n)
	}

	// A final response frees the runner at once; End after it is a no-op.
	d, fl = f.dispatch(t, "images", fluxHint)
	if d.Outcome != affinity.OutcomeHit || d.Runners[0].Address != addr {
		t.Fatalf("second request: %s on %s, want a hit on %s", d.Outcome, d.Runners[0].Address, addr)
	}
	fl.Respond(policy.Response{Runner: addr, Status: 200, Hints: "flux", HintsReported: true, Final: true})
	if n := f.inFlight("a100", addr); n != 0 {
		t.Errorf("%d in flight after a final response, want 0", n)
	}
	fl.End()
	if n := f.inFlight("a100", addr); n != 0 {
		t.Errorf("%d in flight after End following a final response, want 0", n)
	}

	// No header keeps what is known; an empty one means nothing is held.
	_, fl = f.dispatch(t, "images", fluxHint)
	fl.Respond(policy.Response{Runner: addr, Status: 200, Final: true})
	if !f.engine.Hints().Has(addr, "flux") {
		t.Error("a response without the hints header forgot the runner's hints")
	}
	_, fl = f.dispatch(t, "images", fluxHint)
	fl.Respond(policy.Response{Runner: addr, Status: 200, HintsReported: true, Final: true})
	if f.engine.Hints().Has(addr, "flux") {
		t.Error("an empty hints header kept the runner's hints")
	}
}

// Only requests sent to a free runner, answered 2xx by the runner chosen
// for them, teach the pool's costs, timed from dispatch to response.
func TestFlightTeachesCosts(t *testing.T) {
	tests := []struct {
		name   string
		status int
		other  bool // answered by another runner than the chosen one
		busy   bool // the chosen runner was busy when dispatched
		noHint bool
		learnt bool
	}{
		{name: "free, 200", status: 200, learnt: true},
		{name: "free, 503", status: 503},
		{name: "another runner answered", status: 200, other: true},
		{name: "queued on a busy runner", status: 200, busy: true},
		{name: "no hint", status: 200, noHint: true},
	}
	for _, tt := range tests {
		f := newFlightEnv(t, config.HintSoonest)
		req := fluxHint
		if tt.noHint {
			req = policy.Request{Body: fluxHint.Body}
		}
		const samples = 3 // what a Cost needs of each kind to be known
		for i := range 2 * samples {
			if tt.busy {
				for _, r := range f.runners.Active("a100") {
					r.Acquire()
					r.Acquire()
				}
			}
			d, fl := f.dispatch(t, "images", req)
			addr := d.Runners[0].Address
			if tt.other {
				addr = "10.0.2.1:80"
			}
			f.now = f.now.Add(time.Duration(100+100*(i%2)) * time.Millisecond)
			// Half the requests find the model (hits), half load it.
			hints := "flux"
			if i%2 == 1 {
				hints = ""
			}
			fl.Respond(policy.Response{Runner: addr, Status: tt.status, Hints: hints, HintsReported: true, Final: true})
			if tt.busy {
				for _, r := range f.runners.Active("a100") {
					r.Release()
					r.Release()
				}
			}
		}
		c := f.engine.Costs().Snapshot()["a100"]
		if learnt := c.Hits+c.Misses > 0; learnt != tt.learnt {
			t.Errorf("%s: costs learnt %v (%+v), want %v", tt.name, learnt, c, tt.learnt)
		}
	}
}

// A response to a request no Flight follows still teaches its runner's hints.
func TestObserveWithoutFlight(t *testing.T) {
	f := newFlightEnv(t, config.HintSoonest)
	f.engine.Observe(policy.Response{Runner: "10.0.1.1:80", Status: 200, Hints: "sdxl", HintsReported: true})
	if !f.engine.Hints().Has("10.0.1.1:80", "sdxl") {
		t.Error("hints of an undecided request's runner were not learnt")
	}
	f.engine.Observe(policy.Response{Status: 502, Hints: "x", HintsReported: true}) // no runner: nothing to learn, no panic
}

// A flight handed over to await its end report counts on its runner until
// the report: the report teaches hints and the pool's costs (with the time
// the reporter measured), and ends the work. A report that never comes
// ends it at the limit; a report for no flight still teaches hints.
func TestAwaitEndReport(t *testing.T) {
	f := newFlightEnv(t, config.HintSoonest)
	d, fl := f.dispatch(t, "images", fluxHint)
	addr := d.Runners[0].Address
	key := f.engine.Await(fl, time.Minute)
	if n, _ := f.engine.Awaiting(); n != 1 || f.inFlight("a100", addr) != 1 {
		t.Fatalf("awaiting %d, in flight %d: want 1 and 1", n, f.inFlight("a100", addr))
	}
	f.now = f.now.Add(5 * time.Second) // the report comes late; its own timing counts
	f.engine.Finish(key, policy.Response{Runner: addr, Status: 200, Hints: "flux", HintsReported: true, Elapsed: 300 * time.Millisecond})
	if f.inFlight("a100", addr) != 0 || !f.engine.Hints().Has(addr, "flux") {
		t.Errorf("after the report: in flight %d, hints learnt %v", f.inFlight("a100", addr), f.engine.Hints().Has(addr, "flux"))
	}
	if c := f.engine.Costs().Snapshot(); len(c) == 0 {
		t.Error("the report taught no cost")
	}
	// A second report under the same key finds nothing to end.
	f.engine.Finish(key, policy.Response{Runner: addr, Status: 200})
	if f.inFlight("a100", addr) != 0 {
		t.Errorf("a repeated report changed the count: %d", f.inFlight("a100", addr))
	}

	// Lost reports: the flights end once past their limit, when the next
	// one is handed over.
	_, fl = f.dispatch(t, "images", fluxHint)
	f.engine.Await(fl, time.Minute)
	f.now = f.now.Add(2 * time.Minute)
	_, fl2 := f.dispatch(t, "images", fluxHint)
	key2 := f.engine.Await(fl2, time.Minute)
	if n, expired := f.engine.Awaiting(); n != 1 || expired != 1 {
		t.Errorf("awaiting %d, expired %d: want 1 and 1", n, expired)
	}
	var total int64
	for _, r := range f.runners.List() {
		total += r.InFlight
	}
	if total != 1 {
		t.Errorf("%d in flight with one flight awaiting: the expired one still counts", total)
	}
	f.engine.Finish(key2, policy.Response{})
	// A report of a request no flight awaits teaches its runner's hints.
	f.engine.Finish("", policy.Response{Runner: addr, Status: 200, Hints: "sdxl", HintsReported: true})
	if !f.engine.Hints().Has(addr, "sdxl") {
		t.Error("an undecided request's report taught no hints")
	}
	for _, r := range f.runners.List() {
		if r.InFlight != 0 {
			t.Errorf("runner %s: %d in flight at the end", r.Address, r.InFlight)
		}
	}
}
