package extproc

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/switchyard/switchyard/internal/decisions"
)

// The record Envoy logs is the record's own JSON, but its end: built field
// by field, it must not drift from the struct's JSON names.
func TestRecordValueIsTheRecordsJSON(t *testing.T) {
	full := &decisions.Record{
		ID: 7, Time: time.Date(2026, 11, 28, 10, 0, 0, 123456789, time.UTC), Route: "images", Rule: 1, When: "body.w > 1",
		Pool: "a100", Variant: "a100", Fallback: []string{"h100", "a6000"}, Hint: "flux", HintSource: "hint_from",
		Outcome: "busy", Queued: true, Policy: "soonest", Body: "fields", Cost: 2.5,
		Chosen:   &decisions.Candidate{Runner: "10.0.0.1:80", InFlight: 3, Warm: true, Busy: true, Wait: decisions.Millis(1500 * time.Microsecond), Predicted: decisions.Millis(2 * time.Second), Why: "warm"},
		RunnerUp: &decisions.Candidate{Runner: "10.0.0.2:80", Why: "cold"},
		HintAge:  decisions.Millis(42 * time.Millisecond), Decide: decisions.Millis(87 * time.Microsecond),
		End: &decisions.End{Status: 200},
	}
	for _, r := range []*decisions.Record{full, {Route: "r", Pool: "p", Outcome: "none", Policy: "fal", Body: "none"}} {
		b, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		delete(m, "end")
		want, err := structpb.NewStruct(m)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want.AsMap(), recordValue(r).GetStructValue().AsMap()); diff != "" {
			t.Errorf("record %d (-JSON +metadata):\n%s", r.ID, diff)
		}
	}
}
