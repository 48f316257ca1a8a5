package server

import (
	"flag"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
)

var update = flag.Bool("update", false, "rewrite testdata/metrics.golden")

// Every metric switchyard exposes, with its labels and help text, is in
// testdata/metrics.golden: a renamed metric or label (which breaks users'
// dashboards and alerts) shows up as a diff, and a new label is reviewed
// here for its cardinality: label values come from the config, the
// registry or fixed sets, never from hints or requests.
func TestMetricsGolden(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "switchyard.yaml")
	if err := os.WriteFile(cfg, []byte(`
listeners: [{name: public, address: 127.0.0.1, port: 10000}]
pools: [{name: a, runners: [{address: 127.0.0.1:9001}]}]
routes: [{name: r, match: {prefix: /}, rules: [{pool: a}]}]
`), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := New(Options{ConfigPath: cfg, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ch := make(chan *prometheus.Desc)
	go func() { s.reg.Describe(ch); close(ch) }()
	var lines []string
	for d := range ch {
		if str := d.String(); strings.Contains(str, `fqName: "switchyard_`) {
			lines = append(lines, str)
		}
	}
	slices.Sort(lines)
	got := strings.Join(lines, "\n") + "\n"
	golden := filepath.Join("testdata", "metrics.golden")
	if *update {
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test ./internal/server -run TestMetricsGolden -update)", err)
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("metrics changed (-golden +now); if on purpose, run with -update:\n%s", diff)
	}
}
