package affinity_test

import (
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/affinity"
)

// Another replica's jobs on a runner count in soonest's estimate as if this
// replica had sent them: a warm runner busy with them is passed over for a
// load elsewhere, and is preferred again once the replica forgets them.
func TestRemoteJobs(t *testing.T) {
	rs, x := setup(t, []r{{0, "m"}, {0, ""}})
	now := time.Unix(1000, 0)
	p := affinity.NewPicker(affinity.PickerOptions{Index: x, Mode: affinity.ModeSoonest, Now: func() time.Time { return now }})
	q := affinity.Request{Hint: "m", MaxConcurrency: 1}
	if got := p.PickCost(rs, q); got.Runners[0] != rs[0] || got.Outcome != affinity.OutcomeHit {
		t.Fatalf("free warm runner: %v %s", indices(rs, got.Runners), got.Outcome)
	}
	p.SetRemote("edge-b", map[string][]affinity.JobInfo{rs[0].Address: {{Hint: "m", Cost: 10 * time.Second, Age: time.Second}}})
	if got := p.PickCost(rs, q); got.Runners[0] != rs[1] || got.Outcome != affinity.OutcomeBusy {
		t.Errorf("warm runner busy with another replica's 10 s job: %v %s, want runner 1 (busy)", indices(rs, got.Runners), got.Outcome)
	}
	// A model on its way from another replica is warm here too.
	p.SetRemote("edge-c", map[string][]affinity.JobInfo{rs[1].Address: {{Hint: "n", Cost: 50 * time.Millisecond}}})
	if got := p.PickCost(rs, affinity.Request{Hint: "n", MaxConcurrency: 2}); got.Runners[0] != rs[1] || got.Outcome != affinity.OutcomeHit {
		t.Errorf("model on its way from another replica: %v %s, want runner 1 (hit)", indices(rs, got.Runners), got.Outcome)
	}
	p.SetRemote("edge-b", nil)
	if got := p.PickCost(rs, q); got.Runners[0] != rs[0] || got.Outcome != affinity.OutcomeHit {
		t.Errorf("after the replica's share is forgotten: %v %s, want runner 0 (hit)", indices(rs, got.Runners), got.Outcome)
	}

	// What this replica shares: its own jobs only, with their age.
	j := p.Begin(affinity.Pick{Runners: rs[:1], Outcome: affinity.OutcomeHit}, affinity.Request{Hint: "m"})
	now = now.Add(300 * time.Millisecond)
	jobs := p.Jobs()
	if len(jobs) != 1 || len(jobs[rs[0].Address]) != 1 {
		t.Fatalf("Jobs() = %v, want one job on runner 0", jobs)
	}
	if got := jobs[rs[0].Address][0]; got.Hint != "m" || got.Age != 300*time.Millisecond || got.Cost <= 0 {
		t.Errorf("job = %+v", got)
	}
	j.Done()
	if jobs := p.Jobs(); len(jobs) != 0 {
		t.Errorf("Jobs() after Done = %v", jobs)
	}
}
