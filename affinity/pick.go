package affinity

import (
	"fmt"
	"math/rand/v2"
	"sync"

	"github.com/switchyard/switchyard/registry"
)

// Mode selects the routing rule.
type Mode string

const (
	// ModeSwitchyard is fal's rule plus loading marks: the runner a miss or
	// a busy hint is sent to is marked as loading the hint, so the requests
	// that follow for it go there (while it is not busy) instead of each
	// cold-loading the model on another runner. The default.
	ModeSwitchyard Mode = "switchyard"
	// ModeFal is fal's rule as documented: hints are only what runners
	// report after their responses.
	ModeFal Mode = "fal"
)

// ParseMode validates a mode name; "" is ModeSwitchyard.
func ParseMode(s string) (Mode, error) {
	switch m := Mode(s); m {
	case "":
		return ModeSwitchyard, nil
	case ModeSwitchyard, ModeFal:
		return m, nil
	}
	return "", fmt.Errorf("unknown hint mode %q: want %q or %q", s, ModeSwitchyard, ModeFal)
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

// MaxAlternatives is how many retry alternatives follow the primary runner.
const MaxAlternatives = 2

// Pick is the choice for one request.
type Pick struct {
	// Runners is ordered: the primary first, then up to MaxAlternatives
	// alternatives for retries. It is empty only when there are no runners.
	Runners []*registry.Runner
	Outcome Outcome
}

// PickerOptions configure a Picker.
type PickerOptions struct {
	// Index holds the runners' hints; a new default Index when nil.
	Index *Index
	// Mode is ModeSwitchyard when empty. Any other value than the Mode
	// constants panics: validate user input with ParseMode.
	Mode Mode
	// Rand breaks ties between equally good runners, so that load spreads.
	// When nil, the runtime's generator is used. A Source is not safe for
	// concurrent use, so an injected one is called under a mutex (one call
	// per Pick); tests inject a seeded one to get deterministic picks.
	Rand rand.Source
}

// Picker chooses runners for requests. It is safe for concurrent use.
type Picker struct {
	idx  *Index
	mode Mode

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
	return &Picker{idx: o.Index, mode: mode, rand: o.Rand}
}

// Index returns the Index the Picker reads.
func (p *Picker) Index() *Index { return p.idx }

// Mode returns the Picker's mode.
func (p *Picker) Mode() Mode { return p.mode }

// Pick ranks runners (a pool's active runners) for a request with hint ("" for
// none) and returns the best ones, never waiting: a runner is busy when its
// in-flight count is at least maxConcurrency (values below 1 count as 1).
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
// ModeSwitchyard a miss or busy outcome marks the primary as loading the
// hint (Index.MarkLoading).
//
// Pick is O(len(runners)) with a constant-size working set; it allocates
// only the result slice (and, on a marked miss, the Index's update).
func (p *Picker) Pick(runners []*registry.Runner, maxConcurrency int, hint string) Pick {
	if hint != "" && !ValidHint(hint) {
		hint = ""
	}
	limit := int64(max(maxConcurrency, 1))
	seed := p.seed()
	var key hintKey
	if hint != "" {
		key = p.idx.key(hint)
	}

	var top topK
	holders, freeHolders := 0, 0
	for i, r := range runners {
		load := r.InFlight()
		busy := load >= limit
		c := cand{i: i, tie: splitmix(seed + uint64(i)*0x9e3779b97f4a7c15)}
		switch {
		case hint == "" && !busy:
			c.tier, c.k1 = tierFree, load
		case hint == "":
			c.tier, c.k1 = tierBusy, load
		default:
			has, n := p.idx.lookup(r.Address, key)
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
	out := make([]*registry.Runner, n)
	for j := range out {
		out[j] = runners[top.c[j].i]
	}
	if p.mode == ModeSwitchyard && (outcome == OutcomeMiss || outcome == OutcomeBusy) {
		p.idx.MarkLoading(out[0].Address, hint)
	}
	return Pick{Runners: out, Outcome: outcome}
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
