// Package admin is switchyard's admin HTTP API: health and readiness,
// Prometheus metrics, debug views of the effective config and runners, and
// runner registration (JSON). It holds no state; it calls the narrow
// interfaces below.
//
// In the code map (README):
//
//	operators, runners ──(HTTP)──▶ admin ─▶ registry; reads config, hints, costs, xDS versions, metrics
package admin

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/pprof"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/switchyard/switchyard/internal/config"
	"github.com/switchyard/switchyard/internal/decisions"
	"github.com/switchyard/switchyard/internal/registry"
)

// Runners is what the API needs of the runner registry.
type Runners interface {
	Register(pool, address string, ttl time.Duration) (registry.Info, error)
	Deregister(pool, address string) (registry.Info, error)
	List() []registry.Info
}

// Options wire the handler to the rest of switchyard.
type Options struct {
	Runners Runners
	Hints   func(address string) []string // a runner's current hints
	Config  func() *config.Config         // the config being served
	Ready   func() bool                   // a snapshot has been published
	XDS     func() any                    // xDS state for /debug/xds
	Costs   func() any                    // learnt request costs for /debug/costs
	// Decisions holds the last decision records, for /debug/decisions;
	// none are listed when nil.
	Decisions *decisions.Ring
	// Splits, when set, shows the routes' splits and lets an operator
	// take a variant out or put it back.
	Splits Splits
	// For the status (GET /, /debug/status): the config's loads, the
	// connected Envoys, the published versions, and the work queued on a
	// runner. Each may be nil.
	Reloads   func() ReloadStatus
	Envoys    func() []EnvoyStatus
	Published func() map[string]string
	Queued    func(pool, address string) time.Duration
	Gatherer  prometheus.Gatherer
	Log       *slog.Logger
	// Metrics counts refused requests; none counted when nil.
	Metrics *Metrics
}

// maxBody bounds registration request bodies.
const maxBody = 64 << 10

// maxTTL keeps a typo from registering a runner for years.
const maxTTL = 24 * time.Hour

// Handler returns the admin API.
func Handler(o Options) http.Handler {
	mux := http.NewServeMux()
	g := guard{config: o.Config, metrics: o.Metrics, log: o.Log}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !o.Ready() {
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "no snapshot published yet"})
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(o.Gatherer, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /debug/config", g.wrap(needRead, func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, o.Config())
	}))
	listRunners := func(w http.ResponseWriter, _ *http.Request) {
		list := o.Runners.List()
		out := make([]runnerJSON, len(list))
		for i, r := range list {
			out[i] = runnerJSON{Info: r, Hints: []string{}}
			if o.Hints != nil {
				if h := o.Hints(r.Address); h != nil {
					out[i].Hints = h
				}
			}
		}
		writeJSON(w, http.StatusOK, map[string]any{"runners": out})
	}
	mux.HandleFunc("GET /debug/runners", g.wrap(needRead, listRunners))
	mux.HandleFunc("GET /v1/runners", g.wrap(needRead, listRunners))
	mux.HandleFunc("GET /debug/xds", g.wrap(needRead, func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, o.XDS())
	}))
	mux.HandleFunc("GET /debug/costs", g.wrap(needRead, func(w http.ResponseWriter, _ *http.Request) {
		if o.Costs == nil {
			writeJSON(w, http.StatusOK, map[string]any{})
			return
		}
		writeJSON(w, http.StatusOK, o.Costs())
	}))
	handleSplits(mux, g, o)
	handleStatus(mux, g, o)
	mux.HandleFunc("GET /debug/decisions", g.wrap(needRead, func(w http.ResponseWriter, r *http.Request) {
		f, err := decisionFilter(r)
		if err != nil {
			writeError(w, http.StatusBadRequest, err)
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"kept": o.Decisions.Len(), "decisions": o.Decisions.List(f)})
	}))
	// Go's profiler, for what a decision costs under real load; a read
	// token protects it when read tokens are configured.
	mux.HandleFunc("GET /debug/pprof/", g.wrap(needRead, pprof.Index))
	mux.HandleFunc("GET /debug/pprof/profile", g.wrap(needRead, pprof.Profile))
	mux.HandleFunc("GET /debug/pprof/trace", g.wrap(needRead, pprof.Trace))
	mux.HandleFunc("PUT /v1/pools/{pool}/runners/{address}", g.wrap(needWrite, func(w http.ResponseWriter, r *http.Request) {
		ttl, err := readTTL(r)
		if err != nil {
			writeError(w, http.StatusBadRequest, err)
			return
		}
		info, err := o.Runners.Register(r.PathValue("pool"), r.PathValue("address"), ttl)
		if err != nil {
			writeRegistryError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, info)
	}))
	mux.HandleFunc("DELETE /v1/pools/{pool}/runners/{address}", g.wrap(needWrite, func(w http.ResponseWriter, r *http.Request) {
		info, err := o.Runners.Deregister(r.PathValue("pool"), r.PathValue("address"))
		if err != nil {
			writeRegistryError(w, err)
			return
		}
		o.Log.Info("runner draining", "pool", info.Pool, "address", info.Address)
		writeJSON(w, http.StatusOK, info)
	}))
	return mux
}

// decisionFilter reads /debug/decisions' query: route, pool, runner,
// outcome and limit.
func decisionFilter(r *http.Request) (decisions.Filter, error) {
	q := r.URL.Query()
	for k := range q {
		switch k {
		case "route", "pool", "runner", "outcome", "limit":
		default:
			return decisions.Filter{}, fmt.Errorf("unknown parameter %q: want route, pool, runner, outcome or limit", k)
		}
	}
	f := decisions.Filter{Route: q.Get("route"), Pool: q.Get("pool"), Runner: q.Get("runner"), Outcome: q.Get("outcome")}
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 {
			return decisions.Filter{}, fmt.Errorf("limit %q is not a positive integer", l)
		}
		f.Limit = n
	}
	return f, nil
}

// runnerJSON is a runner as the API lists it.
type runnerJSON struct {
	registry.Info
	Hints []string `json:"hints"`
}

type registration struct {
	TTLSeconds *float64 `json:"ttl_seconds"`
}

// readTTL reads the optional {"ttl_seconds": N} body; no body means no TTL.
func readTTL(r *http.Request) (time.Duration, error) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil {
		return 0, err
	}
	if len(body) > maxBody {
		return 0, fmt.Errorf("body over %d bytes", maxBody)
	}
	if strings.TrimSpace(string(body)) == "" {
		return 0, nil
	}
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.DisallowUnknownFields()
	var reg registration
	if err := dec.Decode(&reg); err != nil {
		return 0, fmt.Errorf("invalid JSON body: %v", err)
	}
	if reg.TTLSeconds == nil {
		return 0, nil
	}
	ttl := time.Duration(*reg.TTLSeconds * float64(time.Second))
	if *reg.TTLSeconds <= 0 || ttl > maxTTL {
		return 0, fmt.Errorf("ttl_seconds must be in (0, %d]", int(maxTTL.Seconds()))
	}
	return ttl, nil
}

func writeRegistryError(w http.ResponseWriter, err error) {
	status := http.StatusInternalServerError
	switch {
	case errors.Is(err, registry.ErrUnknownRunner):
		status = http.StatusNotFound
	case errors.Is(err, registry.ErrUnknownPool), errors.Is(err, registry.ErrBadAddress):
		status = http.StatusBadRequest
	}
	writeError(w, status, err)
}

func writeError(w http.ResponseWriter, status int, err error) {
	writeJSON(w, status, map[string]string{"error": err.Error()})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
