package cluster

import "github.com/prometheus/client_golang/prometheus"

// Metrics say how the replica's part of the shared state goes.
type Metrics struct {
	Connected prometheus.Gauge
	Peers     prometheus.Gauge
	Writes    *prometheus.CounterVec // bucket
	Updates   *prometheus.CounterVec // bucket
	Errors    *prometheus.CounterVec // op: session, write, apply
}

// NewMetrics creates the cluster metrics and registers them on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	gauge := func(name, help string) prometheus.Gauge {
		return prometheus.NewGauge(prometheus.GaugeOpts{Name: "switchyard_cluster_" + name, Help: help})
	}
	// counters pre-creates the label values users alert on, so they read
	// 0, not absent.
	counters := func(name, help, label string, values ...string) *prometheus.CounterVec {
		c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "switchyard_cluster_" + name, Help: help}, []string{label})
		for _, v := range values {
			c.WithLabelValues(v)
		}
		return c
	}
	buckets := []string{bucketRunners, bucketHints, bucketLoad}
	m := &Metrics{
		Connected: gauge("connected", "1 while this replica shares runner state through NATS, else 0 (it routes on what it knows)."),
		Peers:     gauge("peers", "Other replicas whose work in flight this replica counts."),
		Writes:    counters("writes_total", "Coalesced writes to the shared state, by bucket (runners, hints, load).", "bucket", buckets...),
		Updates:   counters("updates_total", "Entries of the shared state applied here, by bucket (runners, hints, load).", "bucket", buckets...),
		Errors:    counters("errors_total", "Problems with the shared state, by operation (session, write, apply); routing goes on.", "op", "session", "write", "apply"),
	}
	reg.MustRegister(m.Connected, m.Peers, m.Writes, m.Updates, m.Errors)
	return m
}
