package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/switchyard/switchyard/internal/dev/demo"
	"github.com/switchyard/switchyard/internal/dev/stack"
)

// demoCmd runs the local stack with simulated runners, drives the demo
// workload through it, prints the results and stops everything.
func demoCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	f := addStackFlags(fs, "", true)
	duration := fs.Duration("duration", 30*time.Second, "how long to send requests")
	rate := fs.Int("rate", 30, "requests per second")
	seed := fs.Int64("seed", 1, "workload seed: the same seed sends the same requests")
	edges := fs.Int("edges", 1, "send the workload through this many edges sharing runner state (the rate is shared among them)")
	if err := fs.Parse(args); err != nil || fs.NArg() != 0 || *rate < 1 || *duration <= 0 || *edges < 1 {
		return ErrUsage
	}
	// Demo defaults: a load long enough to show, short enough for a demo,
	// on GPUs that hold a few models each.
	if !isSet(fs, "sim-load-time") {
		*f.loadTime = 800 * time.Millisecond
	}
	if !isSet(fs, "sim-slots") {
		*f.slots = 3
	}
	if *f.config == "" {
		dir, err := os.MkdirTemp("", "switchyard-demo-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		*f.config = filepath.Join(dir, "demo.yaml")
		if err := os.WriteFile(*f.config, demo.Config, 0o644); err != nil {
			return err
		}
	}
	fmt.Fprintf(stdout, "Starting Envoy, switchyard and simulated runners (model load %s, inference %s per megapixel, %d models per runner)...\n",
		*f.loadTime, *f.inferTime, *f.slots)
	if *edges > 1 {
		return demoEdges(ctx, f, *edges, demo.Options{Duration: *duration, Rate: *rate, Seed: *seed, Progress: stdout}, stdout, stderr)
	}
	st, dir, err := f.start(ctx, stderr)
	if err != nil {
		return err
	}
	defer st.Stop()
	fmt.Fprintf(stdout, "Stack ready at %s (logs in %s). Sending %d requests/s for %s: image sizes, an 80/20 A/B split, %d hinted models with skewed popularity.\n",
		st.EdgeURL, dir, *rate, *duration, len(demo.Models))
	res := demo.Run(ctx, demo.Options{EdgeURL: st.EdgeURL, Duration: *duration, Rate: *rate, Seed: *seed, Progress: stdout})
	res.Report(stdout, runnerStats(st))
	fmt.Fprintln(stdout, "\nStopping.")
	return st.Stop()
}

// demoEdges is the demo through n edges: a table per edge, then the
// fleet's.
func demoEdges(ctx context.Context, f stackFlags, n int, o demo.Options, stdout, stderr io.Writer) error {
	es, dir, err := f.startEdges(ctx, n, stderr)
	if err != nil {
		return err
	}
	defer es.Stop()
	var urls []string
	for _, st := range es.Edges {
		urls = append(urls, st.EdgeURL)
	}
	fmt.Fprintf(stdout, "%d edges ready at %s, sharing runner state through NATS (logs in %s). Sending %d requests/s in all for %s, spread over the edges.\n",
		n, strings.Join(urls, ", "), dir, o.Rate, o.Duration)
	total, per := demo.RunEdges(ctx, o, urls)
	for k, r := range per {
		r.ReportEdge(stdout, fmt.Sprintf("Edge %d (%s)", k+1, urls[k]))
	}
	fmt.Fprintf(stdout, "\nAll %d edges:", n)
	total.Report(stdout, runnerStats(es.Edges[0]))
	fmt.Fprintln(stdout, "\nStopping.")
	return es.Stop()
}

// runnerStats is what the stack's simulated runners counted.
func runnerStats(st *stack.Stack) []demo.RunnerStats {
	var out []demo.RunnerStats
	for _, r := range st.Runners {
		s := r.Runner.Stats()
		out = append(out, demo.RunnerStats{Pool: r.Pool, Name: s.Name, Requests: s.Requests, Hits: s.Hits, Misses: s.Misses, ColdLoads: s.ColdLoads, Evicted: s.Evictions})
	}
	return out
}

func isSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}
