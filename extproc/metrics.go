package extproc

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchyard/switchyard/internal/policy"
)

// Metrics count what the request path did.
type Metrics struct {
	decisions *prometheus.CounterVec
	rejected  prometheus.Counter
	undecided prometheus.Counter
	queued    prometheus.Counter
	bodyPath  *prometheus.CounterVec
	// By pool (pools are few: the config's): outcomes and queued picks.
	poolDecisions *prometheus.CounterVec
	poolQueued    *prometheus.CounterVec
	duration      *prometheus.HistogramVec
}

// Phases of switchyard's own time on a request.
const (
	// phaseHeaders is the request-headers message: the whole decision on
	// the headers-only and fields paths, the request for the body on the
	// buffered one.
	phaseHeaders = "headers"
	// phaseBody is the request-body message on the buffered path: reading
	// the fields and deciding.
	phaseBody = "body"
	// phasePolicy is the policy's part of either: rules, pick, dispatch.
	phasePolicy = "policy"
)

// NewMetrics registers the ext_proc metrics on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchyard_decisions_total",
			Help: "Routing decisions by hint outcome (hit, miss, busy, none).",
		}, []string{"hint"}),
		rejected: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "switchyard_rejected_requests_total",
			Help: "Requests answered 400 by switchyard (invalid body on a route that rejects it).",
		}),
		undecided: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "switchyard_undecided_requests_total",
			Help: "Requests on no known route, left to Envoy's route defaults.",
		}),
	}
	m.queued = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "switchyard_queued_decisions_total",
		Help: "Decisions that chose a busy runner holding the hint, expecting it to free up before a model load elsewhere.",
	})
	m.bodyPath = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "switchyard_body_reads_total",
		Help: "Requests whose rules read the body, by how the body reached switchyard: the fields Envoy extracted, or the whole body.",
	}, []string{"path"})
	m.poolDecisions = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "switchyard_pool_decisions_total",
		Help: "Routing decisions by chosen pool and hint outcome (hit, miss, busy, none).",
	}, []string{"pool", "outcome"})
	m.poolQueued = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "switchyard_pool_queued_total",
		Help: "Decisions that queued on a busy warm runner, by pool.",
	}, []string{"pool"})
	m.duration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "switchyard_decision_duration_seconds",
		Help:    "Time switchyard spent on a request's ext_proc message, by phase: headers (the request headers, deciding on them or on the fields Envoy extracted), body (a whole body read and decided on), policy (rules, pick and dispatch, within either).",
		Buckets: []float64{5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 0.01, 0.025, 0.05},
	}, []string{"phase"})
	reg.MustRegister(m.decisions, m.rejected, m.undecided, m.queued, m.bodyPath, m.poolDecisions, m.poolQueued, m.duration)
	for _, p := range []string{phaseHeaders, phaseBody, phasePolicy} {
		m.duration.WithLabelValues(p)
	}
	m.bodyPath.WithLabelValues("fields")
	m.bodyPath.WithLabelValues("whole")
	for _, o := range []string{"hit", "miss", "busy", "none"} {
		m.decisions.WithLabelValues(o)
	}
	return m
}

// decided counts a decision.
func (m *Metrics) decided(d policy.Decision) {
	m.decisions.WithLabelValues(string(d.Outcome)).Inc()
	m.poolDecisions.WithLabelValues(d.Target.Pool, string(d.Outcome)).Inc()
	if d.Queued {
		m.queued.Inc()
		m.poolQueued.WithLabelValues(d.Target.Pool).Inc()
	}
}

// phase times one phase of switchyard's work on a request.
func (m *Metrics) phase(name string, d time.Duration) {
	m.duration.WithLabelValues(name).Observe(d.Seconds())
}
