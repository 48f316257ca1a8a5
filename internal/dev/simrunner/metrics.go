package simrunner

import "github.com/prometheus/client_golang/prometheus"

// newRegistry gives each runner its own registry, so several runners live
// in one process (tests, demo) without colliding. The counters read totals,
// which Reset leaves alone: a Prometheus counter must not go down.
func newRegistry(r *Runner) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	total := func(c counter) func() float64 {
		return func() float64 {
			r.mu.Lock()
			defer r.mu.Unlock()
			return float64(r.totals[c])
		}
	}
	for _, m := range []struct {
		name, help string
		c          counter
	}{
		{"simrunner_requests_total", "Requests received, rejected ones included (not the /_sim/ endpoints).", cRequests},
		{"simrunner_hits_total", "Requests whose model was loaded when they were served.", cHits},
		{"simrunner_misses_total", "Requests that waited for a model load, their own or a concurrent one.", cMisses},
		{"simrunner_cold_loads_total", "Model loads completed.", cColdLoads},
		{"simrunner_evictions_total", "Models evicted to make room for another.", cEvictions},
		{"simrunner_rejected_total", "Requests answered 503 beyond max concurrency.", cRejected},
		{"simrunner_canceled_total", "Requests whose client went away before the answer.", cCanceled},
	} {
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: m.name, Help: m.help}, total(m.c)))
	}
	gauge := func(name, help string, f func() int) {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, func() float64 {
			r.mu.Lock()
			defer r.mu.Unlock()
			return float64(f())
		}))
	}
	gauge("simrunner_in_flight", "Requests being served.", func() int { return r.active })
	gauge("simrunner_queued", "Requests waiting for a slot.", func() int { return r.waiters.Len() })
	gauge("simrunner_models_loaded", "Models held now.", func() int { return len(r.models) })
	return reg
}
