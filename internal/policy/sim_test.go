package policy_test

import (
	"container/heap"
	"fmt"
	"math/rand"
	randv2 "math/rand/v2"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/bench/workload"
	"github.com/switchyard/switchyard/internal/affinity"
	"github.com/switchyard/switchyard/internal/config"
	"github.com/switchyard/switchyard/internal/policy"
	"github.com/switchyard/switchyard/internal/runner"
)

// simOptions shape a discrete-event simulation of one pool of GPU runners
// running the routing-quality workload in virtual time: runners with a
// few model slots (LRU) serving max_concurrency requests at a time in
// arrival order, and clients that give up after the shape's Timeout.
//
// The simulation drives the policy Engine through the API the ext_proc
// server uses (Decide, Dispatch, Flight.Respond, Flight.End), so what it
// measures is the shipped rules: which runner is picked, what is learnt
// from each response, and when a request stops counting on its runner.
type simOptions struct {
	workload.Shape
	Utilisation float64 // arrival rate over capacity (every request a hit)
	Jitter      float64 // each service time is scaled by a uniform factor in [1-Jitter, 1+Jitter]
	// Cost gives the route workload.CostExpr: the policy prices each
	// request by its size (with Mixed).
	Cost bool
}

func (o simOptions) withDefaults() simOptions {
	if o.Pools == 0 {
		o.Pools = 1
	}
	o.Shape.Defaults()
	if o.Duration == 0 {
		o.Duration = 60 * time.Second
	}
	return o
}

type simResult struct {
	Outcomes                   map[affinity.Outcome]int
	Requests, OK, Hits, Misses int
	P50, P99                   time.Duration
}

func (r simResult) HitRate() float64 { return float64(r.Hits) / float64(max(r.Hits+r.Misses, 1)) }

func (r simResult) String() string {
	return fmt.Sprintf("hit %.1f%% ok %d/%d p50 %v p99 %v %v", 100*r.HitRate(), r.OK, r.Requests, r.P50, r.P99, r.Outcomes)
}

type simReq struct {
	model    string
	scale    float64
	arrived  time.Duration
	flight   *policy.Flight
	runner   *simRunner
	started  bool
	finished bool
}

type simRunner struct {
	r       *runner.Runner
	lru     []string // least recent first
	queue   []*simReq
	running int
}

type simEvent struct {
	at  time.Duration
	seq int
	fn  func()
}

type simEvents []simEvent

func (h simEvents) Len() int { return len(h) }
func (h simEvents) Less(i, j int) bool {
	if h[i].at != h[j].at {
		return h[i].at < h[j].at
	}
	return h[i].seq < h[j].seq
}
func (h simEvents) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *simEvents) Push(x any)   { *h = append(*h, x.(simEvent)) }
func (h *simEvents) Pop() any {
	old := *h
	e := old[len(old)-1]
	*h = old[:len(old)-1]
	return e
}

// simPool is the pool's runners, as the registry would give them.
type simPool []*runner.Runner

func (p simPool) Active(string) []*runner.Runner { return p }

func (p simPool) Runner(_, addr string) (*runner.Runner, bool) {
	for _, r := range p {
		if r.Address == addr {
			return r, true
		}
	}
	return nil, false
}

// simConfig is one pool p of runners that take maxConcurrency requests at
// a time, and one route to it, under hint policy hp, with a cost
// expression when cost.
func simConfig(hp config.HintPolicy, maxConcurrency int, cost bool) (*config.Config, *config.Route) {
	costLine := ""
	if cost {
		costLine = ", cost: '" + workload.CostExpr + "'"
	}
	cfg, err := config.Parse("sim.yaml", []byte(fmt.Sprintf(`
listeners: [{name: l, address: 127.0.0.1, port: 10000}]
hints: {policy: %s}
pools: [{name: p, max_concurrency: %d}]
routes: [{name: r, match: {prefix: /}%s, rules: [{pool: p}]}]
`, hp, maxConcurrency, costLine)))
	if err != nil {
		panic(err)
	}
	route, _ := cfg.Route("r")
	return cfg, route
}

// simulate runs the workload through a policy Engine under hint policy hp.
func simulate(o simOptions, hp config.HintPolicy) simResult {
	o = o.withDefaults()
	var now time.Duration
	epoch := time.Unix(0, 0)
	clock := func() time.Time { return epoch.Add(now) }
	idx := affinity.NewIndex(affinity.IndexOptions{})
	cfg, route := simConfig(hp, o.MaxConcurrency, o.Cost)
	runners := make([]*simRunner, o.RunnersPerPool)
	active := make(simPool, o.RunnersPerPool)
	for i := range runners {
		runners[i] = &simRunner{r: &runner.Runner{Pool: "p", Address: fmt.Sprintf("10.0.0.1:%d", 9000+i)}}
		active[i] = runners[i].r
	}
	engine := policy.New(policy.Options{
		Runners: active,
		Hints:   idx,
		Now:     clock,
		Pickers: map[config.HintPolicy]policy.Picker{
			hp: affinity.NewPicker(affinity.PickerOptions{Index: idx, Mode: affinity.Mode(hp), Rand: randv2.NewPCG(uint64(o.Seed), 1), Now: clock}),
		},
	})

	var events simEvents
	seq := 0
	at := func(t time.Duration, fn func()) {
		seq++
		heap.Push(&events, simEvent{at: t, seq: seq, fn: fn})
	}
	byAddr := func(addr string) *simRunner {
		for _, r := range runners {
			if r.r.Address == addr {
				return r
			}
		}
		panic(addr)
	}
	res := simResult{Outcomes: map[affinity.Outcome]int{}}
	var lat []time.Duration
	var start func(sr *simRunner)
	var jitter func(time.Duration) time.Duration
	finish := func(q *simReq, ok bool) {
		if q.finished {
			return
		}
		q.finished = true
		if ok {
			res.OK++
			lat = append(lat, now-q.arrived)
			q.runner.running--
			// The runner answers with a length and its hints, as the
			// simulated runner does through Envoy.
			q.flight.Respond(policy.Response{Runner: q.runner.r.Address, Status: 200,
				Hints: strings.Join(q.runner.lru, ","), HintsReported: true, Final: true})
			start(q.runner)
		} else {
			// The stream ends without a response: the client gave up.
			q.flight.End()
			lat = append(lat, o.Timeout())
		}
	}
	start = func(sr *simRunner) {
		for sr.running < o.MaxConcurrency && len(sr.queue) > 0 {
			q := sr.queue[0]
			sr.queue = sr.queue[1:]
			if q.finished {
				continue
			}
			q.started = true
			sr.running++
			d := time.Duration(float64(o.InferTime) * q.scale)
			if i := slices.Index(sr.lru, q.model); i >= 0 {
				d = jitter(d)
				res.Hits++
				sr.lru = append(slices.Delete(sr.lru, i, i+1), q.model)
			} else {
				res.Misses++
				d = jitter(d + o.LoadTime)
				if len(sr.lru) == o.Slots {
					sr.lru = sr.lru[1:]
				}
				sr.lru = append(sr.lru, q.model)
			}
			if now+d > q.arrived+o.Timeout() {
				// The client gives up first; the runner stops the request.
				at(q.arrived+o.Timeout(), func() {
					sr.running--
					finish(q, false)
					start(sr)
				})
				continue
			}
			at(now+d, func() { finish(q, true) })
		}
	}

	noise := rand.New(rand.NewSource(o.Seed + 1))
	jitter = func(d time.Duration) time.Duration {
		if o.Jitter == 0 {
			return d
		}
		return time.Duration(float64(d) * (1 - o.Jitter + 2*o.Jitter*noise.Float64()))
	}
	for _, r := range o.Sequence(o.Utilisation * o.Capacity()) {
		model, req := r.Model, r
		at(r.At, func() {
			res.Requests++
			body := map[string]any{"width": float64(req.Size), "height": float64(req.Size), "num_inference_steps": float64(req.Steps)}
			d, err := engine.Decide(cfg, route, policy.Request{Method: "POST", Path: "/", Headers: map[string]string{"x-fal-runner-hint": model}, Body: body})
			if err != nil {
				panic(err)
			}
			res.Outcomes[d.Outcome]++
			q := &simReq{model: model, scale: req.Scale(), arrived: now}
			q.flight = engine.Dispatch(cfg, d)
			q.runner = byAddr(d.Runners[0].Address)
			q.runner.queue = append(q.runner.queue, q)
			at(now+o.Timeout(), func() {
				if !q.started {
					finish(q, false)
				}
			})
			start(q.runner)
		})
	}
	for events.Len() > 0 {
		e := heap.Pop(&events).(simEvent)
		now = e.at
		e.fn()
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	res.P50, res.P99 = lat[len(lat)/2], lat[len(lat)*99/100]
	return res
}

// TestSimulatePolicies runs the routing-quality workload in virtual time
// (seconds for what the real benchmark takes minutes) and holds ModeSoonest
// to what it reaches there: near the ceiling at 80 % and 95 % of capacity,
// where fal's rule thrashes. Four seeds each; the virtual clock makes the
// outcome independent of the machine's speed.
func TestSimulatePolicies(t *testing.T) {
	for _, u := range []float64{0.5, 0.8, 0.95} {
		hit := map[config.HintPolicy]float64{}
		ok := map[config.HintPolicy]float64{}
		for _, m := range []config.HintPolicy{config.HintFal, config.HintLoadingMarks, config.HintSoonest} {
			for seed := int64(1); seed <= 4; seed++ {
				r := simulate(simOptions{Shape: workload.Shape{Seed: seed}, Utilisation: u}, m)
				t.Logf("%3.0f%% %-10s seed %d: %v", 100*u, m, seed, r)
				hit[m] += r.HitRate() / 4
				ok[m] += float64(r.OK) / float64(r.Requests) / 4
			}
		}
		if hit[config.HintSoonest] < 0.97 || ok[config.HintSoonest] < 0.97 {
			t.Errorf("soonest at %.0f%% load: hit rate %.1f%%, %.1f%% answered; want both at least 97%%",
				100*u, 100*hit[config.HintSoonest], 100*ok[config.HintSoonest])
		}
		for _, m := range []config.HintPolicy{config.HintFal, config.HintLoadingMarks} {
			if hit[m] >= hit[config.HintSoonest] {
				t.Errorf("at %.0f%% load %s's hit rate %.1f%% is not below soonest's %.1f%%", 100*u, m, 100*hit[m], 100*hit[config.HintSoonest])
			}
		}
	}
}

// Service times are never exact: with each one scaled by up to ±50 %, the
// backlog estimates are off, and soonest still keeps the model warm and
// answers nearly every request at 95 % load.
func TestSimulateJitter(t *testing.T) {
	var hit, ok float64
	for seed := int64(1); seed <= 4; seed++ {
		r := simulate(simOptions{Shape: workload.Shape{Seed: seed}, Utilisation: 0.95, Jitter: 0.5}, config.HintSoonest)
		t.Logf("seed %d: %v", seed, r)
		hit += r.HitRate() / 4
		ok += float64(r.OK) / float64(r.Requests) / 4
	}
	if hit < 0.97 || ok < 0.97 {
		t.Errorf("soonest at 95%% load, service times ±50%%: hit rate %.1f%%, %.1f%% answered; want both at least 97%%", 100*hit, 100*ok)
	}
}

// With image sizes and steps spread as in real traffic (a 200-fold spread
// of service times), soonest pricing each request at its pool's average
// misjudges the queues behind large requests; with the route's cost
// expression it prices each by its size, and weighs an eviction by the
// model it evicts. Held to, over 16 sequences (the simulation is
// deterministic, so these are its numbers, not a lucky run; one sequence's
// p99 moves by hundreds of milliseconds with small changes to the policy,
// so four sequences were not enough to rank two policies): with cost, at
// 80 % load the p99 at least 25 % lower (the benchmark's target; 2,229 →
// 1,446 ms when written), the hit rate no lower, the models kept warm and
// nearly everyone answered; at 95 % load a lower p99 and a hit rate no more
// than half a point lower.
func TestSimulateMixedCost(t *testing.T) {
	const seeds = 16
	for _, u := range []float64{0.8, 0.95} {
		var p99 [2]time.Duration
		var hit, ok [2]float64
		for i, cost := range []bool{false, true} {
			for seed := int64(1); seed <= seeds; seed++ {
				r := simulate(simOptions{Shape: workload.Shape{Seed: seed, Mixed: true}, Utilisation: u, Cost: cost}, config.HintSoonest)
				t.Logf("%3.0f%% cost %-5v seed %2d: %v", 100*u, cost, seed, r)
				p99[i] += r.P99 / seeds
				hit[i] += r.HitRate() / seeds
				ok[i] += float64(r.OK) / float64(r.Requests) / seeds
			}
		}
		lower := 1 - float64(p99[1])/float64(p99[0])
		switch {
		case u == 0.8 && (hit[1] < 0.97 || ok[1] < 0.97):
			t.Errorf("with cost at 80%% load: hit rate %.1f%%, %.1f%% answered; want both at least 97%%", 100*hit[1], 100*ok[1])
		case u == 0.8 && (lower < 0.25 || hit[1] < hit[0]):
			t.Errorf("at 80%% load with cost: p99 %v (without %v, %.0f%% lower), hit rate %.2f%% (without %.2f%%); want at least 25%% lower and no fewer hits",
				p99[1], p99[0], 100*lower, 100*hit[1], 100*hit[0])
		case p99[1] >= p99[0] || hit[1] < hit[0]-0.005:
			t.Errorf("at %.0f%% load with cost: p99 %v (without %v), hit rate %.2f%% (without %.2f%%); want a lower p99 and the hit rate within half a point",
				100*u, p99[1], p99[0], 100*hit[1], 100*hit[0])
		}
		t.Logf("%3.0f%%: p99 %v without cost, %v with (%.0f%% lower); hit rate %.1f%% → %.1f%%",
			100*u, p99[0], p99[1], 100*lower, 100*hit[0], 100*hit[1])
	}
}

// The simulation is deterministic: its seeds alone decide its numbers
// (ties go by runner and hint names, not by a process's random hash seed),
// so what the tests above hold it to is the same in every run.
func TestSimulateDeterministic(t *testing.T) {
	for _, cost := range []bool{false, true} {
		o := simOptions{Shape: workload.Shape{Seed: 2, Mixed: true}, Utilisation: 0.8, Cost: cost}
		a, b := simulate(o, config.HintSoonest), simulate(o, config.HintSoonest)
		if !reflect.DeepEqual(a, b) {
			t.Errorf("cost %v: two runs of one simulation differ:\n%v\n%v", cost, a, b)
		}
	}
}
