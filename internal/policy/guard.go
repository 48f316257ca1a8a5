package policy

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchyard/switchyard/internal/config"
)

// A split variant's state: in the split at its weight, out of it, or
// back at its guard's probe weight after a cool-down.
const (
	VariantActive  = "active"
	VariantEjected = "ejected"
	VariantProbing = "probing"
)

// ErrNoSuchVariant is returned for a route and pool that name no split
// variant.
var ErrNoSuchVariant = errors.New("no split of the route has that pool as a variant")

// ErrLastVariant refuses to take a split's last variant in it out.
var ErrLastVariant = errors.New("the variant is the split's last one in service")

// variantKey names one variant of one split: a route's rule and a pool.
type variantKey struct {
	route string
	rule  int
	pool  string
}

// variantState is what a split knows of one variant: its state, and for a
// guarded one, the ends of its recent requests. Guarded by guards.mu.
type variantState struct {
	state  string
	since  time.Time
	reason string
	// samples are the variant's requests that ended within the guard's
	// window, oldest first (at most config.MaxGuardSamples).
	samples []guardSample
	errs    int
}

type guardSample struct {
	at      time.Time
	err     bool
	latency time.Duration
}

// guards holds the state of every split variant that left its default
// (active, at its weight): ejected or probing ones, and the guarded
// ones' windows. Unguarded splits that no operator touched read nothing.
type guards struct {
	// tracked is len(variants): zero, no split has left its default.
	tracked  atomic.Int32
	mu       sync.Mutex
	variants map[variantKey]*variantState
	log      *slog.Logger
	metrics  *Metrics
}

func newGuards(log *slog.Logger, m *Metrics) *guards {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &guards{variants: map[variantKey]*variantState{}, log: log, metrics: m}
}

// track returns the variant's state, tracking it from now. Called with
// g.mu held.
func (g *guards) track(k variantKey, now time.Time) *variantState {
	st := g.variants[k]
	if st == nil {
		st = &variantState{state: VariantActive, since: now}
		g.variants[k] = st
		g.tracked.Store(int32(len(g.variants)))
	}
	return st
}

// weights are the split's variants' weights now: an ejected variant's is
// 0, a probing one's its guard's probe weight. A variant whose cool-down
// ended starts probing here.
func (g *guards) weights(route string, rule int, s *config.Split, now time.Time, out []int) []int {
	out = out[:0]
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, v := range s.Variants {
		w := v.Weight
		if st, ok := g.variants[variantKey{route, rule, v.Pool}]; ok {
			if st.state == VariantEjected && v.Guard != nil && v.Guard.CoolDown > 0 && now.Sub(st.since) >= v.Guard.CoolDown.Std() {
				g.change(variantKey{route, rule, v.Pool}, st, VariantProbing, now, "cool-down over")
			}
			switch st.state {
			case VariantEjected:
				w = 0
			case VariantProbing:
				w = v.Guard.ProbeWeight
			}
		}
		out = append(out, w)
	}
	return out
}

// observe learns a guarded variant's request end, and takes the variant
// out of its split when its window breaches the guard (or, probing, puts
// it back at its weight after a whole window within it).
func (g *guards) observe(k variantKey, guard *config.Guard, now time.Time, failed bool, latency time.Duration) {
	g.mu.Lock()
	defer g.mu.Unlock()
	st := g.track(k, now)
	if st.state == VariantEjected {
		return // a request decided before the variant left
	}
	st.samples = append(st.samples, guardSample{at: now, err: failed, latency: latency})
	if failed {
		st.errs++
	}
	drop := 0
	for drop < len(st.samples) && (now.Sub(st.samples[drop].at) > guard.Window.Std() || len(st.samples)-drop > config.MaxGuardSamples) {
		if st.samples[drop].err {
			st.errs--
		}
		drop++
	}
	st.samples = st.samples[drop:]
	if len(st.samples) < guard.MinRequests {
		return
	}
	if reason := breach(st, guard); reason != "" {
		g.change(k, st, VariantEjected, now, reason)
		return
	}
	if st.state == VariantProbing && now.Sub(st.since) >= guard.Window.Std() {
		g.change(k, st, VariantActive, now, "a window within the guard while probing")
	}
}

// breach says how the window breaks the guard, "" when it does not.
func breach(st *variantState, guard *config.Guard) string {
	n := len(st.samples)
	if rate := float64(st.errs) / float64(n); guard.MaxErrorRate > 0 && rate > guard.MaxErrorRate {
		return fmt.Sprintf("error rate %.1f%% over %d requests, above %.1f%%", 100*rate, n, 100*guard.MaxErrorRate)
	}
	if guard.MaxLatency > 0 {
		if p95 := quantile95(st.samples); p95 > guard.MaxLatency.Std() {
			return fmt.Sprintf("p95 latency %v over %d requests, above %v", p95.Round(time.Millisecond), n, guard.MaxLatency.Std())
		}
	}
	return ""
}

func quantile95(ss []guardSample) time.Duration {
	l := make([]time.Duration, len(ss))
	for i, s := range ss {
		l[i] = s.latency
	}
	slices.Sort(l)
	return l[(len(l)*95)/100]
}

// change moves a variant to state, logged and counted; a variant back in
// the split starts a fresh window.
func (g *guards) change(k variantKey, st *variantState, state string, now time.Time, reason string) {
	from := st.state
	st.state, st.since, st.reason = state, now, reason
	st.samples, st.errs = nil, 0
	g.log.Warn("split variant "+state, "route", k.route, "rule", k.rule, "pool", k.pool, "from", from, "reason", reason)
	if g.metrics != nil {
		g.metrics.variantChanges.WithLabelValues(k.route, k.pool, state).Inc()
	}
}

// set is an operator's enabling or disabling of a variant in every split
// of the route that has it.
func (g *guards) set(cfg *config.Config, route, pool string, enabled bool, now time.Time) error {
	r, ok := cfg.Route(route)
	if !ok {
		return fmt.Errorf("%w: unknown route %q", ErrNoSuchVariant, route)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	found := false
	for i, rule := range r.Rules {
		if rule.Split == nil || !slices.ContainsFunc(rule.Split.Variants, func(v config.Variant) bool { return v.Pool == pool }) {
			continue
		}
		found = true
		k := variantKey{route, i, pool}
		st := g.track(k, now)
		switch {
		case enabled && st.state != VariantActive:
			g.change(k, st, VariantActive, now, "enabled by an operator")
		case !enabled && st.state != VariantEjected:
			for _, v := range rule.Split.Variants {
				if o, ok := g.variants[variantKey{route, i, v.Pool}]; v.Pool != pool && (!ok || o.state != VariantEjected) {
					g.change(k, st, VariantEjected, now, "disabled by an operator")
					break
				}
			}
			if st.state != VariantEjected {
				return ErrLastVariant
			}
		}
	}
	if !found {
		return fmt.Errorf("%w: route %q, pool %q", ErrNoSuchVariant, route, pool)
	}
	return nil
}

// SplitStatus is one split of a route as it stands.
type SplitStatus struct {
	Route    string          `json:"route"`
	Rule     int             `json:"rule"`
	Variants []VariantStatus `json:"variants"`
}

// VariantStatus is one variant: its configured and current weight, its
// state since when and why, and its guard's window.
type VariantStatus struct {
	Pool     string        `json:"pool"`
	Weight   int           `json:"weight"`
	Current  int           `json:"current_weight"`
	State    string        `json:"state"`
	Since    *time.Time    `json:"since,omitempty"`
	Reason   string        `json:"reason,omitempty"`
	Guard    *config.Guard `json:"guard,omitempty"`
	Requests int           `json:"window_requests"`
	Errors   int           `json:"window_errors"`
}

func (g *guards) status(cfg *config.Config, now time.Time) []SplitStatus {
	var out []SplitStatus
	var ws []int
	for _, r := range cfg.Routes {
		for i, rule := range r.Rules {
			if rule.Split == nil {
				continue
			}
			ws = g.weights(r.Name, i, rule.Split, now, ws)
			s := SplitStatus{Route: r.Name, Rule: i}
			g.mu.Lock()
			for j, v := range rule.Split.Variants {
				vs := VariantStatus{Pool: v.Pool, Weight: v.Weight, Current: ws[j], State: VariantActive, Guard: v.Guard}
				if st, ok := g.variants[variantKey{r.Name, i, v.Pool}]; ok {
					since := st.since
					vs.State, vs.Since, vs.Reason, vs.Requests, vs.Errors = st.state, &since, st.reason, len(st.samples), st.errs
				}
				s.Variants = append(s.Variants, vs)
			}
			g.mu.Unlock()
			out = append(out, s)
		}
	}
	return out
}
