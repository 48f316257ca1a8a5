package affinity

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/switchyard/switchyard/internal/contract"
	"github.com/switchyard/switchyard/internal/runner"
)

// Mode selects the routing rule.
type Mode string

const (
	// ModeLoadingMarks is fal's rule plus loading marks: the runner a miss
	// or a busy hint is sent to is marked as loading the hint, so the
	// requests that follow for it go there (while it is not busy) instead
	// of each cold-loading the model on another runner.
	ModeLoadingMarks Mode = "loading_marks"
	// ModeFal is fal's rule as documented: hints are only what runners
	// report after their responses.
	ModeFal Mode = "fal"
	// ModeSoonest sends a hinted request to the runner expected to finish
	// it first, from the jobs (Begin) the Picker has sent each runner:
	// waiting for a busy warm runner when that is quicker than a model load
	// elsewhere (see PickCost).
	ModeSoonest Mode = "soonest"
)

// ParseMode validates a mode name. There is no default here: the default
// hint policy is the config's (config.DefaultHintPolicy).
func ParseMode(s string) (Mode, error) {
	switch m := Mode(s); m {
	case ModeLoadingMarks, ModeFal, ModeSoonest:
		return m, nil
	}
	return "", fmt.Errorf("unknown hint mode %q: want %q, %q or %q", s, ModeSoonest, ModeFal, ModeLoadingMarks)
}

// Outcome says how a request's hint was served. Its values are sent to
// clients in the x-switchyard-hint header.
type Outcome string

const (
	OutcomeHit  Outcome = "hit"  // a non-busy runner holding the hint was chosen
	OutcomeMiss Outcome = "miss" // no runner holds the hint
	OutcomeBusy Outcome = "busy" // runners hold the hint but all of them are busy
	OutcomeNone Outcome = "none" // the request has no (valid) hint
)

// MaxAlternatives is how many retry alternatives follow the primary runner:
// as many as Envoy's route retries (contract.RunnerAlternatives).
const MaxAlternatives = contract.RunnerAlternatives

// Request is what a pick knows of one request and of its pool.
type Request struct {
	// Hint is the request's hint, "" for none; one that fails ValidHint
	// counts as none.
	Hint string
	// MaxConcurrency is the pool's: a runner with this many requests in
	// flight is busy (values below 1 count as 1). Begin does not read it.
	MaxConcurrency int
	// Cost is the pool's learnt request cost, zero until measured. Pick
	// does not read it.
	Cost Cost
	// Units is the request's size from its route's cost expression (Cost
	// is then priced for that size); 0 for none. Only soonest reads it:
	// see evictPrice.
	Units float64
}

// Pick is the choice for one request.
type Pick struct {
	// Runners is ordered: the primary first, then up to MaxAlternatives
	// alternatives for retries. It is empty only when there are no runners.
	Runners []*runner.Runner
	Outcome Outcome
	// Queued says the primary holds the hint but is busy: the request waits
	// for it because that is expected to be quicker than a model load.
	Queued bool
	// Reasons say why Runners[0] and Runners[1] (where present) ranked
	// first and second, for the decision record.
	Reasons [2]Reason
}

// Reason is what a pick knew of a ranked runner.
type Reason struct {
	InFlight int64
	// Warm says the runner holds the hint (reported, marked loading, or,
	// for soonest, a request for it is on the runner).
	Warm bool
	// Busy says its in-flight count was at the pool's max_concurrency.
	Busy bool
	// Wait is the work ahead of the request on the runner and Finish the
	// expected time to the request's response (soonest only).
	Wait, Finish time.Duration
	// Evicts says a model load there would evict another model (soonest).
	Evicts bool
}

// PickerOptions configure a Picker.
type PickerOptions struct {
	// Index holds the runners' hints; a new default Index when nil.
	Index *Index
	// Mode is required: any other value than the Mode constants panics
	// (validate user input with ParseMode).
	Mode Mode
	// Rand breaks ties between equally good runners, so that load spreads.
	// When nil, the runtime's generator is used. A Source is not safe for
	// concurrent use, so an injected one is called under a mutex (one call
	// per Pick); tests inject a seeded one to get deterministic picks.
	Rand rand.Source
	// Now is ModeSoonest's clock, time.Now when nil.
	Now func() time.Time
}

// Picker chooses runners for requests. It is safe for concurrent use.
type Picker struct {
	idx     *Index
	mode    Mode
	backlog *backlog // ModeSoonest only

	randMu sync.Mutex
	rand   rand.Source
}

// NewPicker returns a Picker configured by o.
func NewPicker(o PickerOptions) *Picker {
	mode, err := ParseMode(string(o.Mode))
	if err != nil {
		panic("affinity: " + err.Error())
	}
	if o.Index == nil {
		o.Index = NewIndex(IndexOptions{})
	}
	p := &Picker{idx: o.Index, mode: mode, rand: o.Rand}
	if mode == ModeSoonest {
		if o.Now == nil {
			o.Now = time.Now
		}
		p.backlog = newBacklog(o.Now)
	}
	return p
}

// Index returns the Index the Picker reads.
func (p *Picker) Index() *Index { return p.idx }

// Mode returns the Picker's mode.
func (p *Picker) Mode() Mode { return p.mode }

// Pick ranks runners (a pool's active runners) for request q and returns
// the best ones, never waiting: a runner is busy when its in-flight count is
// at least q.MaxConcurrency.
//
// The ranking, best first:
//
//  1. With a hint, non-busy runners holding it (outcome hit), least
//     in-flight first.
//  2. Other non-busy runners. With a hint (outcome busy if a busy runner
//     holds it, else miss), those with the fewest hints first, so a runner
//     with room to load the model is used before one whose warm models it
//     would evict, then least in-flight. Without a hint (outcome none),
//     least in-flight.
//  3. Busy runners, only when every runner is busy: Pick over-commits
//     rather than waits. Least in-flight first, then one holding the hint,
//     then fewest hints.
//
// Remaining ties are broken at random, afresh on each call. The alternatives
// are the next runners in this ranking from the same side of the busy line
// as the primary, so retries never pile onto a busy runner while a free one
// is listed. A hint that fails ValidHint counts as no hint.
//
// Pick does not count the request in flight: the caller calls Acquire on the
// runner it dispatches to (and Release when the response ends). In
// ModeLoadingMarks a miss or busy outcome marks the primary as loading the
// hint (Index.MarkLoading).
//
// Pick is O(len(runners)) with a constant-size working set; it allocates
// only the result slice (and, on a marked miss, the Index's update).
func (p *Picker) Pick(runners []*runner.Runner, q Request) Pick {
	q.Cost = Cost{}
	return p.pick(runners, q, false)
}

// PickCost is Pick with the pool's request costs (zero until measured). In
// ModeSoonest a hinted request goes to the runner expected to finish it
// first (see soonest), which may be a busy warm runner (Pick.Queued,
// outcome hit); the other modes never wait, so under load every request
// that finds the warm runners busy becomes a cold load.
func (p *Picker) PickCost(runners []*runner.Runner, q Request) Pick {
	return p.pick(runners, q, true)
}

func (p *Picker) pick(runners []*runner.Runner, q Request, mayWait bool) Pick {
	hint := q.Hint
	if hint != "" && !ValidHint(hint) {
		hint = ""
	}
	limit := int64(max(q.MaxConcurrency, 1))
	var key hintKey
	if hint != "" {
		key = p.idx.key(hint)
	}
	if mayWait && p.mode == ModeSoonest && hint != "" {
		return p.soonest(runners, limit, key, q.Cost, q.Units > 0)
	}
	seed := p.seed()

	var top topK
	holders, freeHolders := 0, 0
	queueOn, queueLoad := -1, int64(0) // the least loaded busy holder
	for i, r := range runners {
		load := r.InFlight()
		busy := load >= limit
		c := cand{i: i, load: load, busy: busy, tie: splitmix(seed + uint64(i)*0x9e3779b97f4a7c15)}
		switch {
		case hint == "" && !busy:
			c.tier, c.k1 = tierFree, load
		case hint == "":
			c.tier, c.k1 = tierBusy, load
		default:
			has, n := p.idx.lookup(r.Address, key)
			c.warm = has
			switch {
			case has && !busy:
				holders++
				freeHolders++
				c.tier, c.k1 = tierHolder, load
			case !busy:
				c.tier, c.k1, c.k2 = tierFree, int64(n), load
			default:
				if has {
					holders++
					if queueOn < 0 || load < queueLoad {
						queueOn, queueLoad = i, load
					}
				}
				c.tier, c.k1, c.k2, c.k3 = tierBusy, load, int64(b2i(!has)), int64(n)
			}
		}
		top.add(c)
	}

	outcome := OutcomeNone
	switch {
	case hint == "":
	case freeHolders > 0:
		outcome = OutcomeHit
	case holders > 0:
		outcome = OutcomeBusy
	default:
		outcome = OutcomeMiss
	}
	if top.n == 0 {
		return Pick{Outcome: outcome}
	}
	n := top.n
	if top.c[0].tier != tierBusy {
		for n > 1 && top.c[n-1].tier == tierBusy {
			n--
		}
	}
	out := make([]*runner.Runner, n)
	for j := range out {
		out[j] = runners[top.c[j].i]
	}
	pick := Pick{Runners: out, Outcome: outcome}
	for j := range min(n, len(pick.Reasons)) {
		c := &top.c[j]
		pick.Reasons[j] = Reason{InFlight: c.load, Warm: c.warm, Busy: c.busy}
	}
	if p.mode == ModeLoadingMarks && (outcome == OutcomeMiss || outcome == OutcomeBusy) {
		p.idx.MarkLoading(out[0].Address, hint)
	}
	return pick
}

// soonest is ModeSoonest's pick for a hinted request: the runner expected
// to finish it first. A runner's expected finish is its wait (the work left
// of the jobs switchyard sent it, beyond its free slots: see
// runnerBacklog.wait) plus the request's own cost: cost.Hit where the model
// is warm (reported by the runner, or a job for it is on the runner) and
// cost.Miss elsewhere, plus half a load where the load would evict a model
// from a runner as full as any in the pool. So a free warm runner wins, a
// busy warm runner wins while its queue is shorter than a load, and a copy
// of the model is loaded elsewhere once waiting would take longer. Ties go
// by a hash of hint and runner, not at random: a model that has to be
// loaded lands where it was before, as with consistent hashing, instead of
// spreading copies over the pool. That hash is of the names alone (not the
// Index's seeded one), so every process and every replica of a cluster
// breaks the same ties the same way.
//
// A sized request (sized: its route has a cost expression, and cost is
// priced for its size) weighs an eviction by the model it would evict
// (evictPrice) instead of at the full price.
func (p *Picker) soonest(runners []*runner.Runner, limit int64, key hintKey, cost Cost, sized bool) Pick {
	c := estimate(cost)
	hintTie := fnv64(key.name)
	type scored struct {
		i    int
		t    time.Duration // the score: finish, plus an eviction's price
		wait time.Duration
		// finish is the expected time to the request's response.
		finish time.Duration
		holds  bool
		full   bool
		hints  int
		tie    uint64
	}
	var top [1 + MaxAlternatives]scored
	n := 0
	holders := 0
	b := p.backlog
	now := b.now()
	b.mu.Lock()
	// Runners of a pool are alike: the most hints any of them has
	// reported is each one's number of model slots.
	slots := 0
	for _, r := range runners {
		rb := b.get(r.Address)
		if v := p.idx.view(r.Address); v != nil {
			slots = max(slots, len(v.ents))
			if rb != nil {
				rb.slots = max(rb.slots, len(v.ents))
			}
		}
		if rb != nil {
			slots = max(slots, rb.slots)
		}
	}
	less := func(a, b *scored) bool {
		switch {
		case a.t != b.t:
			return a.t < b.t
		case a.holds != b.holds:
			return a.holds
		case a.hints != b.hints:
			return a.hints < b.hints
		}
		return a.tie < b.tie
	}
	for i, r := range runners {
		rb := b.get(r.Address)
		v := p.idx.view(r.Address)
		nh := 0
		if v != nil {
			nh = len(v.ents)
		}
		has, full := rb.predict(v, key, slots)
		if has {
			holders++
		}
		s := scored{i: i, hints: nh, holds: has, tie: splitmix(hintTie ^ fnv64(r.Address))}
		s.wait = rb.wait(now, int(limit))
		if has {
			s.finish = s.wait + c.Hit
		} else {
			s.finish = s.wait + c.Miss
		}
		s.t = s.finish
		if !has && full {
			// Not time: the price of the model the load would evict.
			s.full = true
			price := evictLoads * c.Load()
			if sized && (n < len(top) || less(&s, &top[n-1])) {
				// (Only for a runner that could rank: the price
				// never lowers a score below its finish.)
				price = p.evictPrice(runners, i, v, rb, slots, c, now)
			}
			s.t += price
		}
		j := n
		if j == len(top) {
			if !less(&s, &top[j-1]) {
				continue
			}
			j--
		} else {
			n++
		}
		for j > 0 && less(&s, &top[j-1]) {
			top[j] = top[j-1]
			j--
		}
		top[j] = s
	}
	b.mu.Unlock()
	if n == 0 {
		return Pick{Outcome: OutcomeMiss}
	}
	out := make([]*runner.Runner, n)
	for j := range out {
		out[j] = runners[top[j].i]
	}
	pick := Pick{Runners: out}
	for j := range min(n, len(pick.Reasons)) {
		s := &top[j]
		load := out[j].InFlight()
		pick.Reasons[j] = Reason{InFlight: load, Warm: s.holds, Busy: load >= limit, Wait: s.wait, Finish: s.finish, Evicts: s.full}
	}
	switch {
	case top[0].holds:
		pick.Outcome = OutcomeHit
		pick.Queued = out[0].InFlight() >= limit
	case holders > 0:
		pick.Outcome = OutcomeBusy
	default:
		pick.Outcome = OutcomeMiss
	}
	return pick
}

// evictPrice is what a model load on runners[i] (its view v and backlog
// rb) that evicts a model is taken to cost beyond the load itself, for a
// sized request: evictLoads loads (what every eviction is priced at
// without sizes) times the chance that the evicted model is asked for
// within evictLoads loads' time, from its recent request rate (demand),
// halved when another of the runners holds it or has a request for it on
// the way. So a model nobody asked for lately is evicted nearly for free,
// and a popular one at the full price. With the queues priced by size the
// waits are known well enough to trade against such cheaper loads:
// without sizes one large request more or less in a queue is a model
// load's worth of error, which the full price covers. It runs with
// p.backlog.mu held.
func (p *Picker) evictPrice(runners []*runner.Runner, i int, v *view, rb *runnerBacklog, slots int, c Cost, now time.Time) time.Duration {
	full := evictLoads * c.Load()
	k, ok := rb.victim(v, slots)
	if !ok {
		return full
	}
	d, _ := p.backlog.demand.Peek(k.name)
	chance := 1 - math.Exp(-d.rate(now, p.backlog.demandSince)*evictLoads*c.Load().Seconds())
	for j, r := range runners {
		if j == i {
			continue
		}
		if ov := p.idx.view(r.Address); (ov != nil && ov.has(k)) || p.backlog.get(r.Address).pending(k) {
			chance /= 2
			break
		}
	}
	return time.Duration(chance * float64(full))
}

// fnv64 is FNV-1a of s: a hash of a runner address or a hint that is the
// same in every process.
func fnv64(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}

func (p *Picker) seed() uint64 {
	if p.rand == nil {
		return rand.Uint64()
	}
	p.randMu.Lock()
	defer p.randMu.Unlock()
	return p.rand.Uint64()
}

// Tiers of the ranking, best first.
const (
	tierHolder uint8 = iota // non-busy, holds the hint
	tierFree                // non-busy
	tierBusy                // busy
)

// cand is a runner's rank: compared by tier, then k1, k2, k3, then tie.
type cand struct {
	i          int
	load       int64
	warm, busy bool
	tier       uint8
	k1, k2, k3 int64
	tie        uint64
}

func (a *cand) less(b *cand) bool {
	switch {
	case a.tier != b.tier:
		return a.tier < b.tier
	case a.k1 != b.k1:
		return a.k1 < b.k1
	case a.k2 != b.k2:
		return a.k2 < b.k2
	case a.k3 != b.k3:
		return a.k3 < b.k3
	}
	return a.tie < b.tie
}

// topK keeps the best 1+MaxAlternatives candidates seen, sorted.
type topK struct {
	c [1 + MaxAlternatives]cand
	n int
}

func (t *topK) add(c cand) {
	j := t.n
	if j == len(t.c) {
		if !c.less(&t.c[j-1]) {
			return
		}
		j--
	} else {
		t.n++
	}
	for j > 0 && c.less(&t.c[j-1]) {
		t.c[j] = t.c[j-1]
		j--
	}
	t.c[j] = c
}

// splitmix is SplitMix64's output function: seed+i·γ for consecutive i
// gives each runner an independent-looking random tie-break key from one
// random draw per Pick.
func splitmix(z uint64) uint64 {
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}
