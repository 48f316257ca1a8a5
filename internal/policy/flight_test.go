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
	if pool := fl.ServingPool(addr); pool != "a100" {
		t.Errorf("serving pool %q, want a100", pool)
	}
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

// The serving pool is the chosen one, or the fallback whose runner answered.
func TestFlightServingPool(t *testing.T) {
	f := newFlightEnv(t, config.HintSoonest)
	_, fl := f.dispatch(t, "images", fluxHint)
	fl.Respond(policy.Response{Runner: "10.0.2.1:80", Status: 200, Final: true})
	if pool := fl.ServingPool("10.0.2.1:80"); pool != "a6000" {
		t.Errorf("answered by the fallback's runner: pool %q, want a6000", pool)
	}
	_, fl = f.dispatch(t, "images", fluxHint)
	fl.Respond(policy.Response{Status: 503, Final: true})
	if pool := fl.ServingPool(""); pool != "a100" {
		t.Errorf("no runner answered: pool %q, want the chosen a100", pool)
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
