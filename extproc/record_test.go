package extproc_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/decisions"
	"github.com/switchyard/switchyard/internal/policy"
)

// A decided request leaves a record saying which rule matched, where the
// hint came from and what was known of the runners; its end is filled in
// from the access-log report; a client that asks gets it in the decision's
// metadata when the config allows it, and only then.
func TestDecisionRecord(t *testing.T) {
	for _, explain := range []bool{false, true} {
		cfg := testConfig + "responses: {explain: " + map[bool]string{false: "false", true: "true"}[explain] + "}\nhints: {policy: soonest}\n"
		f := newFixture(t, cfg)
		f.hints.Report("10.0.0.2:80", "flux", true)
		s := f.open()
		s.exchange(requestHeaders("images", "/x", false, "x-switchyard-explain", "1"))
		resp := s.exchange(requestBody(`{"model": "flux", "width": 512, "height": 512}`))
		s.ended(t)

		recs := f.ring.List(decisions.Filter{})
		if len(recs) != 1 {
			t.Fatalf("explain %v: %d records, want 1", explain, len(recs))
		}
		r := recs[0]
		if r.Route != "images" || r.Rule != 0 || r.When != "body.width * body.height <= 1048576" || r.Pool != "small" ||
			r.Hint != "flux" || r.HintSource != policy.HintFromSource || r.Outcome != "hit" || r.Policy != "soonest" || r.Body != "whole" {
			t.Errorf("record %+v", r)
		}
		if r.Chosen == nil || r.Chosen.Runner != "10.0.0.2:80" || !r.Chosen.Warm || !strings.HasPrefix(r.Chosen.Why, "warm, free") {
			t.Errorf("chosen %+v, want the warm free runner", r.Chosen)
		}
		if r.RunnerUp == nil || r.RunnerUp.Runner != "10.0.0.1:80" || r.RunnerUp.Warm || !strings.HasPrefix(r.RunnerUp.Why, "cold") {
			t.Errorf("runner-up %+v, want the cold one", r.RunnerUp)
		}
		if r.HintAge.Std() <= 0 || r.HintAge.Std() > time.Minute || r.Decide.Std() <= 0 || r.End != nil {
			t.Errorf("hint age %v, decide %v, end %v", r.HintAge.Std(), r.Decide.Std(), r.End)
		}

		got := own(resp)["explain"]
		if !explain {
			if got != "" {
				t.Errorf("explain off: the record was handed to Envoy: %s", got)
			}
		} else {
			var back decisions.Record
			if err := json.Unmarshal([]byte(got), &back); err != nil || back.Route != "images" || back.Chosen == nil || back.Chosen.Runner != "10.0.0.2:80" {
				t.Errorf("explain header %q (%v)", got, err)
			}
		}

		f.engine.Finish(own(resp)["flight"], policy.Response{Runner: "10.0.0.2:80", Status: 200, Elapsed: 40 * time.Millisecond})
		end := f.ring.List(decisions.Filter{Runner: "10.0.0.2:80"})[0].End
		if end == nil || end.Status != 200 || end.Runner != "10.0.0.2:80" || end.Elapsed.Std() != 40*time.Millisecond {
			t.Errorf("end %+v", end)
		}
	}
}

func TestDecisionsOff(t *testing.T) {
	f := newFixture(t, testConfig+"observe: {decisions: 0}\n")
	s := f.open()
	s.exchange(requestHeaders("headers-only", "/h/x", true))
	s.ended(t)
	if n := len(f.ring.List(decisions.Filter{})); n != 0 {
		t.Errorf("%d records kept with observe.decisions 0", n)
	}
}
