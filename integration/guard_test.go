package integration

import (
	"fmt"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/dev/simrunner"
)

// A candidate that starts failing leaves its split within its guard's
// window: its users move to the stable variant, which answers everyone,
// and the clients see no error past the few that filled the window. An
// operator puts it back.
func TestGuardedSplitDrainsFailingCandidate(t *testing.T) {
	var failing atomic.Bool
	stable := StartRunner(t, "stable-1", simrunner.Options{})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sim := simrunner.New(simrunner.Options{Name: "candidate-1"})
	srv := &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if failing.Load() {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusInternalServerError)
			fmt.Fprint(w, `{"error": "model crashed"}`)
			return
		}
		sim.ServeHTTP(w, r)
	})}
	go srv.Serve(lis)
	t.Cleanup(func() { _ = srv.Close() })

	s := NewStack(t, StackConfig{Body: `
pools:
  - {name: stable, runners: [{address: ` + stable.Addr + `}]}
  - {name: candidate, runners: [{address: ` + lis.Addr().String() + `}]}
routes:
  - name: ab
    match: {prefix: /}
    rules:
      - split:
          sticky_key: 'headers["x-user-id"]'
          weights: {stable: 50, candidate: 50}
          guards:
            candidate: {max_error_rate: 0.1, window: 30s, min_requests: 10}
`})
	send := func(i int) Reply {
		return s.MustDo(http.MethodPost, "/gen", map[string]string{"x-user-id": fmt.Sprint("user-", i)}, `{"model": "sdxl"}`)
	}
	// Healthy: both variants serve.
	seen := map[string]int{}
	for i := range 60 {
		r := send(i)
		if r.Status != http.StatusOK {
			t.Fatalf("healthy: status %d", r.Status)
		}
		seen[r.Header.Get("x-switchyard-variant")]++
		s.Settle(0)
	}
	if seen["stable"] == 0 || seen["candidate"] == 0 {
		t.Fatalf("healthy split served %v", seen)
	}

	failing.Store(true)
	errorsSeen, lastError := 0, -1
	for i := 60; i < 200; i++ {
		r := send(i)
		if r.Status != http.StatusOK {
			errorsSeen++
			lastError = i
			if r.Header.Get("x-switchyard-variant") != "candidate" {
				t.Errorf("request %d: status %d from %q", i, r.Status, r.Header.Get("x-switchyard-variant"))
			}
		} else if v := r.Header.Get("x-switchyard-variant"); lastError >= 0 && v != "stable" {
			t.Errorf("request %d after the candidate left: variant %q", i, v)
		}
		s.Settle(0)
	}
	// The window held 60 good requests (well, the candidate's share of
	// them); more than 10 % errors over it takes at most a handful.
	t.Logf("%d errors, the last at request %d", errorsSeen, lastError)
	if errorsSeen == 0 || errorsSeen > 8 || lastError > 120 {
		t.Errorf("%d client errors, the last at request %d: want the candidate out after a few", errorsSeen, lastError)
	}
	var splits struct {
		Splits []struct {
			Route    string
			Variants []struct {
				Pool, State, Reason string
				Current             int `json:"current_weight"`
			}
		}
	}
	s.Admin(http.MethodGet, "/debug/splits", "", &splits)
	if len(splits.Splits) != 1 || splits.Splits[0].Variants[0].Pool != "candidate" || splits.Splits[0].Variants[0].State != "ejected" || splits.Splits[0].Variants[0].Reason == "" {
		t.Errorf("/debug/splits: %+v", splits)
	}
	if got := s.Metric(`switchyard_split_variant_changes_total{pool="candidate",route="ab",state="ejected"}`); got != 1 {
		t.Errorf("ejections counted %v, want 1", got)
	}

	// Mended and put back by an operator: the candidate serves its users again.
	failing.Store(false)
	if code := s.Admin(http.MethodPost, "/v1/routes/ab/variants/candidate/enable", "", nil); code != http.StatusOK {
		t.Fatalf("enable: %d", code)
	}
	seen = map[string]int{}
	for i := range 60 {
		r := send(i)
		if r.Status != http.StatusOK {
			t.Fatalf("after enabling: status %d", r.Status)
		}
		seen[r.Header.Get("x-switchyard-variant")]++
		s.Settle(0)
	}
	if seen["candidate"] == 0 {
		t.Errorf("enabled candidate served nobody: %v", seen)
	}
	if code := s.Admin(http.MethodPost, "/v1/routes/ab/variants/stable/disable", "", nil); code != http.StatusOK {
		t.Errorf("disable stable: %d", code)
	}
	if code := s.Admin(http.MethodPost, "/v1/routes/ab/variants/candidate/disable", "", nil); code != http.StatusConflict {
		t.Errorf("disabling the last variant in service: %d, want 409", code)
	}
	if code := s.Admin(http.MethodPost, "/v1/routes/nope/variants/candidate/enable", "", nil); code != http.StatusNotFound {
		t.Errorf("an unknown route: %d, want 404", code)
	}
}
