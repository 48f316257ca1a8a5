package simrunner

import (
	"container/list"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"path"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// StatusClientClosed answers a request whose client went away (nginx's
// convention); nobody reads it, but a handler has to say something.
const StatusClientClosed = 499

// Runner is a simulated GPU runner; it implements http.Handler.
type Runner struct {
	o       Options
	name    atomic.Pointer[string]
	reg     *prometheus.Registry
	metrics http.Handler
	maxBody int64 // maxBody, but tests lower it

	mu      sync.Mutex
	models  []string                 // loaded, most recent first
	loads   map[string]chan struct{} // loads in progress by model, closed when done
	active  int                      // requests holding a slot
	waiters list.List                // of chan struct{}: requests queued for a slot, oldest first
	stats   [numCounters]int64
	totals  [numCounters]int64 // like stats, but Reset leaves them alone (Prometheus)
	maxIn   int64
}

type counter int

const (
	cRequests counter = iota
	cHits
	cMisses
	cColdLoads
	cEvictions
	cRejected
	cCanceled
	numCounters
)

// Stats is a snapshot of a runner's counters and state.
type Stats struct {
	Name string `json:"name"`
	// Requests counts requests to the runner (not to /_sim/), rejected ones too.
	Requests int64 `json:"requests"`
	// Hits counts requests whose model was loaded when they were served;
	// Misses those that waited for a load, their own or a concurrent one.
	Hits   int64 `json:"hits"`
	Misses int64 `json:"misses"`
	// ColdLoads counts models actually loaded; Evictions the models dropped
	// to make room.
	ColdLoads int64 `json:"cold_loads"`
	Evictions int64 `json:"evictions"`
	// Rejected counts 503s beyond MaxConcurrency; Canceled requests whose
	// client went away before the answer.
	Rejected int64 `json:"rejected"`
	Canceled int64 `json:"canceled"`
	// InFlight counts requests being served (holding a slot), Queued those
	// waiting for one; MaxInFlight is InFlight's high-water mark.
	InFlight    int64 `json:"in_flight"`
	Queued      int64 `json:"queued"`
	MaxInFlight int64 `json:"max_in_flight"`
	// Models are the loaded models, most recent first.
	Models []string `json:"models"`
}

// New returns a runner. It panics on options that Validate rejects: they are
// a programming error here; Serve returns them as an error instead.
func New(o Options) *Runner {
	if err := o.Validate(); err != nil {
		panic("simrunner: " + err.Error())
	}
	r := &Runner{o: o.withDefaults(), loads: map[string]chan struct{}{}, maxBody: maxBody}
	if o.Name != "" {
		r.name.Store(&o.Name)
	}
	r.reg = newRegistry(r)
	r.metrics = promhttp.HandlerFor(r.reg, promhttp.HandlerOpts{})
	return r
}

// Stats returns a snapshot.
func (r *Runner) Stats() Stats {
	name := r.currentName(nil)
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.stats
	return Stats{
		Name:        name,
		Requests:    s[cRequests],
		Hits:        s[cHits],
		Misses:      s[cMisses],
		ColdLoads:   s[cColdLoads],
		Evictions:   s[cEvictions],
		Rejected:    s[cRejected],
		Canceled:    s[cCanceled],
		InFlight:    int64(r.active),
		Queued:      int64(r.waiters.Len()),
		MaxInFlight: r.maxIn,
		Models:      append([]string{}, r.models...), // [] in JSON when empty
	}
}

// Reset zeroes the Stats counters. Loaded models, in-flight and queued
// requests stay; MaxInFlight restarts from the current InFlight.
func (r *Runner) Reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.stats = [numCounters]int64{}
	r.maxIn = int64(r.active)
}

func (r *Runner) incLocked(c counter) {
	r.stats[c]++
	r.totals[c]++
}

// currentName is Options.Name, else the first local address a request
// arrived on, else "simrunner".
func (r *Runner) currentName(req *http.Request) string {
	if p := r.name.Load(); p != nil {
		return *p
	}
	if req != nil {
		if a, ok := req.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
			s := a.String()
			r.name.CompareAndSwap(nil, &s)
			return *r.name.Load()
		}
	}
	return "simrunner"
}

// ServeHTTP serves the runner's own endpoints under /_sim/ and takes
// anything else as an inference request.
func (r *Runner) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if strings.HasPrefix(req.URL.Path, "/_sim/") {
		r.serveOwn(w, req)
		return
	}
	// The body is read before the request waits for a slot: once it is
	// read, the server notices a client that goes away (its context ends),
	// so a queued request whose client gave up leaves the queue instead of
	// taking the GPU later for nobody.
	body, err := r.readBody(w, req)
	if err != nil {
		status := http.StatusBadRequest
		if _, tooBig := errors.AsType[*http.MaxBytesError](err); tooBig {
			status = http.StatusRequestEntityTooLarge
		}
		if req.Context().Err() != nil {
			r.writeCanceled(w, req, req.Context().Err())
			return
		}
		r.writeJSON(w, req, status, map[string]any{"error": "reading body: " + err.Error()})
		return
	}
	r.mu.Lock()
	r.incLocked(cRequests)
	granted, wait, ok := r.admitLocked()
	r.mu.Unlock()
	if !ok {
		r.writeJSON(w, req, http.StatusServiceUnavailable, map[string]any{
			"error":  fmt.Sprintf("runner busy: %d requests in flight", r.o.MaxConcurrency),
			"runner": r.currentName(req),
		})
		return
	}
	if !granted {
		if err := r.awaitSlot(req.Context(), wait); err != nil {
			r.writeCanceled(w, req, err)
			return
		}
	}
	defer r.release()

	j := parseJob(body, req.Header)
	hit := false
	if j.model != "" {
		if hit, err = r.ensureLoaded(req.Context(), j.model); err != nil {
			r.writeCanceled(w, req, err)
			return
		}
	}
	if err := r.o.Sleep(req.Context(), j.inferTime(r.o.InferTime)); err != nil {
		r.writeCanceled(w, req, err)
		return
	}
	answer := map[string]any{
		"runner":  r.currentName(req),
		"model":   j.model,
		"hit":     hit,
		"path":    req.URL.Path,
		"method":  req.Method,
		"headers": echoHeaders(req.Header),
	}
	if j.imageURL != "" {
		// The image "made" from the input: its URL with the work done
		// (the path's last segment) appended, so a pipeline's chain of
		// steps can be read off its final answer.
		answer["image_url"] = j.imageURL + "+" + path.Base(req.URL.Path)
	}
	r.writeJSON(w, req, http.StatusOK, answer)
}

func (r *Runner) readBody(w http.ResponseWriter, req *http.Request) ([]byte, error) {
	if req.Body == nil || req.Body == http.NoBody {
		return nil, nil
	}
	return io.ReadAll(http.MaxBytesReader(w, req.Body, r.maxBody))
}

// ensureLoaded makes model the most recently used one, loading it unless it
// is held, and says whether it was held. Concurrent requests for a model
// being loaded wait for that load instead of loading it again.
func (r *Runner) ensureLoaded(ctx context.Context, model string) (hit bool, err error) {
	r.mu.Lock()
	if r.touchLocked(model) {
		r.incLocked(cHits)
		r.mu.Unlock()
		return true, nil
	}
	r.incLocked(cMisses)
	for {
		// Here r.mu is held and model is not loaded.
		if done, ok := r.loads[model]; ok {
			r.mu.Unlock()
			select {
			case <-done:
			case <-ctx.Done():
				return false, ctx.Err()
			}
			r.mu.Lock()
			if r.touchLocked(model) {
				r.mu.Unlock()
				return false, nil
			}
			// The load was abandoned (its client went away) or the model
			// was evicted already: load it ourselves.
			continue
		}
		done := make(chan struct{})
		r.loads[model] = done
		r.mu.Unlock()

		err := r.o.Sleep(ctx, r.o.LoadTime)

		r.mu.Lock()
		delete(r.loads, model)
		if err == nil {
			r.insertLocked(model)
		}
		close(done)
		r.mu.Unlock()
		return false, err
	}
}

// touchLocked moves model to the front if it is loaded.
func (r *Runner) touchLocked(model string) bool {
	i := slices.Index(r.models, model)
	if i < 0 {
		return false
	}
	copy(r.models[1:i+1], r.models[:i])
	r.models[0] = model
	return true
}

// insertLocked puts model, which is not loaded, in front, evicting the least
// recently used ones beyond the slots. (Loads of one model never overlap, so
// it cannot be loaded already.)
func (r *Runner) insertLocked(model string) {
	r.incLocked(cColdLoads)
	r.models = slices.Insert(r.models, 0, model)
	for len(r.models) > r.o.Slots {
		r.models = r.models[:len(r.models)-1]
		r.incLocked(cEvictions)
	}
}

// hints is the X-Fal-Runner-Hints value: the loaded models, most recent first.
func (r *Runner) hints() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return strings.Join(r.models, ",")
}

func (r *Runner) writeCanceled(w http.ResponseWriter, req *http.Request, err error) {
	r.mu.Lock()
	r.incLocked(cCanceled)
	r.mu.Unlock()
	r.writeJSON(w, req, StatusClientClosed, map[string]any{"error": "request canceled: " + err.Error()})
}

// writeJSON writes every response, so every response carries the hints.
func (r *Runner) writeJSON(w http.ResponseWriter, req *http.Request, status int, v any) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set(NameHeader, r.currentName(req))
	if *r.o.ProvideHints {
		h.Set(HintsHeader, r.hints())
	}
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func (r *Runner) serveOwn(w http.ResponseWriter, req *http.Request) {
	var method string
	var serve func()
	switch req.URL.Path {
	case "/_sim/stats":
		method, serve = http.MethodGet, func() { r.writeJSON(w, req, http.StatusOK, r.Stats()) }
	case "/_sim/reset":
		method, serve = http.MethodPost, func() {
			r.Reset()
			r.writeJSON(w, req, http.StatusOK, r.Stats())
		}
	case "/_sim/metrics":
		method, serve = http.MethodGet, func() {
			w.Header().Set(NameHeader, r.currentName(req))
			if *r.o.ProvideHints {
				w.Header().Set(HintsHeader, r.hints())
			}
			r.metrics.ServeHTTP(w, req)
		}
	default:
		r.writeJSON(w, req, http.StatusNotFound, map[string]any{"error": "no such endpoint: " + req.URL.Path})
		return
	}
	if req.Method != method && !(method == http.MethodGet && req.Method == http.MethodHead) {
		w.Header().Set("Allow", method)
		r.writeJSON(w, req, http.StatusMethodNotAllowed, map[string]any{"error": "method not allowed: " + req.Method})
		return
	}
	serve()
}
