// Package metrics defines switchyard's Prometheus metrics in one place. They
// are registered on a registry the caller injects, never the global one, so
// tests run in parallel with their own.
package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the counters and gauges the control plane updates.
type Metrics struct {
	ConfigReloads    *prometheus.CounterVec // result: ok, error
	ConfigGeneration prometheus.Gauge
	XDSPushes        *prometheus.CounterVec // type
	XDSNacks         *prometheus.CounterVec // type
	XDSClients       prometheus.Gauge
	Snapshots        *prometheus.CounterVec // result: ok, error
}

// New creates the metrics and registers them on reg.
func New(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		ConfigReloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchyard_config_reloads_total",
			Help: "Config file loads by result (ok, error). An error keeps the last good config serving.",
		}, []string{"result"}),
		ConfigGeneration: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "switchyard_config_generation",
			Help: "Number of the config currently served, counting from 1 at start.",
		}),
		XDSPushes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchyard_xds_pushes_total",
			Help: "xDS responses sent to Envoys, by resource type.",
		}, []string{"type"}),
		XDSNacks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchyard_xds_nacks_total",
			Help: "xDS responses Envoys rejected, by resource type.",
		}, []string{"type"}),
		XDSClients: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "switchyard_xds_connected_clients",
			Help: "Envoy ADS streams currently open.",
		}),
		Snapshots: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchyard_xds_snapshots_total",
			Help: "Snapshot builds by result (ok, error). An error keeps the last good snapshot published.",
		}, []string{"result"}),
	}
	reg.MustRegister(m.ConfigReloads, m.ConfigGeneration, m.XDSPushes, m.XDSNacks, m.XDSClients, m.Snapshots)
	// Pre-create the label values users alert on, so they read 0, not absent.
	for _, r := range []string{"ok", "error"} {
		m.ConfigReloads.WithLabelValues(r)
		m.Snapshots.WithLabelValues(r)
	}
	return m
}

// RunnerCounter reports how many runners each pool has in each state.
type RunnerCounter interface {
	RunnerCounts() map[[2]string]int // {pool, state} → count
}

// runnersCollector turns RunnerCounter into the switchyard_runners gauge at
// scrape time, so the registry keeps no metric state of its own.
type runnersCollector struct {
	desc *prometheus.Desc
	src  RunnerCounter
}

// RegisterRunners exposes switchyard_runners{pool,state} from src.
func RegisterRunners(reg prometheus.Registerer, src RunnerCounter) {
	reg.MustRegister(&runnersCollector{
		desc: prometheus.NewDesc("switchyard_runners", "Runners per pool and state (active, draining).", []string{"pool", "state"}, nil),
		src:  src,
	})
}

func (c *runnersCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *runnersCollector) Collect(ch chan<- prometheus.Metric) {
	for k, n := range c.src.RunnerCounts() {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(n), k[0], k[1])
	}
}
