package integration

import (
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/dev/simrunner"
)

func TestConfigEdits(t *testing.T) {
	a1 := StartRunner(t, "a1", simrunner.Options{})
	b1 := StartRunner(t, "b1", simrunner.Options{})
	s := NewStack(t, StackConfig{Body: twoPools([]*TestRunner{a1}, []*TestRunner{b1})})
	good := s.ReadConfig()

	// An invalid edit: an unknown pool in a rule. It is rejected, counted,
	// logged with its line, and the old config keeps serving.
	s.WriteConfig(strings.Replace(good, "rules: [{pool: a}]", "rules: [{pool: c}]", 1))
	Eventually(t, 5*time.Second, "invalid edit counted", func() bool {
		return s.Metric(`switchyard_config_reloads_total{result="error"}`) == 1
	})
	if got := landsOn(t, s, 10, "/anything", nil); got["a1"] != 10 {
		t.Errorf("after an invalid edit: %v, want all on a1", got)
	}
	if !strings.Contains(s.swLog.String(), `unknown pool \"c\"`) || !strings.Contains(s.swLog.String(), "switchyard.yaml:") {
		t.Errorf("the log does not name the problem with file and line")
	}

	// A valid edit: the catch-all route now defaults to pool b.
	s.WriteConfig(strings.Replace(good, "rules: [{pool: a}]", "rules: [{pool: b}]", 1))
	took := Eventually(t, 5*time.Second, "valid edit routes to b", func() bool {
		return s.MustDo(http.MethodGet, "/anything", nil, "").Runner() == "b1"
	})
	t.Logf("config edit → Envoy routing with it: %v", took.Round(time.Millisecond))
	if got := landsOn(t, s, 10, "/anything", nil); got["b1"] != 10 {
		t.Errorf("after a valid edit: %v, want all on b1", got)
	}
	if got := s.Metric(`switchyard_config_reloads_total{result="ok"}`); got != 2 {
		t.Errorf("ok reloads = %v, want 2 (start + edit)", got)
	}
	var eff map[string]any
	s.Admin(http.MethodGet, "/debug/config", "", &eff)
	routes, _ := eff["routes"].([]any)
	if len(routes) != 2 {
		t.Fatalf("/debug/config routes: %v", eff["routes"])
	}
}

// Switchyard killed and restarted while Envoy serves a steady load: Envoy
// keeps its config, ext_proc fails open, and no request fails.
func TestRestartUnderLoad(t *testing.T) {
	opts := simrunner.Options{InferTime: 5 * time.Millisecond}
	a1 := StartRunner(t, "a1", opts)
	a2 := StartRunner(t, "a2", opts)
	b1 := StartRunner(t, "b1", opts)
	s := NewStack(t, StackConfig{Body: twoPools([]*TestRunner{a1, a2}, []*TestRunner{b1})})

	var sent, failed atomic.Int64
	var firstErr atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			path := "/v1/images"
			if w%4 == 0 {
				path = "/v1/b/x"
			}
			tick := time.NewTicker(20 * time.Millisecond) // ~50 requests/s per worker at most
			defer tick.Stop()
			for {
				select {
				case <-stop:
					return
				case <-tick.C:
				}
				r, err := s.Do(http.MethodPost, path, nil, `{"prompt":"x"}`)
				sent.Add(1)
				if err != nil || r.Status != http.StatusOK {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, time.Now().Format(time.TimeOnly)+" "+path+": "+errString(err, r))
				}
			}
		}()
	}
	time.Sleep(time.Second)
	kills := faultKills(t)
	var duringDown int64
	for k := range kills {
		s.KillSwitchyard()
		downAt := sent.Load()
		time.Sleep(time.Duration(300+k%3*400) * time.Millisecond) // Envoy serves alone
		duringDown += sent.Load() - downAt
		s.StartSwitchyard()
		Eventually(t, 10*time.Second, "Envoy reconnected", func() bool {
			return s.Metric("switchyard_xds_connected_clients") == 1 && s.Metric(`switchyard_xds_pushes_total{type="Listener"}`) >= 1
		})
		time.Sleep(500 * time.Millisecond) // decided again for a while
	}
	time.Sleep(500 * time.Millisecond)
	close(stop)
	wg.Wait()
	if failed.Load() != 0 {
		t.Fatalf("%d of %d requests failed across %d restarts; first: %v", failed.Load(), sent.Load(), kills, firstErr.Load())
	}
	if duringDown == 0 {
		t.Fatal("no requests were sent while switchyard was down: the test proved nothing")
	}
	if got := s.EnvoyStats()["cluster_manager.cds.update_rejected"]; got != 0 {
		t.Errorf("Envoy rejected the restarted switchyard's clusters %d times", got)
	}
	// The last switchyard counts nothing in flight once every end is reported.
	s.AssertNoneInFlight()
	t.Logf("%d SIGKILL restarts under load: %d requests sent, %d while switchyard was down, 0 failed", kills, sent.Load(), duringDown)
}

// faultKills is how many times TestRestartUnderLoad kills switchyard: a
// few in `make test`, SWITCHYARD_FAULT_KILLS (20 in `make faults`) for the
// long form.
func faultKills(t *testing.T) int {
	if v := os.Getenv("SWITCHYARD_FAULT_KILLS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("SWITCHYARD_FAULT_KILLS=%q: want a positive number", v)
		}
		return n
	}
	return 3
}

func errString(err error, r Reply) string {
	if err != nil {
		return err.Error()
	}
	return http.StatusText(r.Status) + " " + r.RawBody
}
