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
	// With a route's cost expression, requests have a size (units): a
	// hit takes base + rate × units (a line fitted to the hits, by
	// exponentially weighted least squares, so that a fixed overhead does
	// not inflate small requests' rate) and a miss a load more (a model
	// load does not grow with the request).
	fit                      lineFit
	load                     ewma
	rateSamples, loadSamples int
	// early holds the sized misses seen before the line was known (at
	// most costMinSamples): they teach the load once it is. A pool's
	// first requests are its misses, and once its models are warm
	// misses are rare, so without them the load could take minutes to
	// learn.
	early []sample
	// missFit is the line of the sized misses alone: its slope is the
	// time per unit and its intercept a load (plus any fixed time).
	// It prices sized requests until the hits' line and the load are
	// known, when every request queues behind loads and few hits find a
	// free runner to measure.
	missFit     lineFit
	missSamples int
}

type sample struct {
	d     time.Duration
	units float64
}

// lineFit is an exponentially weighted least-squares fit of y = a + b·x.
type lineFit struct {
	x, y, xx, xy ewma
}

func (l *lineFit) add(x, y float64, first bool) {
	l.x.add(x, first)
	l.y.add(y, first)
	l.xx.add(x*x, first)
	l.xy.add(x*y, first)
}

// line is the fit's intercept and slope; with too little spread in x to
// tell them apart, the line through the origin and the means.
func (l *lineFit) line() (a, b float64) {
	mx, my := float64(l.x), float64(l.y)
	vx := float64(l.xx) - mx*mx
	if vx <= 1e-9*max(float64(l.xx), 1e-12) {
		return 0, my / mx
	}
	b = (float64(l.xy) - mx*my) / vx
	a = my - b*mx
	if b <= 0 || a < 0 {
		// Noise can tip a fit over: a request never costs less for being
		// larger, nor less than nothing when tiny.
		return 0, my / mx
	}
	return a, b
}

// at is the fit's y for x.
func (l *lineFit) at(x float64) float64 {
	a, b := l.line()
	return a + b*x
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
	switch {
	case hit:
		e.fit.add(units, float64(d), e.rateSamples == 0)
		e.rateSamples++
		if e.rateSamples == costMinSamples {
			for _, m := range e.early {
				e.addLoad(m.d, m.units)
			}
			e.early = nil
		}
		return
	case e.rateSamples >= costMinSamples:
		e.addLoad(d, units)
	case len(e.early) < costMinSamples:
		e.early = append(e.early, sample{d: d, units: units})
	}
	e.missFit.add(units, float64(d), e.missSamples == 0)
	e.missSamples++
}

// addLoad learns a model load from a miss of units that took d.
func (e *costEstimate) addLoad(d time.Duration, units float64) {
	e.load.add(max(float64(d)-e.fit.at(units), 0), e.loadSamples == 0)
	e.loadSamples++
}

// For returns what a request of units (from its route's cost expression)
// is expected to take in pool: the pool's fixed time plus units times its
// time per unit, plus a load on a miss, once both are learnt. Until then,
// once a few sized misses of different sizes are seen, their line: units
// times its slope for a hit, plus its intercept (the load) for a miss.
// Without units (0), or until either is known, it is Get's per-request
// average.
func (c *Costs) For(pool string, units float64) Cost {
	if units > 0 {
		if cost, ok := c.sized(pool, units); ok {
			return cost
		}
	}
	return c.Get(pool)
}

func (c *Costs) sized(pool string, units float64) (Cost, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.pools[pool]
	switch {
	case !ok:
	case e.rateSamples >= costMinSamples && e.loadSamples >= costMinSamples && e.load > 0:
		hit := time.Duration(e.fit.at(units))
		return Cost{Hit: hit, Miss: hit + time.Duration(e.load)}, true
	case e.missSamples >= costMinSamples:
		// A line through the origin (too little spread in size to tell
		// slope from intercept) says nothing of the load.
		if a, b := e.missFit.line(); a > 0 {
			hit := time.Duration(b * units)
			return Cost{Hit: hit, Miss: hit + time.Duration(a)}, true
		}
	}
	return Cost{}, false
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
	// With a cost expression: a hit's fixed time and time per unit of
	// cost, and what a model load adds, with their sample counts.
	BaseMillis    float64 `json:"hit_ms_base,omitempty"`
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
		var base, rate float64
		if e.rateSamples > 0 {
			base, rate = e.fit.line()
		}
		out[p] = PoolCost{
			HitMillis: float64(e.hit) / 1e6, MissMillis: float64(e.miss) / 1e6, Hits: e.hits, Misses: e.fails,
			Known:      e.hits >= costMinSamples && e.fails >= costMinSamples && e.miss > e.hit,
			BaseMillis: base / 1e6, PerUnitMillis: rate / 1e6, LoadMillis: float64(e.load) / 1e6, UnitSamples: e.rateSamples, LoadSamples: e.loadSamples,
		}
	}
	return out
}
