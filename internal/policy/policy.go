package policy

import (
	"errors"
	"log/slog"
	"time"

	"github.com/switchyard/switchyard/internal/affinity"
	"github.com/switchyard/switchyard/internal/config"
	"github.com/switchyard/switchyard/internal/runner"
)

// ErrInvalidBody is returned for a route with on_invalid_body: reject when
// its rules need the body and the body is not a JSON object.
var ErrInvalidBody = errors.New("request body is not a JSON object")

// Runners is what the policy reads of the runner registry.
type Runners interface {
	// Active gives the pool's runners that may take new requests.
	Active(pool string) []*runner.Runner
	// Runner finds a registered runner, draining ones included.
	Runner(pool, address string) (*runner.Runner, bool)
}

// Picker orders a pool's runners for a request with a hint, and counts the
// request on the runner it is dispatched to (Begin) until it ends.
type Picker interface {
	PickCost(runners []*runner.Runner, q affinity.Request) affinity.Pick
	Begin(pick affinity.Pick, q affinity.Request) *affinity.Job
	// Forget drops what the picker knows of a runner.
	Forget(addr string)
	// Jobs and SetRemote share the work in flight between the replicas of
	// a cluster: this replica's jobs by runner, and another's.
	Jobs() map[string][]affinity.JobInfo
	SetRemote(replica string, jobs map[string][]affinity.JobInfo)
}

// Request is what the policy sees of an HTTP request.
type Request struct {
	Method  string
	Path    string
	Headers map[string]string // lower-case names, first value
	// Body holds the JSON body's fields the route's expressions read; nil
	// when the body was not read. BodyErr says the body is not JSON.
	Body    map[string]any
	BodyErr error
}

// Decision is where a request goes. It is plain data: Dispatch acts on it.
type Decision struct {
	Route   string
	Target  config.Target // pool and fallbacks; Target.Name() is the routing header
	Variant string        // the split variant chosen, "" without a split
	Hint    string        // "" without a (valid) hint
	Outcome affinity.Outcome
	// Queued says the primary was busy when chosen (it holds the model and
	// is expected to free up before a load elsewhere would finish).
	Queued bool
	// Runners are the chosen pool's runners for this request, best first;
	// empty when Envoy's own balancer picks (or the pool has none).
	Runners []*runner.Runner
	// Fallbacks holds one runner per fallback pool, in order; nil for a
	// pool with no active runner.
	Fallbacks []*runner.Runner
	// Cost is what the request was expected to take on the chosen pool
	// (its learnt costs, for Units when the route has a cost expression).
	Cost affinity.Cost
	// Units is the request's size from the route's cost expression; 0
	// without one (or when it could not be evaluated).
	Units float64
	// Policy is the hint policy that ranked Runners.
	Policy config.HintPolicy

	// Why it was decided so, for the decision record:
	// Rule is the index of the matched rule and When its condition ("" for
	// a rule without one).
	Rule int
	When string
	// HintSource is where Hint came from: the request header's name, or
	// "hint_from".
	HintSource string
	// Reasons say what the pick knew of Runners[0] and Runners[1].
	Reasons [2]affinity.Reason
	// HintAge is how long ago Runners[0] last reported its hints (or was
	// marked loading one); zero when nothing was known of it.
	HintAge time.Duration

	// guard is the chosen variant's, which learns how the request ended.
	guard *config.Guard
}

// Engine makes decisions and learns from what follows them; it is safe
// for concurrent use.
type Engine struct {
	runners  Runners
	pickers  map[config.HintPolicy]Picker
	hints    *affinity.Index
	costs    *affinity.Costs
	now      func() time.Time
	reported func(addr, hints string)
	awaiting *awaiting
	metrics  *Metrics
	guards   *guards
}

// Options configure an Engine.
type Options struct {
	Runners Runners
	// Hints is where the runners' reported hints are learnt and read; a new
	// Index when nil.
	Hints *affinity.Index
	// Costs learns each pool's request costs, which let soonest weigh
	// waiting for a warm runner against a model load; a new one when nil.
	Costs *affinity.Costs
	// Pickers by hint policy. When nil, one affinity.Picker per policy of
	// config.HintPolicies over Hints; tests and the simulation inject
	// seeded ones.
	Pickers map[config.HintPolicy]Picker
	// Now is the clock that times requests for Costs; time.Now when nil.
	Now func() time.Time
	// Reported, when set, is told every hints header a runner reported on
	// a response this replica saw (the cluster shares it with the others).
	Reported func(addr, hints string)
	// Metrics, when set, measure the policy's predictions and count split
	// variants' changes.
	Metrics *Metrics
	// Log, when set, is told of split variants leaving or rejoining their
	// split.
	Log *slog.Logger
}

// New makes an Engine.
func New(o Options) *Engine {
	if o.Hints == nil {
		o.Hints = affinity.NewIndex(affinity.IndexOptions{})
	}
	if o.Costs == nil {
		o.Costs = affinity.NewCosts()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Pickers == nil {
		o.Pickers = make(map[config.HintPolicy]Picker, len(config.HintPolicies))
		for _, hp := range config.HintPolicies {
			o.Pickers[hp] = affinity.NewPicker(affinity.PickerOptions{Index: o.Hints, Mode: affinity.Mode(hp)})
		}
	}
	return &Engine{runners: o.Runners, pickers: o.Pickers, hints: o.Hints, costs: o.Costs, now: o.Now, reported: o.Reported,
		awaiting: newAwaiting(AwaitCapacity), metrics: o.Metrics, guards: newGuards(o.Log, o.Metrics)}
}

// Jobs is the work this replica has in flight, by runner address, as the
// pickers that keep a backlog know it.
func (e *Engine) Jobs() map[string][]affinity.JobInfo {
	out := map[string][]affinity.JobInfo{}
	for _, hp := range config.HintPolicies {
		if p := e.pickers[hp]; p != nil {
			for addr, js := range p.Jobs() {
				out[addr] = append(out[addr], js...)
			}
		}
	}
	return out
}

// SetRemote replaces the work another replica reported in flight, by
// runner address (nil forgets the replica), in every picker's estimates.
func (e *Engine) SetRemote(replica string, jobs map[string][]affinity.JobInfo) {
	for _, p := range e.pickers {
		p.SetRemote(replica, jobs)
	}
}

// Waiter is a Picker that knows the work queued on each runner.
type Waiter interface {
	Wait(addr string, maxConcurrency int) time.Duration
}

// Queued is the work queued on the runner at addr, as the soonest policy
// estimates it (zero when no picker keeps a backlog).
func (e *Engine) Queued(addr string, maxConcurrency int) time.Duration {
	if w, ok := e.pickers[config.HintSoonest].(Waiter); ok {
		return w.Wait(addr, maxConcurrency)
	}
	return 0
}

// Splits is every split of cfg as it stands: each variant's weight now,
// its state and its guard's window.
func (e *Engine) Splits(cfg *config.Config) []SplitStatus { return e.guards.status(cfg, e.now()) }

// SetVariant puts a split variant back in every split of the route that
// has it (enabled), or takes it out, as an operator would. It refuses to
// take out a split's last variant in service.
func (e *Engine) SetVariant(cfg *config.Config, route, pool string, enabled bool) error {
	return e.guards.set(cfg, route, pool, enabled, e.now())
}

// Hints is the index the Engine learns runners' hints into.
func (e *Engine) Hints() *affinity.Index { return e.hints }

// Costs is the Engine's learnt request costs.
func (e *Engine) Costs() *affinity.Costs { return e.costs }

// Forget drops what the Engine knows of the runner at addr: a runner new at
// an address starts with no known hints and no work, whatever an earlier
// one held.
func (e *Engine) Forget(addr string) {
	e.hints.Forget(addr)
	for _, p := range e.pickers {
		p.Forget(addr)
	}
}

// Decide picks the target and runners for req on route. It changes nothing
// but a loading_marks picker's marks: Dispatch sends the request.
func (e *Engine) Decide(cfg *config.Config, route *config.Route, req Request) (Decision, error) {
	if req.BodyErr != nil && route.OnInvalidBody == config.InvalidBodyReject && route.NeedsBody() {
		return Decision{}, ErrInvalidBody
	}
	act := activation(req)
	d := Decision{Route: route.Name, Policy: cfg.Hints.Policy}
	d.Rule = len(route.Rules) - 1
	for i, r := range route.Rules {
		if r.When == nil || evalBool(r.When, act) {
			d.Rule = i
			break
		}
	}
	rule := route.Rules[d.Rule]
	if rule.When != nil {
		d.When = rule.When.Source
	}
	pool := rule.Pool
	if rule.Split != nil {
		v := e.variant(route.Name, d.Rule, rule.Split, act)
		pool, d.Variant, d.guard = v.Pool, v.Pool, v.Guard
	}
	d.Target = rule.Target(pool)
	d.Hint, d.HintSource = hint(cfg, route, req, act)
	if route.Cost != nil {
		d.Units = evalUnits(route.Cost, act)
	}
	picker := e.pickers[cfg.Hints.Policy]
	// Envoy's own balancers pick for pools that use them.
	if p, ok := cfg.Pool(pool); ok && p.LoadBalancer.Policy == config.LBHintAffinity {
		d.Cost = e.costs.For(pool, d.Units)
		pick := picker.PickCost(e.runners.Active(pool), affinity.Request{MaxConcurrency: p.MaxConcurrency, Hint: d.Hint, Cost: d.Cost, Units: d.Units})
		d.Runners, d.Outcome, d.Queued, d.Reasons = pick.Runners, pick.Outcome, pick.Queued, pick.Reasons
		if len(d.Runners) > 0 {
			if at := e.hints.ReportedAt(d.Runners[0].Address); !at.IsZero() {
				d.HintAge = max(e.now().Sub(at), 0)
			}
		}
	}
	if d.Hint == "" {
		d.Outcome = affinity.OutcomeNone
	}
	for _, f := range rule.Fallback {
		var best *runner.Runner
		if p, ok := cfg.Pool(f); ok && p.LoadBalancer.Policy == config.LBHintAffinity {
			if pick := picker.PickCost(e.runners.Active(f), affinity.Request{MaxConcurrency: p.MaxConcurrency, Hint: d.Hint, Cost: e.costs.For(f, d.Units), Units: d.Units}); len(pick.Runners) > 0 {
				best = pick.Runners[0]
			}
		}
		d.Fallbacks = append(d.Fallbacks, best)
	}
	return d, nil
}
