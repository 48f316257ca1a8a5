package policy_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/switchyard/switchyard/internal/affinity"
	"github.com/switchyard/switchyard/internal/bodyfields"
	"github.com/switchyard/switchyard/internal/config"
	"github.com/switchyard/switchyard/internal/policy"
	"github.com/switchyard/switchyard/internal/registry"
)

const base = `
listeners: [{name: l, address: 127.0.0.1, port: 10000}]
pools:
  - {name: a100, max_concurrency: 2, runners: [{address: 10.0.0.1:80}, {address: 10.0.0.2:80}]}
  - {name: h100, runners: [{address: 10.0.1.1:80}]}
  - {name: a6000, runners: [{address: 10.0.2.1:80}]}
  - {name: v1, runners: [{address: 10.0.3.1:80}]}
  - {name: v2, runners: [{address: 10.0.3.2:80}]}
  - {name: empty}
routes:
  - name: ab
    match: {prefix: /ab}
    rules: [{split: {weights: {v1: 80, v2: 20}}}]
  - name: sticky
    match: {prefix: /sticky}
    rules: [{split: {sticky_key: 'headers["x-user-id"]', weights: {v1: 80, v2: 20}}}]
  - name: strict
    match: {prefix: /strict}
    on_invalid_body: reject
    rules: [{when: 'body.width > 1', pool: h100}, {pool: a100}]
  - name: to-empty
    match: {prefix: /empty}
    rules: [{pool: empty, fallback: [a6000]}]
  - name: images
    match: {prefix: /}
    hint_from: body.model
    rules:
      - when: body.width * body.height <= 1048576
        pool: a100
        fallback: [a6000]
      - when: 'headers["x-tier"] == "big" || method == "PUT" || path.startsWith("/big")'
        pool: h100
      - pool: h100
        fallback: [a6000]
`

type env struct {
	cfg    *config.Config
	engine *policy.Engine
	hints  *affinity.Index
}

func setup(t *testing.T, yaml string) env {
	t.Helper()
	cfg, err := config.Parse("t.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	runners := registry.New(registry.Options{})
	runners.ApplyConfig(cfg)
	hints := affinity.NewIndex(affinity.IndexOptions{})
	picker := affinity.NewPicker(affinity.PickerOptions{Index: hints, Rand: rand.NewPCG(1, 2), Mode: affinity.ModeLoadingMarks})
	return env{cfg: cfg, hints: hints, engine: policy.New(policy.Options{Runners: runners, Hints: hints, Pickers: map[config.HintPolicy]policy.Picker{
		config.HintLoadingMarks: picker, config.HintFal: picker,
		config.HintSoonest: affinity.NewPicker(affinity.PickerOptions{Index: hints, Mode: affinity.ModeSoonest}),
	}})}
}

func (e env) decide(t *testing.T, route string, req policy.Request) (policy.Decision, error) {
	t.Helper()
	r, ok := e.cfg.Route(route)
	if !ok {
		t.Fatalf("no route %q", route)
	}
	return e.engine.Decide(e.cfg, r, req)
}

func body(t *testing.T, json string) (map[string]any, error) {
	return bodyfields.Compile([][]string{{"width"}, {"height"}, {"model"}}, false).Extract([]byte(json))
}

func TestRules(t *testing.T) {
	e := setup(t, base)
	tests := []struct {
		name    string
		req     policy.Request
		body    string
		target  string
		hint    string
		outcome affinity.Outcome
	}{
		{"small image", policy.Request{}, `{"width": 512, "height": 512, "model": "flux"}`, "a100+a6000", "flux", affinity.OutcomeMiss},
		{"large image", policy.Request{}, `{"width": 2048, "height": 2048}`, "h100+a6000", "", affinity.OutcomeNone},
		{"header rule", policy.Request{Headers: map[string]string{"x-tier": "big"}}, `{}`, "h100", "", affinity.OutcomeNone},
		{"method rule", policy.Request{Method: "PUT"}, `{}`, "h100", "", affinity.OutcomeNone},
		{"path rule", policy.Request{Path: "/big/x"}, `{}`, "h100", "", affinity.OutcomeNone},
		{"hint header wins over hint_from", policy.Request{Headers: map[string]string{"x-fal-runner-hint": "sdxl"}}, `{"width": 1, "height": 1, "model": "flux"}`, "a100+a6000", "sdxl", affinity.OutcomeMiss},
		{"invalid hint header is no hint", policy.Request{Headers: map[string]string{"x-fal-runner-hint": "bad hint"}}, `{"width": 1, "height": 1, "model": "flux"}`, "a100+a6000", "", affinity.OutcomeNone},
		{"non-string derived hint", policy.Request{}, `{"width": 1, "height": 1, "model": 7}`, "a100+a6000", "", affinity.OutcomeNone},
		{"invalid body goes to the default", policy.Request{}, `not json`, "h100+a6000", "", affinity.OutcomeNone},
	}
	for _, tt := range tests {
		tt.req.Body, tt.req.BodyErr = body(t, tt.body)
		d, err := e.decide(t, "images", tt.req)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if d.Target.Name() != tt.target || d.Hint != tt.hint || d.Outcome != tt.outcome {
			t.Errorf("%s: target %q hint %q outcome %q; want %q %q %q", tt.name, d.Target.Name(), d.Hint, d.Outcome, tt.target, tt.hint, tt.outcome)
		}
		if len(d.Runners) == 0 || d.Runners[0].Pool != d.Target.Pool {
			t.Errorf("%s: runners %v are not of pool %s", tt.name, d.Runners, d.Target.Pool)
		}
		if len(d.Fallbacks) != len(d.Target.Fallback) {
			t.Errorf("%s: %d fallback picks for %d fallback pools", tt.name, len(d.Fallbacks), len(d.Target.Fallback))
		}
	}
}

func TestStrictRouteRejectsInvalidBody(t *testing.T) {
	e := setup(t, base)
	b, err := body(t, `width=3`)
	if _, derr := e.decide(t, "strict", policy.Request{Body: b, BodyErr: err}); !errors.Is(derr, policy.ErrInvalidBody) {
		t.Fatalf("err = %v, want ErrInvalidBody", derr)
	}
	b, err = body(t, `{"width": 3}`)
	if d, derr := e.decide(t, "strict", policy.Request{Body: b, BodyErr: err}); derr != nil || d.Target.Pool != "h100" {
		t.Fatalf("valid body: %v %v", d.Target, derr)
	}
}

func TestEmptyPoolStillDecides(t *testing.T) {
	e := setup(t, base)
	d, err := e.decide(t, "to-empty", policy.Request{})
	if err != nil || d.Target.Name() != "empty+a6000" || len(d.Runners) != 0 || d.Fallbacks[0].Address != "10.0.2.1:80" {
		t.Fatalf("decision for an empty pool: %+v %v", d, err)
	}
}

func TestRandomSplitFollowsWeights(t *testing.T) {
	e := setup(t, base)
	const n = 20000
	v2 := 0
	for range n {
		d, _ := e.decide(t, "ab", policy.Request{})
		if d.Variant != d.Target.Pool {
			t.Fatalf("variant %q but pool %q", d.Variant, d.Target.Pool)
		}
		if d.Variant == "v2" {
			v2++
		}
	}
	if share := float64(v2) / n; share < 0.18 || share > 0.22 {
		t.Errorf("v2 share %.3f, want 0.20 ± 0.02", share)
	}
}

// Sticky keys keep their variant, follow the weights, and a weight change
// moves only keys towards the variant that gained weight.
func TestStickySplit(t *testing.T) {
	e := setup(t, base)
	const users = 5000
	first := make([]string, users)
	v2 := 0
	for u := range users {
		req := policy.Request{Headers: map[string]string{"x-user-id": fmt.Sprint("user-", u)}}
		d, _ := e.decide(t, "sticky", req)
		again, _ := e.decide(t, "sticky", req)
		if d.Variant != again.Variant {
			t.Fatalf("user %d moved from %s to %s", u, d.Variant, again.Variant)
		}
		first[u] = d.Variant
		if d.Variant == "v2" {
			v2++
		}
	}
	if share := float64(v2) / users; share < 0.17 || share > 0.23 {
		t.Errorf("sticky v2 share %.3f, want about 0.20", share)
	}

	e2 := setup(t, base+"\n") // same config, new engine: stable across restarts
	moved := 0
	for u := range 200 {
		d, _ := e2.decide(t, "sticky", policy.Request{Headers: map[string]string{"x-user-id": fmt.Sprint("user-", u)}})
		if d.Variant != first[u] {
			moved++
		}
	}
	if moved != 0 {
		t.Errorf("%d users changed variant across a restart", moved)
	}

	shifted := setup(t, replaceOnce(base, "sticky_key: 'headers[\"x-user-id\"]', weights: {v1: 80, v2: 20}", "sticky_key: 'headers[\"x-user-id\"]', weights: {v1: 60, v2: 40}"))
	toV2, toV1 := 0, 0
	for u := range users {
		d, _ := shifted.decide(t, "sticky", policy.Request{Headers: map[string]string{"x-user-id": fmt.Sprint("user-", u)}})
		switch {
		case first[u] == "v1" && d.Variant == "v2":
			toV2++
		case first[u] == "v2" && d.Variant == "v1":
			toV1++
		}
	}
	if toV1 != 0 {
		t.Errorf("%d users moved away from the variant that gained weight", toV1)
	}
	if share := float64(toV2) / users; share < 0.16 || share > 0.24 {
		t.Errorf("%.3f of users moved to v2 when its weight went from 20 to 40; want about 0.20 (the minimum)", share)
	}
}

func replaceOnce(s, old, new string) string {
	for i := 0; i+len(old) <= len(s); i++ {
		if s[i:i+len(old)] == old {
			return s[:i] + new + s[i+len(old):]
		}
	}
	panic("not found: " + old)
}

func TestHintAffinityThroughPolicy(t *testing.T) {
	e := setup(t, base)
	e.hints.Report("10.0.0.2:80", "flux", true)
	b, err := body(t, `{"width": 64, "height": 64, "model": "flux"}`)
	d, _ := e.decide(t, "images", policy.Request{Body: b, BodyErr: err})
	if d.Outcome != affinity.OutcomeHit || d.Runners[0].Address != "10.0.0.2:80" {
		t.Fatalf("hint flux: outcome %s primary %s, want a hit on 10.0.0.2:80", d.Outcome, d.Runners[0].Address)
	}
}
