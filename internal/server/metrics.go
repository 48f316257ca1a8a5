package server

import (
	"github.com/prometheus/client_golang/prometheus"
)

// stateCollector reports, at scrape time, what the routing state holds:
// each runner's requests in flight and the work queued on it, and the
// hint index's size and evictions. Series come and go with the runners
// (bounded by the registry), never by hint.
type stateCollector struct {
	s *Server

	inFlight, queued, indexRunners, indexHints, evictions *prometheus.Desc
}

func newStateCollector(s *Server) *stateCollector {
	return &stateCollector{
		s:            s,
		inFlight:     prometheus.NewDesc("switchyard_runner_in_flight", "Requests in flight on each runner, as switchyard counts them.", []string{"pool", "runner"}, nil),
		queued:       prometheus.NewDesc("switchyard_runner_queued_seconds", "Work queued on each runner beyond its free slots, as the soonest policy estimates it: how long a request sent now would wait.", []string{"pool", "runner"}, nil),
		indexRunners: prometheus.NewDesc("switchyard_hint_index_runners", "Runners with at least one known hint.", nil, nil),
		indexHints:   prometheus.NewDesc("switchyard_hint_index_hints", "Distinct hints known over all runners.", nil, nil),
		evictions:    prometheus.NewDesc("switchyard_hint_index_evictions_total", "Hints and runners the hint index forgot to stay within its bounds, by kind (hint, runner).", []string{"kind"}, nil),
	}
}

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.inFlight, c.queued, c.indexRunners, c.indexHints, c.evictions} {
		ch <- d
	}
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	cfg := c.s.current.Load()
	for _, r := range c.s.runners.List() {
		ch <- prometheus.MustNewConstMetric(c.inFlight, prometheus.GaugeValue, float64(r.InFlight), r.Pool, r.Address)
		limit := 1
		if p, ok := cfg.Pool(r.Pool); ok {
			limit = p.MaxConcurrency
		}
		ch <- prometheus.MustNewConstMetric(c.queued, prometheus.GaugeValue, c.s.engine.Queued(r.Address, limit).Seconds(), r.Pool, r.Address)
	}
	st := c.s.engine.Hints().Stats()
	ch <- prometheus.MustNewConstMetric(c.indexRunners, prometheus.GaugeValue, float64(st.Runners))
	ch <- prometheus.MustNewConstMetric(c.indexHints, prometheus.GaugeValue, float64(st.Hints))
	ch <- prometheus.MustNewConstMetric(c.evictions, prometheus.CounterValue, float64(st.EvictedHints), "hint")
	ch <- prometheus.MustNewConstMetric(c.evictions, prometheus.CounterValue, float64(st.EvictedRunners), "runner")
}
