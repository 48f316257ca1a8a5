package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/switchyard/switchyard/internal/dev/demo"
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
	if err := fs.Parse(args); err != nil || fs.NArg() != 0 || *rate < 1 || *duration <= 0 {
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
	st, dir, err := f.start(ctx, stderr)
	if err != nil {
		return err
	}
	defer st.Stop()
	fmt.Fprintf(stdout, "Stack ready at %s (logs in %s). Sending %d requests/s for %s: image sizes, an 80/20 A/B split, %d hinted models with skewed popularity.\n",
		st.EdgeURL, dir, *rate, *duration, len(demo.Models))
	res := demo.Run(ctx, demo.Options{EdgeURL: st.EdgeURL, Duration: *duration, Rate: *rate, Seed: *seed, Progress: stdout})
	var runners []demo.RunnerStats
	for _, r := range st.Runners {
		s := r.Runner.Stats()
		runners = append(runners, demo.RunnerStats{Pool: r.Pool, Name: s.Name, Requests: s.Requests, Hits: s.Hits, Misses: s.Misses, ColdLoads: s.ColdLoads, Evicted: s.Evictions})
	}
	res.Report(stdout, runners)
	fmt.Fprintln(stdout, "\nStopping.")
	return st.Stop()
}

func isSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}
