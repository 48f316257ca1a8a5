package xds

import "github.com/prometheus/client_golang/prometheus"

// Metrics count what the control plane publishes and what Envoys make of it.
type Metrics struct {
	Pushes    *prometheus.CounterVec // type
	Nacks     *prometheus.CounterVec // type
	Clients   prometheus.Gauge
	Snapshots *prometheus.CounterVec // result: ok, error
	// PushDuration is from a version's publication to an Envoy's ACK of
	// it, by type.
	PushDuration *prometheus.HistogramVec
}

// NewMetrics creates the xDS metrics and registers them on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Pushes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchyard_xds_pushes_total",
			Help: "xDS responses sent to Envoys, by resource type.",
		}, []string{"type"}),
		Nacks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchyard_xds_nacks_total",
			Help: "xDS responses Envoys rejected, by resource type.",
		}, []string{"type"}),
		Clients: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "switchyard_xds_connected_clients",
			Help: "Envoy ADS streams currently open.",
		}),
		Snapshots: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchyard_xds_snapshots_total",
			Help: "Snapshot builds by result (ok, error). An error keeps the last good snapshot published.",
		}, []string{"result"}),
	}
	m.PushDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "switchyard_xds_push_duration_seconds",
		Help:    "Time from a config version's publication to its acknowledgement by an Envoy, by resource type (one sample per Envoy and version).",
		Buckets: []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10},
	}, []string{"type"})
	reg.MustRegister(m.Pushes, m.Nacks, m.Clients, m.Snapshots, m.PushDuration)
	// Pre-create the label values users alert on, so they read 0, not absent.
	for _, r := range []string{"ok", "error"} {
		m.Snapshots.WithLabelValues(r)
	}
	return m
}
