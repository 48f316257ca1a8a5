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

// start runs the stack with logs in files, so the terminal stays readable.
func (f stackFlags) start(ctx context.Context, stderr io.Writer) (*stack.Stack, string, error) {
	dir := *f.logDir
	if dir == "" {
		var err error
		if dir, err = os.MkdirTemp("", "switchyard-up-"); err != nil {
			return nil, "", err
		}
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
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
	st, err := stack.Start(ctx, stack.Options{
		ConfigPath:     *f.config,
		Simulate:       *f.simulate,
		Sim:            simrunner.Options{LoadTime: *f.loadTime, InferTime: *f.inferTime, Slots: *f.slots},
		EnvoyAdminPort: *f.envoyAdmin,
		Log:            slog.New(slog.NewTextHandler(swLog, nil)),
		EnvoyLog:       envoyLog,
	})
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
	if err := fs.Parse(args); err != nil || fs.NArg() != 0 {
		return ErrUsage
	}
	st, dir, err := f.start(ctx, stderr)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "switchyard up: %d listener(s), %d pool(s), %d route(s) from %s\n",
		len(st.Config.Listeners), len(st.Config.Pools), len(st.Config.Routes), st.Config.File)
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	for _, r := range st.Runners {
		fmt.Fprintf(tw, "  simulated runner\t%s\tpool %s\t%s\n", r.Runner.Stats().Name, r.Pool, r.Addr)
	}
	fmt.Fprintf(tw, "  switchyard admin\t%s\t(runners: %s/v1/runners)\t\n", st.AdminURL, st.AdminURL)
	fmt.Fprintf(tw, "  envoy admin\t%s\t(pid %d)\t\n", st.EnvoyAdminURL, st.Envoy.Pid())
	fmt.Fprintf(tw, "  logs\t%s\t\t\n", dir)
	tw.Flush()
	fmt.Fprintf(stdout, "ready: send requests to %s  (Ctrl-C stops everything)\n", st.EdgeURL)
	waitErr := st.Wait(ctx)
	fmt.Fprintln(stdout, "switchyard up: stopping")
	stopErr := st.Stop()
	if waitErr != nil {
		return waitErr
	}
	return stopErr
}
