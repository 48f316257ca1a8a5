// Package supervisetest has checks shared by the tests of package supervise
// and of the packages that wrap it (envoy), so that a wrapper is held to the
// same stop contract as the supervisor itself.
package supervisetest

import "testing"

// Stopper is the part of a supervised process's API that StopCleanly checks;
// supervise.Process and envoy.Process both have it.
type Stopper interface {
	Stop() error
	Done() <-chan struct{}
	Wait() error
}

// StopCleanly stops p, which must be running a child that exits with status
// 0 on SIGTERM, and checks Stop's contract: nil from the first and a second
// call, Done closed once Stop has returned, and a clean exit from Wait.
func StopCleanly(t testing.TB, p Stopper) {
	t.Helper()
	for i := range 2 {
		if err := p.Stop(); err != nil {
			t.Errorf("Stop #%d: %v", i+1, err)
		}
		select {
		case <-p.Done():
		default:
			t.Errorf("Done not closed after Stop #%d returned", i+1)
		}
	}
	if err := p.Wait(); err != nil {
		t.Errorf("Wait after SIGTERM = %v, want clean exit", err)
	}
}
