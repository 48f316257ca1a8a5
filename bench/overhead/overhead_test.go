package overhead

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"strings"
	"testing"
	"time"
)

// TestSmoke runs the whole benchmark briefly: every setup must start and
// answer. It fails, never skips, when Envoy or the Python router's
// dependencies are missing. The numbers themselves are not judged: timed
// assertions have no place in tests.
func TestSmoke(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var log strings.Builder
	r, err := Run(ctx, Options{Smoke: true, Log: &log})
	if err != nil {
		t.Fatalf("Run: %v\n%s", err, log.String())
	}
	t.Logf("\n%s", log.String())

	checkCPU(t, r)
	if len(r.Setups) != len(plan) {
		t.Fatalf("got %d setups, want %d", len(r.Setups), len(plan))
	}
	for i, s := range r.Setups {
		if want := plan[i].path + "/" + plan[i].payload; s.Name != want {
			t.Errorf("setup %d is %s, want %s", i, s.Name, want)
		}
		if len(s.Rates) != len(r.Rates) || len(s.Rates) == 0 {
			t.Fatalf("%s: %d rate results for rates %v", s.Name, len(s.Rates), r.Rates)
		}
		for _, rr := range s.Rates {
			if rr.Skipped != "" {
				t.Errorf("%s at %d req/s: skipped: %s", s.Name, rr.Rate, rr.Skipped)
				continue
			}
			// A second at the rate, give or take the pacer's start.
			if want := uint64(float64(rr.Rate) * r.DurationSeconds * 0.8); rr.Requests < want {
				t.Errorf("%s at %d req/s: %d requests, want at least %d", s.Name, rr.Rate, rr.Requests, want)
			}
			if rr.Success < 0.99 {
				t.Errorf("%s at %d req/s: success %.4f, want ~1; errors: %v", s.Name, rr.Rate, rr.Success, rr.Errors)
			}
			if !(0 < rr.P50Ms && rr.P50Ms <= rr.P90Ms && rr.P90Ms <= rr.P99Ms && rr.P99Ms <= rr.MaxMs) {
				t.Errorf("%s at %d req/s: latencies not positive and ordered: p50 %v p90 %v p99 %v max %v",
					s.Name, rr.Rate, rr.P50Ms, rr.P90Ms, rr.P99Ms, rr.MaxMs)
			}
			if len(rr.Rounds) != r.Rounds {
				t.Errorf("%s at %d req/s: %d rounds recorded, want %d", s.Name, rr.Rate, len(rr.Rounds), r.Rounds)
			}
			var counted uint64
			for _, b := range rr.Histogram {
				counted += b.Count
			}
			if counted != rr.Requests {
				t.Errorf("%s at %d req/s: histogram holds %d requests, want %d", s.Name, rr.Rate, counted, rr.Requests)
			}
			hasDirect := rr.AddedVsDirect != nil
			hasEnvoy := rr.AddedVsEnvoy != nil
			if wantDirect, wantEnvoy := s.Path != PathDirect, s.Path != PathDirect && s.Path != PathEnvoy; hasDirect != wantDirect || hasEnvoy != wantEnvoy {
				t.Errorf("%s: added vs direct %v (want %v), vs envoy %v (want %v)", s.Name, hasDirect, wantDirect, hasEnvoy, wantEnvoy)
			}
		}
	}
	// The four design targets and, at the smoke run's one rate, the two
	// highest-rate comparisons with the Go router (its rate comparisons
	// are at 500 and 1,000 req/s, not tried here).
	if len(r.Targets) != 6 {
		t.Errorf("got %d targets, want 6", len(r.Targets))
	}
	for _, tg := range r.Targets {
		if tg.Met == nil {
			t.Errorf("target %q was not measured", tg.Name)
		}
	}
	if r.EnvoyVersion == "" || r.PythonVersion == "" {
		t.Errorf("versions not recorded: envoy %q, python %q", r.EnvoyVersion, r.PythonVersion)
	}

	if _, err := json.Marshal(r); err != nil {
		t.Errorf("marshal: %v", err)
	}
	md := r.Markdown()
	for _, want := range []string{"## Edge overhead", "switchyard", "python-router", "Highest rate held", "Targets"} {
		if !strings.Contains(md, want) {
			t.Errorf("Markdown lacks %q", want)
		}
	}
	t.Logf("\n%s", md)
}

// checkCPU checks the CPU figures of a smoke run: none for direct, one for
// every other setup, and the Envoy and switchyard paths (and switchyard's
// two parts) used some CPU over their payloads: a cell of 10 requests may
// well fall within one 10 ms clock tick, a path's 210 may not.
func checkCPU(t *testing.T, r *Result) {
	t.Helper()
	if !cpuMeasured {
		return
	}
	type sum struct{ total, switchyard, envoy float64 }
	byPath := map[string]*sum{}
	for _, s := range r.Setups {
		for _, rr := range s.Rates {
			if rr.Skipped != "" {
				continue
			}
			c := rr.CPU
			if (c != nil) != (s.Path != PathDirect) {
				t.Errorf("%s at %d req/s: CPU %+v, want one for every path but direct", s.Name, rr.Rate, c)
				continue
			}
			if c == nil {
				continue
			}
			if want := round3(c.Ms / float64(rr.Requests) * 1000); c.MsPer1000 != want || c.Ms < 0 {
				t.Errorf("%s at %d req/s: %v ms per 1000 requests, want %v (%v ms over %d requests)", s.Name, rr.Rate, c.MsPer1000, want, c.Ms, rr.Requests)
			}
			split := c.SwitchyardMsPer1000 != nil && c.EnvoyMsPer1000 != nil
			if split != (s.Path == PathSwitchyard || s.Path == PathModule) || (!split && (c.SwitchyardMsPer1000 != nil || c.EnvoyMsPer1000 != nil)) {
				t.Errorf("%s at %d req/s: CPU parts switchyard %v, Envoy %v: want both for the switchyard stacks, neither elsewhere",
					s.Name, rr.Rate, c.SwitchyardMsPer1000, c.EnvoyMsPer1000)
			}
			p := byPath[s.Path]
			if p == nil {
				p = &sum{}
				byPath[s.Path] = p
			}
			p.total += c.Ms
			if split {
				if parts := *c.SwitchyardMsPer1000 + *c.EnvoyMsPer1000; math.Abs(parts-c.MsPer1000) > 0.01 {
					t.Errorf("%s at %d req/s: CPU parts %v + %v do not add up to %v", s.Name, rr.Rate, *c.SwitchyardMsPer1000, *c.EnvoyMsPer1000, c.MsPer1000)
				}
				p.switchyard += *c.SwitchyardMsPer1000
				p.envoy += *c.EnvoyMsPer1000
			}
		}
	}
	for _, path := range []string{PathEnvoy, PathSwitchyard, PathModule} {
		if p := byPath[path]; p == nil || p.total <= 0 {
			t.Errorf("%s: no CPU time measured over its payloads", path)
		}
	}
	if p := byPath[PathSwitchyard]; p != nil && (p.switchyard <= 0 || p.envoy <= 0) {
		t.Errorf("switchyard: CPU over its payloads: switchyard %v, Envoy %v ms per 1000 requests; want both > 0", p.switchyard, p.envoy)
	}
}

// routerTargets compare each switchyard path's added latency over Envoy
// alone with the Go router's over direct, at the rates tried.
func TestRouterTargets(t *testing.T) {
	at := func(path, payload string, maxRate int, added ...Added) SetupResult {
		s := SetupResult{Name: path + "/" + payload, Path: path, Payload: payload, MaxRate: maxRate}
		for _, a := range added {
			a := a
			rr := RateResult{AddedVsEnvoy: &a}
			if path == PathGoRouter {
				rr = RateResult{AddedVsDirect: &a}
			}
			s.Rates = append(s.Rates, rr)
		}
		return s
	}
	r := &Result{Rates: []int{500, 1000}, Setups: []SetupResult{
		at(PathGoRouter, PayloadHeaders, 1000, Added{0.2, 1.0}, Added{0.2, 1.1}),
		at(PathGoRouter, Payload64KB, 500, Added{0.5, 3.0}, Added{1.0, 7.0}),
		at(PathModule, PayloadHeaders, 1000, Added{0.1, 0.5}, Added{0.16, 0.7}),
		at(PathModule, Payload64KB, 1000, Added{0.6, 1.5}, Added{1.5, 9.0}),
	}}
	got := map[string]bool{}
	for _, tg := range r.routerTargets() {
		got[fmt.Sprintf("%s@%d", tg.Name, tg.Rate)] = tg.Met != nil && *tg.Met
	}
	want := map[string]bool{
		"switchyard-module adds over Envoy alone ≤ the Go router hop over direct, p50 (headers)@1000": true,
		"switchyard-module adds over Envoy alone ≤ the Go router hop over direct, p99 (headers)@1000": true,
		"switchyard-module adds over Envoy alone ≤ the Go router hop over direct, p50 (64KB)@500":     false,
		"switchyard-module adds over Envoy alone ≤ the Go router hop over direct, p99 (64KB)@500":     true,
		"switchyard-module adds over Envoy alone ≤ the Go router hop over direct, p50 (64KB)@1000":    false,
		"switchyard-module adds over Envoy alone ≤ the Go router hop over direct, p99 (64KB)@1000":    false,
		"switchyard-module holds as high a rate as the Go router (64KB)@0":                            true,
	}
	if !maps.Equal(got, want) {
		t.Errorf("targets met:\n got %v\nwant %v", got, want)
	}
}
