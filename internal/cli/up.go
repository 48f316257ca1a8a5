package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"text/tabwriter"
	"time"

	"github.com/switchyard/switchyard/envoy"
	"github.com/switchyard/switchyard/internal/config"
	"github.com/switchyard/switchyard/internal/dev/simrunner"
	"github.com/switchyard/switchyard/internal/dev/stack"
)

// stackFlags are the flags `up` and `demo` share.
type stackFlags struct {
	config     *string
	simulate   *bool
	loadTime   *time.Duration
	inferTime  *time.Duration
	slots      *int
	envoyAdmin *int
	logDir     *string
}

func addStackFlags(fs *flag.FlagSet, defaultConfig string, simulate bool) stackFlags {
	return stackFlags{
		config:     fs.String("config", defaultConfig, "config file"),
		simulate:   fs.Bool("simulate", simulate, "start a simulated runner on every loopback runner address of the config"),
		loadTime:   fs.Duration("sim-load-time", 2*time.Second, "simulated runners: cost of loading a model"),
		inferTime:  fs.Duration("sim-infer-time", 200*time.Millisecond, "simulated runners: inference time of a 1024x1024 image"),
		slots:      fs.Int("sim-slots", 2, "simulated runners: models held at once"),
		envoyAdmin: fs.Int("envoy-admin-port", envoy.DefaultAdminPort, "Envoy's admin port on 127.0.0.1 (0 picks a free one)"),
		logDir:     fs.String("log-dir", "", "write switchyard.log and envoy.log here (default: a new temporary directory)"),
	}
}

// logDirectory is --log-dir, made if needed, or a new temporary directory.
func (f stackFlags) logDirectory() (string, error) {
	dir := *f.logDir
	if dir == "" {
		return os.MkdirTemp("", "switchyard-up-")
	}
	return dir, os.MkdirAll(dir, 0o755)
}

// options are the stack options the flags say.
func (f stackFlags) options() stack.Options {
	return stack.Options{
		ConfigPath:     *f.config,
		Simulate:       *f.simulate,
		Sim:            simrunner.Options{LoadTime: *f.loadTime, InferTime: *f.inferTime, Slots: *f.slots},
		EnvoyAdminPort: *f.envoyAdmin,
	}
}

// start runs the stack with logs in files, so the terminal stays readable.
func (f stackFlags) start(ctx context.Context, stderr io.Writer) (*stack.Stack, string, error) {
	dir, err := f.logDirectory()
	if err != nil {
		return nil, "", err
	}
	swLog, err := os.Create(filepath.Join(dir, "switchyard.log"))
	if err != nil {
		return nil, "", err
	}
	envoyLog, err := os.Create(filepath.Join(dir, "envoy.log"))
	if err != nil {
		return nil, "", err
	}
	o := f.options()
	o.Log, o.EnvoyLog = slog.New(slog.NewTextHandler(swLog, nil)), envoyLog
	st, err := stack.Start(ctx, o)
	var cerr *config.Error
	if errors.As(err, &cerr) {
		printProblems(stderr, cerr)
		return nil, dir, ErrInvalid
	}
	if err != nil {
		return nil, dir, fmt.Errorf("%w (logs in %s)", err, dir)
	}
	return st, dir, nil
}

func up(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("up", flag.ContinueOnError)
	fs.SetOutput(stderr)
	f := addStackFlags(fs, "switchyard.yaml", false)
	edges := fs.Int("edges", 1, "run this many edges (Envoy + switchyard each) sharing runner state through an embedded NATS")
	if err := fs.Parse(args); err != nil || fs.NArg() != 0 || *edges < 1 {
		return ErrUsage
	}
	if *edges > 1 {
		return upEdges(ctx, f, *edges, stdout, stderr)
	}
	st, dir, err := f.start(ctx, stderr)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "switchyard up: %d listener(s), %d pool(s), %d route(s) from %s\n",
		len(st.Config.Listeners), len(st.Config.Pools), len(st.Config.Routes), st.Config.File)
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	printRunners(tw, st.Runners)
	fmt.Fprintf(tw, "  switchyard admin\t%s\t(runners: %s/v1/runners)\t\n", st.AdminURL, st.AdminURL)
	fmt.Fprintf(tw, "  envoy admin\t%s\t(pid %d)\t\n", st.EnvoyAdminURL, st.Envoy.Pid())
	fmt.Fprintf(tw, "  logs\t%s\t\t\n", dir)
	tw.Flush()
	fmt.Fprintf(stdout, "ready: send requests to %s  (Ctrl-C stops everything)\n", st.EdgeURL)
	return serveUntilDone(ctx, st, stdout)
}

// startEdges runs n edges with each one's logs in files.
func (f stackFlags) startEdges(ctx context.Context, n int, stderr io.Writer) (*stack.Edges, string, error) {
	dir, err := f.logDirectory()
	if err != nil {
		return nil, "", err
	}
	var logErr error
	es, err := stack.StartEdges(ctx, stack.EdgesOptions{
		Options: f.options(),
		N:       n,
		Dir:     dir,
		LogFor: func(k int) (*slog.Logger, io.Writer) {
			sw, err1 := os.Create(filepath.Join(dir, fmt.Sprintf("switchyard-%d.log", k)))
			ev, err2 := os.Create(filepath.Join(dir, fmt.Sprintf("envoy-%d.log", k)))
			if err := errors.Join(err1, err2); err != nil {
				logErr = err
				return slog.New(slog.NewTextHandler(io.Discard, nil)), io.Discard
			}
			// The files stay open while the process runs.
			return slog.New(slog.NewTextHandler(sw, nil)), ev
		},
	})
	var cerr *config.Error
	if errors.As(err, &cerr) {
		printProblems(stderr, cerr)
		return nil, dir, ErrInvalid
	}
	if err = errors.Join(err, logErr); err != nil {
		if es != nil {
			es.Stop()
		}
		return nil, dir, fmt.Errorf("%w (logs in %s)", err, dir)
	}
	return es, dir, nil
}

// upEdges runs n edges in front of the same runners, sharing runner state
// through a NATS server embedded in this process.
func upEdges(ctx context.Context, f stackFlags, n int, stdout, stderr io.Writer) error {
	es, dir, err := f.startEdges(ctx, n, stderr)
	if err != nil {
		return err
	}
	first := es.Edges[0]
	fmt.Fprintf(stdout, "switchyard up: %d edges sharing runner state through NATS at %s; %d pool(s), %d route(s) from %s\n",
		n, es.NATS.URL(), len(first.Config.Pools), len(first.Config.Routes), *f.config)
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	printRunners(tw, first.Runners)
	fmt.Fprintf(tw, "  logs\t%s\t\t\n", dir)
	tw.Flush()
	for k, st := range es.Edges {
		fmt.Fprintf(stdout, "ready: edge %d %s (admin %s)\n", k+1, st.EdgeURL, st.AdminURL)
	}
	fmt.Fprintln(stdout, "Ctrl-C stops everything")
	return serveUntilDone(ctx, es, stdout)
}

// running is a stack, or several edges, that up serves until Ctrl-C.
type running interface {
	Wait(ctx context.Context) error
	Stop() error
}

// serveUntilDone waits for Ctrl-C (or a part stopping on its own), then
// stops everything.
func serveUntilDone(ctx context.Context, r running, stdout io.Writer) error {
	waitErr := r.Wait(ctx)
	fmt.Fprintln(stdout, "switchyard up: stopping")
	stopErr := r.Stop()
	if waitErr != nil {
		return waitErr
	}
	return stopErr
}

func printRunners(w io.Writer, runners []stack.Runner) {
	for _, r := range runners {
		fmt.Fprintf(w, "  simulated runner\t%s\tpool %s\t%s\n", r.Runner.Stats().Name, r.Pool, r.Addr)
	}
}
