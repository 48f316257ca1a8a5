package policy

import (
	"errors"
	"math"
	"math/rand/v2"
	"strconv"

	"github.com/cespare/xxhash/v2"
	"github.com/google/cel-go/common/types"

	"github.com/switchyard/switchyard/internal/affinity"
	"github.com/switchyard/switchyard/internal/config"
	"github.com/switchyard/switchyard/internal/registry"
)

// ErrInvalidBody is returned for a route with on_invalid_body: reject when
// its rules need the body and the body is not a JSON object.
var ErrInvalidBody = errors.New("request body is not a JSON object")

// Runners gives the active runners of a pool.
type Runners interface {
	Active(pool string) []*registry.Runner
}

// Picker orders a pool's runners for a request with a hint, and counts the
// request on the runner it is dispatched to (Begin) until it ends.
type Picker interface {
	PickCost(runners []*registry.Runner, maxConcurrency int, hint string, cost affinity.Cost) affinity.Pick
	Begin(pick affinity.Pick, hint string, cost affinity.Cost) *affinity.Job
}

// CostSource gives a pool's learnt request costs.
type CostSource interface {
	Get(pool string) affinity.Cost
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

// Decision is where a request goes.
type Decision struct {
	Route   string
	Target  config.Target // pool and fallbacks; Target.Name() is the routing header
	Variant string        // the split variant chosen, "" without a split
	Hint    string        // "" without a (valid) hint
	Outcome affinity.Outcome
	// Queued says the primary was busy when chosen (it holds the model and
	// is expected to free up before a load elsewhere would finish).
	Queued bool
	// Runners are the chosen pool's runners for this request, best first.
	Runners []*registry.Runner
	// Fallbacks holds one runner per fallback pool, in order; nil for a
	// pool with no active runner.
	Fallbacks []*registry.Runner

	begin func() *affinity.Job
}

// Begin dispatches the request to Runners[0]: it is counted in flight there
// (and in its picker's view of the runner's work) until the returned Job is
// Done. It returns nil when there is no runner to dispatch to.
func (d *Decision) Begin() *affinity.Job {
	if d.begin == nil {
		return nil
	}
	return d.begin()
}

// Engine makes decisions; it is safe for concurrent use.
type Engine struct {
	runners Runners
	pickers map[string]Picker // by hint policy
	costs   CostSource
}

// Options configure an Engine.
type Options struct {
	Runners Runners
	// Pickers by hint policy (config.PolicyFal, config.PolicySoonest, ...).
	Pickers map[string]Picker
	// Costs, when set, lets a picker weigh waiting for a warm runner
	// against a model load.
	Costs CostSource
}

func New(o Options) *Engine {
	return &Engine{runners: o.Runners, pickers: o.Pickers, costs: o.Costs}
}

// Decide picks the target and runners for req on route.
func (e *Engine) Decide(cfg *config.Config, route *config.Route, req Request) (Decision, error) {
	if req.BodyErr != nil && route.OnInvalidBody == config.InvalidBodyReject && route.NeedsBody() {
		return Decision{}, ErrInvalidBody
	}
	act := activation(req)
	d := Decision{Route: route.Name}
	rule := route.Rules[len(route.Rules)-1]
	for _, r := range route.Rules {
		if r.When == nil || evalBool(r.When, act) {
			rule = r
			break
		}
	}
	pool := rule.Pool
	if rule.Split != nil {
		pool = e.variant(rule.Split, act)
		d.Variant = pool
	}
	d.Target = rule.Target(pool)
	d.Hint = hint(cfg, route, req, act)

	picker := e.pickers[cfg.Hints.Policy]
	// Envoy's own balancers pick for pools that use them.
	if p, ok := cfg.Pool(pool); ok && p.LoadBalancer.Policy == config.LBSwitchyard {
		cost := e.cost(pool)
		pick := picker.PickCost(e.runners.Active(pool), p.MaxConcurrency, d.Hint, cost)
		d.Runners, d.Outcome, d.Queued = pick.Runners, pick.Outcome, pick.Queued
		if len(pick.Runners) > 0 {
			hint := d.Hint
			d.begin = func() *affinity.Job { return picker.Begin(pick, hint, cost) }
		}
	}
	if d.Hint == "" {
		d.Outcome = affinity.OutcomeNone
	}
	for _, f := range rule.Fallback {
		var best *registry.Runner
		if p, ok := cfg.Pool(f); ok && p.LoadBalancer.Policy == config.LBSwitchyard {
			if pick := picker.PickCost(e.runners.Active(f), p.MaxConcurrency, d.Hint, e.cost(f)); len(pick.Runners) > 0 {
				best = pick.Runners[0]
			}
		}
		d.Fallbacks = append(d.Fallbacks, best)
	}
	return d, nil
}

func (e *Engine) cost(pool string) affinity.Cost {
	if e.costs == nil {
		return affinity.Cost{}
	}
	return e.costs.Get(pool)
}

// activation is what expressions see. A body that was not read, or is not
// JSON, is an empty object: rules over its fields do not match.
func activation(req Request) map[string]any {
	body := req.Body
	if body == nil {
		body = map[string]any{}
	}
	headers := req.Headers
	if headers == nil {
		headers = map[string]string{}
	}
	return map[string]any{
		config.VarBody:    body,
		config.VarHeaders: headers,
		config.VarPath:    req.Path,
		config.VarMethod:  req.Method,
	}
}

// evalBool is false when the expression cannot be evaluated (a missing
// field, a wrong type): such a rule does not match.
func evalBool(e *config.Expr, act map[string]any) bool {
	v, _, err := e.Program.Eval(act)
	if err != nil {
		return false
	}
	b, ok := v.(types.Bool)
	return ok && bool(b)
}

// evalString is the expression's result when it is a string.
func evalString(e *config.Expr, act map[string]any) (string, bool) {
	v, _, err := e.Program.Eval(act)
	if err != nil {
		return "", false
	}
	s, ok := v.(types.String)
	return string(s), ok
}

// evalKey renders a string or integer result; ok is false otherwise.
func evalKey(e *config.Expr, act map[string]any) (string, bool) {
	v, _, err := e.Program.Eval(act)
	if err != nil {
		return "", false
	}
	switch x := v.(type) {
	case types.String:
		return string(x), true
	case types.Int:
		return strconv.FormatInt(int64(x), 10), true
	case types.Uint:
		return strconv.FormatUint(uint64(x), 10), true
	}
	return "", false
}

// hint is the first configured hint header present, else the route's
// hint_from. Invalid values are ignored.
func hint(cfg *config.Config, route *config.Route, req Request, act map[string]any) string {
	for _, name := range cfg.Hints.RequestHeaders {
		if v, ok := req.Headers[name]; ok {
			if affinity.ValidHint(v) {
				return v
			}
			return ""
		}
	}
	if route.HintFrom != nil {
		if v, ok := evalString(route.HintFrom, act); ok && affinity.ValidHint(v) {
			return v
		}
	}
	return ""
}

// variant picks a split's pool: by weighted rendezvous hashing of the
// sticky key when there is one (a key keeps its variant while the weights
// stay, and a weight change moves only the keys it must), else at random.
func (e *Engine) variant(s *config.Split, act map[string]any) string {
	if s.StickyKey != nil {
		if key, ok := evalKey(s.StickyKey, act); ok {
			return rendezvous(s.Variants, key)
		}
	}
	total := 0
	for _, v := range s.Variants {
		total += v.Weight
	}
	n := rand.IntN(total)
	for _, v := range s.Variants {
		if n < v.Weight {
			return v.Pool
		}
		n -= v.Weight
	}
	return s.Variants[len(s.Variants)-1].Pool
}

// rendezvous gives each variant the score weight / -ln(u), u uniform in
// (0, 1) from a hash of key and variant; the highest score wins, which
// picks each variant with probability proportional to its weight.
func rendezvous(vs []config.Variant, key string) string {
	best, bestScore := "", -1.0
	for _, v := range vs {
		// A fixed hash (not a per-process seed): a key keeps its variant
		// across restarts and across edges.
		h := xxhash.New()
		h.WriteString(key)
		h.Write([]byte{0})
		h.WriteString(v.Pool)
		u := (float64(h.Sum64()>>11) + 0.5) / (1 << 53)
		score := float64(v.Weight) / -math.Log(u)
		if score > bestScore {
			best, bestScore = v.Pool, score
		}
	}
	return best
}
