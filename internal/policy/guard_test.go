package policy_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/config"
	"github.com/switchyard/switchyard/internal/policy"
	"github.com/switchyard/switchyard/internal/registry"
)

const guarded = `
listeners: [{name: l, address: 127.0.0.1, port: 10000}]
pools:
  - {name: stable, load_balancer: {policy: round_robin}, runners: [{address: 10.0.3.1:80}]}
  - {name: candidate, load_balancer: {policy: round_robin}, runners: [{address: 10.0.3.2:80}]}
routes:
  - name: ab
    match: {prefix: /}
    rules:
      - split:
          sticky_key: 'headers["x-user-id"]'
          weights: {stable: 80, candidate: 20}
          guards:
            candidate: {max_error_rate: 0.2, window: 10s, min_requests: 10, cool_down: 30s, probe_weight: 20}
`

// A guarded variant whose requests fail leaves its split once its window
// holds enough of them: its users move to the other variant, the other
// variant's users stay where they were; after the cool-down it probes, and
// a window within the guard puts it back at its weight.
func TestGuardedSplit(t *testing.T) {
	cfg, err := config.Parse("t.yaml", []byte(guarded))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1000, 0)
	runners := registry.New(registry.Options{})
	runners.ApplyConfig(cfg)
	e := policy.New(policy.Options{Runners: runners, Now: func() time.Time { return now }})
	route, _ := cfg.Route("ab")
	assign := func() map[string]string {
		out := map[string]string{}
		for u := range 400 {
			user := fmt.Sprint("user-", u)
			d, err := e.Decide(cfg, route, policy.Request{Headers: map[string]string{"x-user-id": user}})
			if err != nil {
				t.Fatal(err)
			}
			out[user] = d.Variant
		}
		return out
	}
	// end sends a request of user and reports its end with status.
	end := func(user string, status int) policy.Decision {
		d, _ := e.Decide(cfg, route, policy.Request{Headers: map[string]string{"x-user-id": user}})
		e.Finish(e.Await(e.Dispatch(cfg, d), time.Minute), policy.Response{Status: status, Runner: "x", Elapsed: 10 * time.Millisecond})
		return d
	}
	before := assign()
	var candidates []string
	for u, v := range before {
		if v == "candidate" {
			candidates = append(candidates, u)
		}
	}
	if n := len(candidates); n < 40 || n > 120 {
		t.Fatalf("%d of 400 users on the candidate, want about 80", n)
	}

	// Healthy: 9 of 10 answered, within the 20 % limit.
	for i := range 10 {
		end(candidates[i], map[bool]int{true: 500, false: 200}[i == 0])
	}
	if st := state(t, e, cfg, "candidate"); st.State != policy.VariantActive || st.Requests != 10 || st.Errors != 1 {
		t.Fatalf("healthy candidate: %+v", st)
	}
	// Failing: the window goes over 20 % errors.
	for i := range 3 {
		now = now.Add(time.Second)
		end(candidates[i], 503)
	}
	st := state(t, e, cfg, "candidate")
	if st.State != policy.VariantEjected || st.Current != 0 || st.Reason == "" {
		t.Fatalf("failing candidate: %+v", st)
	}
	after := assign()
	for u, v := range before {
		if v == "stable" && after[u] != "stable" {
			t.Errorf("user %s moved from the stable variant to %s", u, after[u])
		}
		if after[u] != "stable" {
			t.Errorf("user %s still sent to %s while the candidate is out", u, after[u])
		}
	}

	// After the cool-down the candidate probes at its probe weight; a
	// whole window within the guard puts it back.
	now = now.Add(31 * time.Second)
	if st := state(t, e, cfg, "candidate"); st.State != policy.VariantProbing || st.Current != 20 {
		t.Fatalf("after the cool-down: %+v", st)
	}
	for i := range 10 {
		now = now.Add(time.Second)
		end(candidates[i%len(candidates)], 200)
	}
	if st := state(t, e, cfg, "candidate"); st.State != policy.VariantActive || st.Current != 20 {
		t.Fatalf("after a good window: %+v", st)
	}
	if got := assign(); fmt.Sprint(got) != fmt.Sprint(before) {
		t.Error("back at its weight, the candidate did not get its users back")
	}
}

func TestSetVariant(t *testing.T) {
	cfg, err := config.Parse("t.yaml", []byte(guarded))
	if err != nil {
		t.Fatal(err)
	}
	runners := registry.New(registry.Options{})
	runners.ApplyConfig(cfg)
	e := policy.New(policy.Options{Runners: runners})
	if err := e.SetVariant(cfg, "ab", "candidate", false); err != nil {
		t.Fatal(err)
	}
	if st := state(t, e, cfg, "candidate"); st.State != policy.VariantEjected || st.Reason != "disabled by an operator" {
		t.Errorf("disabled: %+v", st)
	}
	if err := e.SetVariant(cfg, "ab", "stable", false); !errors.Is(err, policy.ErrLastVariant) {
		t.Errorf("disabling the last variant in service: %v, want ErrLastVariant", err)
	}
	if err := e.SetVariant(cfg, "ab", "candidate", true); err != nil || state(t, e, cfg, "candidate").State != policy.VariantActive {
		t.Errorf("enabled again: %v, %+v", err, state(t, e, cfg, "candidate"))
	}
	for _, bad := range [][2]string{{"nope", "candidate"}, {"ab", "nope"}} {
		if err := e.SetVariant(cfg, bad[0], bad[1], true); !errors.Is(err, policy.ErrNoSuchVariant) {
			t.Errorf("%v: %v, want ErrNoSuchVariant", bad, err)
		}
	}
}

func state(t *testing.T, e *policy.Engine, cfg *config.Config, pool string) policy.VariantStatus {
	t.Helper()
	for _, s := range e.Splits(cfg) {
		for _, v := range s.Variants {
			if v.Pool == pool {
				return v
			}
		}
	}
	t.Fatalf("no variant %s", pool)
	return policy.VariantStatus{}
}
