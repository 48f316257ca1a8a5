package extproc

import "github.com/prometheus/client_golang/prometheus"

// Metrics count what the request path did.
type Metrics struct {
	decisions *prometheus.CounterVec
	rejected  prometheus.Counter
	undecided prometheus.Counter
	queued    prometheus.Counter
	bodyPath  *prometheus.CounterVec
}

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
	reg.MustRegister(m.decisions, m.rejected, m.undecided, m.queued, m.bodyPath)
	m.bodyPath.WithLabelValues("fields")
	m.bodyPath.WithLabelValues("whole")
	for _, o := range []string{"hit", "miss", "busy", "none"} {
		m.decisions.WithLabelValues(o)
	}
	return m
}
