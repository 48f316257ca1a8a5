package policy

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchyard/switchyard/internal/affinity"
	"github.com/switchyard/switchyard/internal/decisions"
)

// Record is d as a decision record made at now; the caller adds what only
// it knows (how the body was read, how long deciding took).
func (d Decision) Record(now time.Time) *decisions.Record {
	r := &decisions.Record{
		Time:       now,
		Route:      d.Route,
		Rule:       d.Rule,
		When:       d.When,
		Pool:       d.Target.Pool,
		Variant:    d.Variant,
		Fallback:   d.Target.Fallback,
		Hint:       d.Hint,
		HintSource: d.HintSource,
		Outcome:    string(d.Outcome),
		Queued:     d.Queued,
		Policy:     string(d.Policy),
		HintAge:    decisions.Millis(d.HintAge),
		Cost:       d.Units,
	}
	for i := range min(len(d.Runners), len(d.Reasons)) {
		c := candidate(d.Runners[i].Address, d.Reasons[i], d.Hint != "")
		if i == 0 {
			r.Chosen = c
		} else {
			r.RunnerUp = c
		}
	}
	return r
}

// candidate says in words what the pick knew of a runner.
func candidate(addr string, why affinity.Reason, hinted bool) *decisions.Candidate {
	c := &decisions.Candidate{Runner: addr, InFlight: why.InFlight, Warm: why.Warm, Busy: why.Busy,
		Wait: decisions.Millis(why.Wait), Predicted: decisions.Millis(why.Finish)}
	state := "free"
	if why.Busy {
		state = "busy"
	}
	state += ", " + strconv.FormatInt(why.InFlight, 10) + " in flight"
	switch {
	case !hinted:
		c.Why = state
	case why.Warm:
		c.Why = "warm, " + state
	default:
		c.Why = "cold: model load, " + state
		if why.Evicts {
			c.Why += ", evicts a model"
		}
	}
	if why.Wait > 0 {
		c.Why += ", waits " + why.Wait.Round(time.Millisecond).String()
	}
	if why.Finish > 0 {
		c.Why += ", expected in " + why.Finish.Round(time.Millisecond).String()
	}
	return c
}

// Keep has f fill rec's end, in ring, when its request ends.
func (f *Flight) Keep(ring *decisions.Ring, rec *decisions.Record) {
	f.ring, f.rec = ring, rec
}

// Metrics are what the policy measures of its own predictions.
type Metrics struct {
	predictionError *prometheus.HistogramVec
	variantChanges  *prometheus.CounterVec
}

// NewMetrics makes the policy's metrics and registers them on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		predictionError: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "switchyard_prediction_error_seconds",
			Help:    "Time to the response headers minus the soonest policy's prediction, for requests the chosen runner answered with a 2xx, by pool. Negative: faster than predicted.",
			Buckets: []float64{-30, -10, -5, -2, -1, -0.5, -0.25, -0.1, -0.05, 0, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30},
		}, []string{"pool"}),
	}
	m.variantChanges = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "switchyard_split_variant_changes_total",
		Help: "Split variants leaving or rejoining their split (a guard breached, a cool-down over, an operator), by route, pool and the state entered (active, ejected, probing).",
	}, []string{"route", "pool", "state"})
	reg.MustRegister(m.predictionError, m.variantChanges)
	return m
}

// ended learns what the record and the prediction metric need from the
// response r ended f's request with (nil r: no report came).
func (f *Flight) ended(r *Response) {
	d := f.d
	var predicted time.Duration
	if len(d.Runners) > 0 {
		predicted = d.Reasons[0].Finish
	}
	var e decisions.End
	if r == nil {
		e.Unreported = true
	} else {
		if d.guard != nil {
			// What the client saw of the variant: no answer or a 5xx
			// counts against it.
			took := r.Elapsed
			if took <= 0 {
				took = f.e.now().Sub(f.at)
			}
			f.e.guards.observe(variantKey{d.Route, d.Rule, d.Variant}, d.guard, f.e.now(), r.Status == 0 || r.Status >= 500, took)
		}
		took := r.Elapsed
		if took <= 0 {
			took = f.e.now().Sub(f.at)
		}
		e = decisions.End{Status: r.Status, Runner: r.Runner, Elapsed: decisions.Millis(took)}
		if predicted > 0 && r.Runner == d.Runners[0].Address && r.Status/100 == 2 {
			perr := decisions.Millis(took - predicted)
			e.PredictionError = &perr
			if m := f.e.metrics; m != nil {
				m.predictionError.WithLabelValues(d.Target.Pool).Observe((took - predicted).Seconds())
			}
		}
	}
	if f.rec != nil {
		f.ring.Finish(f.rec, e)
	}
}
