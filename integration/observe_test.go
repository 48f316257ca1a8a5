package integration

import (
	"bufio"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/decisions"
	"github.com/switchyard/switchyard/internal/dev/simrunner"
)

// Every decided request leaves a decision record: in the explain header
// for a client that asks, at GET /debug/decisions with its end filled in
// from Envoy's report, and in Envoy's JSON access log; the runner never
// sees the ask, and the per-pool and prediction metrics move.
func TestDecisionRecords(t *testing.T) {
	var sawExplain atomic.Int64
	var addrs []string
	for _, name := range []string{"a100-1", "a100-2"} {
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		sim := simrunner.New(simrunner.Options{Name: name, LoadTime: 30 * time.Millisecond, InferTime: 5 * time.Millisecond})
		srv := &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("x-switchyard-explain") != "" {
				sawExplain.Add(1)
			}
			sim.ServeHTTP(w, r)
		})}
		go srv.Serve(lis)
		t.Cleanup(func() { _ = srv.Close() })
		addrs = append(addrs, lis.Addr().String())
	}
	logPath := filepath.Join(t.TempDir(), "access.log")
	s := NewStack(t, StackConfig{Body: `
responses: {explain: true}
observe:
  decisions: 100
  access_log: {path: ` + logPath + `}
hints: {policy: soonest}
pools:
  - {name: a100, max_concurrency: 2, runners: [{address: ` + addrs[0] + `}, {address: ` + addrs[1] + `}]}
  - {name: h100, runners: [{address: ` + addrs[1] + `}]}
routes:
  - name: images
    match: {prefix: /}
    hint_from: body.model
    rules:
      - when: body.width * body.height <= 1048576
        pool: a100
      - pool: h100
`})
	body := `{"model": "flux", "width": 512, "height": 512}`
	first := s.MustDo(http.MethodPost, "/gen", nil, body)
	if first.Status != http.StatusOK || first.Header.Get("x-switchyard-explain") != "" {
		t.Fatalf("first: status %d, explain %q without asking", first.Status, first.Header.Get("x-switchyard-explain"))
	}
	s.Settle(0)
	second := s.MustDo(http.MethodPost, "/gen", map[string]string{"x-switchyard-explain": "1"}, body)
	if second.Status != http.StatusOK {
		t.Fatalf("second: status %d", second.Status)
	}
	var rec decisions.Record
	if err := json.Unmarshal([]byte(second.Header.Get("x-switchyard-explain")), &rec); err != nil {
		t.Fatalf("explain header %q: %v", second.Header.Get("x-switchyard-explain"), err)
	}
	served := second.Header.Get("x-switchyard-runner")
	if rec.Route != "images" || rec.Rule != 0 || rec.When != "body.width * body.height <= 1048576" || rec.Pool != "a100" ||
		rec.Hint != "flux" || rec.HintSource != "hint_from" || rec.Outcome != "hit" || rec.Policy != "soonest" || rec.Body != "fields" {
		t.Errorf("explained record %+v", rec)
	}
	if rec.Chosen == nil || rec.Chosen.Runner != served || !rec.Chosen.Warm || rec.Chosen.Predicted <= 0 {
		t.Errorf("chosen %+v, want the warm runner that served (%s) with a prediction", rec.Chosen, served)
	}
	if rec.RunnerUp == nil || rec.RunnerUp.Runner == served || rec.RunnerUp.Warm {
		t.Errorf("runner-up %+v, want the other, cold runner", rec.RunnerUp)
	}
	if rec.HintAge <= 0 || rec.Decide <= 0 {
		t.Errorf("hint age %v, decide %v: want both measured", rec.HintAge.Std(), rec.Decide.Std())
	}
	if n := sawExplain.Load(); n != 0 {
		t.Errorf("the runners saw the client's x-switchyard-explain %d times", n)
	}

	s.Settle(0)
	var listed struct {
		Kept      int                `json:"kept"`
		Decisions []decisions.Record `json:"decisions"`
	}
	if code := s.Admin(http.MethodGet, "/debug/decisions?route=images&outcome=hit", "", &listed); code != http.StatusOK {
		t.Fatalf("/debug/decisions: %d", code)
	}
	if listed.Kept != 100 || len(listed.Decisions) != 1 {
		t.Fatalf("kept %d, listed %d hits, want 100 and 1", listed.Kept, len(listed.Decisions))
	}
	end := listed.Decisions[0].End
	if end == nil || end.Status != 200 || end.Runner != served || end.Elapsed <= 0 || end.PredictionError == nil {
		t.Errorf("end %+v, want the runner's 200 with its time and the prediction's error", end)
	}
	if code := s.Admin(http.MethodGet, "/debug/decisions?colour=red", "", nil); code != http.StatusBadRequest {
		t.Errorf("an unknown filter: %d, want 400", code)
	}
	if got := s.Metric(`switchyard_pool_decisions_total{outcome="hit",pool="a100"}`); got != 1 {
		t.Errorf("a100 hits %v, want 1", got)
	}
	if got := s.Metric(`switchyard_prediction_error_seconds_count{pool="a100"}`); got < 1 {
		t.Errorf("prediction errors measured %v, want at least 1", got)
	}

	// Envoy's access log: one JSON line per request, the decision nested.
	var lines []map[string]any
	// Envoy writes its log files out every 10 s (its default flush
	// interval) or when its buffer fills.
	Eventually(t, 20*time.Second, "two access-log lines", func() bool {
		lines = readJSONLines(t, logPath)
		return len(lines) >= 2
	})
	last := lines[len(lines)-1]
	d, _ := last["decision"].(map[string]any)
	chosen, _ := d["chosen"].(map[string]any)
	if last["route"] != "images/a100" || d["route"] != "images" || last["upstream_host"] != served || d["outcome"] != "hit" || chosen["runner"] != served {
		t.Errorf("access-log line %v", last)
	}
}

func readJSONLines(t *testing.T, path string) []map[string]any {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []map[string]any
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Errorf("access-log line %q: %v", line, err)
			continue
		}
		out = append(out, m)
	}
	return out
}
