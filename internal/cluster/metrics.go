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
	m := &Metrics{
		Connected: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "switchyard_cluster_connected",
			Help: "1 while this replica shares runner state through NATS, else 0 (it routes on what it knows).",
		}),
		Peers: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "switchyard_cluster_peers",
			Help: "Other replicas whose work in flight this replica counts.",
		}),
		Writes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchyard_cluster_writes_total",
			Help: "Coalesced writes to the shared state, by bucket (runners, hints, load).",
		}, []string{"bucket"}),
		Updates: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchyard_cluster_updates_total",
			Help: "Entries of the shared state applied here, by bucket (runners, hints, load).",
		}, []string{"bucket"}),
		Errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchyard_cluster_errors_total",
			Help: "Problems with the shared state, by operation (session, write, apply); routing goes on.",
		}, []string{"op"}),
	}
	reg.MustRegister(m.Connected, m.Peers, m.Writes, m.Updates, m.Errors)
	for _, b := range []string{bucketRunners, bucketHints, bucketLoad} {
		m.Writes.WithLabelValues(b)
		m.Updates.WithLabelValues(b)
	}
	for _, op := range []string{"session", "write", "apply"} {
		m.Errors.WithLabelValues(op)
	}
	return m
}
