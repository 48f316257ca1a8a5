// Command dashboard-metrics prints, as JSON, every series the Grafana
// dashboard queries (parsed by Prometheus's PromQL parser) with the labels
// each query needs, and the labels Prometheus adds to every scraped series
// under prometheus.yml. The main module's integration test
// (integration/dashboard_test.go) runs it and holds each series to a real
// switchyard's and Envoy's exposition; it lives here so that Prometheus's
// module stays out of switchyard's go.mod.
//
//	go run ./cmd/dashboard-metrics -dashboard FILE -prometheus FILE
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"

	"github.com/switchyard/switchyard/integration/deploy/dashboard"
)

// Output is what the command prints.
type Output struct {
	// TargetLabels are added by Prometheus at scrape time (job, instance
	// and the static configs' labels): no target exposes them.
	TargetLabels []string          `json:"target_labels"`
	Queries      []dashboard.Query `json:"queries"`
}

func main() {
	dash := flag.String("dashboard", "../../deploy/grafana/dashboards/switchyard.json", "the Grafana dashboard")
	prom := flag.String("prometheus", "../../deploy/prometheus/prometheus.yml", "Prometheus's config")
	flag.Parse()
	if err := run(*dash, *prom); err != nil {
		fmt.Fprintln(os.Stderr, "dashboard-metrics:", err)
		os.Exit(1)
	}
}

func run(dashPath, promPath string) error {
	d, err := dashboard.Load(dashPath)
	if err != nil {
		return err
	}
	qs, err := d.Queries()
	if err != nil {
		return err
	}
	pc, err := dashboard.LoadPrometheus(promPath)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(Output{TargetLabels: pc.TargetLabels(), Queries: qs})
}
