package simrunner

import (
	"encoding/json"
	"flag"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

func TestMetricsGolden(t *testing.T) {
	r := New(Options{Name: "r1", Sleep: (&recorder{}).sleep})
	srv := httptest.NewServer(r)
	defer srv.Close()
	for _, m := range []string{"a", "a", "b", "c", ""} {
		if resp := do(t, t.Context(), r, modelCall(m)); resp.Code != http.StatusOK {
			t.Fatalf("status %d", resp.Code)
		}
	}
	// Reset zeroes the stats, never the Prometheus counters.
	resp, err := http.Post(srv.URL+"/_sim/reset", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	var afterReset Stats
	if err := json.NewDecoder(resp.Body).Decode(&afterReset); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	want := Stats{Name: "r1", Models: []string{"c", "b"}}
	if diff := cmp.Diff(want, afterReset); diff != "" {
		t.Errorf("reset answer (-want +got):\n%s", diff)
	}

	golden := filepath.Join("testdata", "metrics.txt")
	if *update {
		resp, err := http.Get(srv.URL + "/_sim/metrics")
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(golden, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	f, err := os.Open(golden)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := testutil.ScrapeAndCompare(srv.URL+"/_sim/metrics", f); err != nil {
		t.Error(err)
	}
}

func TestStatsEndpoint(t *testing.T) {
	r := New(Options{Name: "r1", Sleep: (&recorder{}).sleep})
	do(t, t.Context(), r, modelCall("a"))
	for range 3 { // own endpoints are not requests
		do(t, t.Context(), r, call{method: http.MethodGet, path: "/_sim/metrics"})
	}
	resp := do(t, t.Context(), r, call{method: http.MethodGet, path: "/_sim/stats"})
	var got map[string]any
	if err := json.Unmarshal(resp.Body.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"name": "r1", "requests": 1.0, "hits": 0.0, "misses": 1.0, "cold_loads": 1.0, "evictions": 0.0,
		"rejected": 0.0, "canceled": 0.0, "in_flight": 0.0, "queued": 0.0, "max_in_flight": 1.0,
		"models": []any{"a"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("stats JSON (-want +got):\n%s", diff)
	}
}
