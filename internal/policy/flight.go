package policy

import (
	"time"

	"github.com/switchyard/switchyard/internal/affinity"
	"github.com/switchyard/switchyard/internal/config"
	"github.com/switchyard/switchyard/internal/decisions"
)

// Flight is one dispatched request, from its decision to its end: what
// happens to it goes back to the policy through Respond and End, and the
// rules for what the policy learns from it are here, not in the protocol
// layer that reports it.
type Flight struct {
	e *Engine
	d Decision
	// job holds the request's place on its runner (its in-flight count and
	// the picker's view of the runner's work) until the work ends.
	job *affinity.Job
	at  time.Time
	// primaryFree says Runners[0] had a free slot when the request was
	// sent: only such requests measure the pool's costs, so that queueing
	// does not leak into them.
	primaryFree bool
	// rec is the request's decision record, kept in ring, when one is
	// kept: its end is filled in when the request ends.
	rec  *decisions.Record
	ring *decisions.Ring
}

// Response is what the policy learns from a response's headers.
type Response struct {
	// Runner is the address of the runner that answered ("" when none
	// did: no runner was reachable).
	Runner string
	// Status is the HTTP status.
	Status int
	// Hints is the runner's hints header; HintsReported says it was
	// present (an absent header keeps what is known, an empty one means
	// the runner holds nothing).
	Hints         string
	HintsReported bool
	// Final says the runner's work ended with these headers: a response
	// with a known length (or none). A streamed response keeps the runner
	// busy until End.
	Final bool
	// Elapsed is the time from the request's start to its response
	// headers when the reporter measured it (Envoy's access log does);
	// zero means now, as seen by the policy's clock, is when they came.
	Elapsed time.Duration
}

// Dispatch sends the request d describes to d.Runners[0] (when it has
// runners): from here the request counts on that runner until its work
// ends. The Flight is never nil; End it however the request ends.
func (e *Engine) Dispatch(cfg *config.Config, d Decision) *Flight {
	f := &Flight{e: e, d: d, at: e.now()}
	if len(d.Runners) == 0 {
		return f
	}
	if p, ok := cfg.Pool(d.Target.Pool); ok {
		f.primaryFree = d.Runners[0].InFlight() < int64(p.MaxConcurrency)
	}
	if picker := e.pickers[d.Policy]; picker != nil {
		f.job = picker.Begin(affinity.Pick{Runners: d.Runners, Outcome: d.Outcome, Queued: d.Queued}, affinity.Request{Hint: d.Hint, Cost: d.Cost})
	}
	return f
}

// Decision is what was decided for the request.
func (f *Flight) Decision() Decision { return f.d }

// Respond learns from the response headers of the request: the serving
// runner's hints, how long the request took (when it may teach the pool's
// costs), and, when the response is final, that the runner's work for it
// ended.
func (f *Flight) Respond(r Response) {
	f.e.Observe(r)
	f.observeCost(r)
	if r.Final {
		f.ended(&r)
	}
	// After the hint report: a pick between the two would otherwise see
	// neither the request's model on its way nor the runner holding it.
	if r.Final {
		f.End()
	}
}

// End ends the request's work on its runner, however the request ended (a
// response, an error, a reset, a client that went away). Only the first
// call counts; safe on nil.
func (f *Flight) End() {
	if f == nil {
		return
	}
	f.job.Done()
}

// Observe learns the hints a runner reported on a response, also for
// requests no Flight follows (a route switchyard does not decide).
func (e *Engine) Observe(r Response) {
	if r.Runner == "" {
		return
	}
	e.hints.Report(r.Runner, r.Hints, r.HintsReported)
	if r.HintsReported && e.reported != nil {
		e.reported(r.Runner, r.Hints)
	}
}

// observeCost feeds the pool's cost estimate with this request, when it had
// a hint, went to the runner chosen for it, which was free, and succeeded.
func (f *Flight) observeCost(r Response) {
	d := f.d
	if d.Hint == "" || !f.primaryFree || len(d.Runners) == 0 || r.Runner != d.Runners[0].Address || r.Status/100 != 2 {
		return
	}
	took := r.Elapsed
	if took <= 0 {
		took = f.e.now().Sub(f.at)
	}
	f.e.costs.ObserveSized(d.Target.Pool, d.Outcome == affinity.OutcomeHit, took, d.Units)
}
