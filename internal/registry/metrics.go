package registry

import "github.com/prometheus/client_golang/prometheus"

// runnersCollector turns RunnerCounts into the switchyard_runners gauge at
// scrape time, so the registry keeps no metric state of its own.
type runnersCollector struct {
	desc *prometheus.Desc
	r    *Registry
}

// RegisterMetrics exposes switchyard_runners{pool,state} from r on reg.
func RegisterMetrics(reg prometheus.Registerer, r *Registry) {
	reg.MustRegister(&runnersCollector{
		desc: prometheus.NewDesc("switchyard_runners", "Runners per pool and state (active, draining).", []string{"pool", "state"}, nil),
		r:    r,
	})
}

func (c *runnersCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *runnersCollector) Collect(ch chan<- prometheus.Metric) {
	for k, n := range c.r.RunnerCounts() {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(n), k[0], k[1])
	}
}
