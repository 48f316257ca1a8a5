package configwatch

import "github.com/prometheus/client_golang/prometheus"

// Metrics count config loads: the first one and every reload.
type Metrics struct {
	Reloads    *prometheus.CounterVec // result: ok, error
	Generation prometheus.Gauge
}

// NewMetrics creates the config metrics and registers them on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchyard_config_reloads_total",
			Help: "Config file loads by result (ok, error). An error keeps the last good config serving.",
		}, []string{"result"}),
		Generation: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "switchyard_config_generation",
			Help: "Number of the config currently served, counting from 1 at start.",
		}),
	}
	reg.MustRegister(m.Reloads, m.Generation)
	// Pre-create the label values users alert on, so they read 0, not absent.
	for _, r := range []string{"ok", "error"} {
		m.Reloads.WithLabelValues(r)
	}
	return m
}

// Loaded counts a config that is now served.
func (m *Metrics) Loaded() {
	m.Reloads.WithLabelValues("ok").Inc()
	m.Generation.Inc()
}

// Rejected counts a file that did not load; the last good config serves on.
func (m *Metrics) Rejected() { m.Reloads.WithLabelValues("error").Inc() }
