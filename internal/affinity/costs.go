package affinity

import (
	"sync"
	"time"
)

// Cost is what a pool's requests take on a runner: with the model loaded
// (Hit) and with a model load first (Miss). Zero values mean not known yet.
type Cost struct {
	Hit, Miss time.Duration
}

// Known says both costs have been measured.
func (c Cost) Known() bool { return c.Hit > 0 && c.Miss > c.Hit }

// Load is what a model load adds to a request.
func (c Cost) Load() time.Duration { return c.Miss - c.Hit }

// Costs learns each pool's Cost from the requests switchyard routes: an
// exponentially weighted mean of the time from decision to response of
// requests that found their model (hits) and of those that loaded it
// (misses), counting only requests sent to a runner that was not busy, so
// that queueing does not leak into the estimates. Safe for concurrent use.
type Costs struct {
	mu    sync.Mutex
	pools map[string]*costEstimate
}

type costEstimate struct {
	hit, miss   ewma
	hits, fails int
	// With a route's cost expression, requests have a size (units): rate
	// is a hit's time per unit and load what a miss adds to it (a model
	// load does not grow with the request).
	rate, load               ewma
	rateSamples, loadSamples int
}

// ewma is an exponentially weighted moving mean.
type ewma float64

const (
	costWeight     = 0.1 // weight of a new sample
	costMinSamples = 3   // samples of each kind before a Cost is Known
)

func (e *ewma) add(v float64, first bool) {
	if first {
		*e = ewma(v)
		return
	}
	*e = ewma((1-costWeight)*float64(*e) + costWeight*v)
}

// NewCosts makes an empty estimator.
func NewCosts() *Costs { return &Costs{pools: map[string]*costEstimate{}} }

// Observe records a request of pool that took d; hit says its model was
// loaded when it arrived.
func (c *Costs) Observe(pool string, hit bool, d time.Duration) { c.ObserveSized(pool, hit, d, 0) }

// ObserveSized is Observe for a request of the given size (units > 0, from
// its route's cost expression; 0 for none): it also teaches the pool's time
// per unit and its load time.
func (c *Costs) ObserveSized(pool string, hit bool, d time.Duration, units float64) {
	if d <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.pools[pool]
	if !ok {
		e = &costEstimate{}
		c.pools[pool] = e
	}
	if hit {
		e.hit.add(float64(d), e.hits == 0)
		e.hits++
	} else {
		e.miss.add(float64(d), e.fails == 0)
		e.fails++
	}
	if units <= 0 {
		return
	}
	if hit {
		e.rate.add(float64(d)/units, e.rateSamples == 0)
		e.rateSamples++
	} else if e.rateSamples >= costMinSamples {
		e.load.add(max(float64(d)-float64(e.rate)*units, 0), e.loadSamples == 0)
		e.loadSamples++
	}
}

// For returns what a request of units (from its route's cost expression)
// is expected to take in pool: units times the pool's time per unit, plus
// a load on a miss, once both are learnt. Without units (0), or until
// then, it is Get's per-request average.
func (c *Costs) For(pool string, units float64) Cost {
	if units > 0 {
		c.mu.Lock()
		e, ok := c.pools[pool]
		if ok && e.rateSamples >= costMinSamples && e.loadSamples >= costMinSamples && e.load > 0 {
			hit := time.Duration(float64(e.rate) * units)
			c.mu.Unlock()
			return Cost{Hit: hit, Miss: hit + time.Duration(e.load)}
		}
		c.mu.Unlock()
	}
	return c.Get(pool)
}

// Get returns the pool's Cost; it is Known once enough of both kinds were seen.
func (c *Costs) Get(pool string) Cost {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.pools[pool]
	if !ok || e.hits < costMinSamples || e.fails < costMinSamples {
		return Cost{}
	}
	return Cost{Hit: time.Duration(e.hit), Miss: time.Duration(e.miss)}
}

// PoolCost is a pool's learnt costs, for display.
type PoolCost struct {
	HitMillis  float64 `json:"hit_ms"`
	MissMillis float64 `json:"miss_ms"`
	Hits       int     `json:"hit_samples"`
	Misses     int     `json:"miss_samples"`
	Known      bool    `json:"known"`
	// With a cost expression: a hit's time per unit of cost, and what a
	// model load adds, with their sample counts.
	PerUnitMillis float64 `json:"hit_ms_per_unit,omitempty"`
	LoadMillis    float64 `json:"load_ms,omitempty"`
	UnitSamples   int     `json:"per_unit_samples,omitempty"`
	LoadSamples   int     `json:"load_samples,omitempty"`
}

// Snapshot returns every pool's costs.
func (c *Costs) Snapshot() map[string]PoolCost {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]PoolCost, len(c.pools))
	for p, e := range c.pools {
		out[p] = PoolCost{
			HitMillis: float64(e.hit) / 1e6, MissMillis: float64(e.miss) / 1e6, Hits: e.hits, Misses: e.fails,
			Known:         e.hits >= costMinSamples && e.fails >= costMinSamples && e.miss > e.hit,
			PerUnitMillis: float64(e.rate) / 1e6, LoadMillis: float64(e.load) / 1e6, UnitSamples: e.rateSamples, LoadSamples: e.loadSamples,
		}
	}
	return out
}
