// Package cli is the switchyard command line: it parses arguments and runs
// a subcommand. main only wires signals, so tests run Main itself.
//
// In the code map (README):
//
//	cmd/switchyard ─▶ cli ─▶ internal/server (serve), config (validate),
//	                         internal/dev/stack (up, demo), internal/dev/simrunner (sim-runner)
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/switchyard/switchyard/internal/config"
	"github.com/switchyard/switchyard/internal/server"
)

// ErrUsage is returned for bad arguments, after the usage is printed.
var ErrUsage = errors.New("usage")

// ErrInvalid is returned by validate for an invalid file, after its problems
// are printed.
var ErrInvalid = errors.New("invalid config")

const usage = `switchyard routes GPU inference requests inside Envoy.

Usage:
  switchyard serve --config FILE     xDS control plane, ext_proc and admin API
  switchyard validate FILE           check a config file; print every problem
  switchyard up --config FILE [--simulate] [--edges N]
                                     the local stack: serve + Envoy (+ simulated runners);
                                     N edges share runner state through an embedded NATS
  switchyard demo [--duration 30s]    the local stack with simulated runners and a workload
  switchyard sim-runner [flags]      a simulated GPU runner (see sim-runner -h)
  switchyard status [--admin URL] [--watch]
                                     pools, runners, recent decisions and Envoys from the admin API
  switchyard help                    this text
`

// Main runs the command in args (without the program name).
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return ErrUsage
	}
	switch args[0] {
	case "serve":
		return serve(ctx, args[1:], stderr)
	case "validate":
		return validate(args[1:], stdout, stderr)
	case "demo":
		return demoCmd(ctx, args[1:], stdout, stderr)
	case "up":
		return up(ctx, args[1:], stdout, stderr)
	case "sim-runner":
		return simRunner(ctx, args[1:], stdout, stderr)
	case "status":
		return statusCmd(ctx, args[1:], stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprintf(stderr, "unknown command %q\n\n%s", args[0], usage)
	return ErrUsage
}

func serve(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "switchyard.yaml", "config file")
	level := fs.String("log-level", "info", "debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		return ErrUsage
	}
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(*level)); err != nil {
		fmt.Fprintf(stderr, "bad --log-level %q\n", *level)
		return ErrUsage
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: lv}))
	err := server.Run(ctx, server.Options{ConfigPath: *path, Log: log})
	var cerr *config.Error
	if errors.As(err, &cerr) {
		printProblems(stderr, cerr)
		return ErrInvalid
	}
	return err
}

func validate(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("validate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	if err := fs.Parse(args); err != nil || fs.NArg() != 1 {
		fmt.Fprintln(stderr, "usage: switchyard validate FILE")
		return ErrUsage
	}
	cfg, err := config.Load(fs.Arg(0))
	var cerr *config.Error
	if errors.As(err, &cerr) {
		printProblems(stderr, cerr)
		return ErrInvalid
	}
	if err != nil {
		return err
	}
	for _, w := range cfg.Warnings {
		fmt.Fprintf(stderr, "warning: %s\n", w)
	}
	fmt.Fprintf(stdout, "%s: ok (%d listeners, %d pools, %d routes)\n", cfg.File, len(cfg.Listeners), len(cfg.Pools), len(cfg.Routes))
	for i := range cfg.Routes {
		fmt.Fprintf(stdout, "  route %s: %s\n", cfg.Routes[i].Name, requestPath(cfg, &cfg.Routes[i]))
	}
	return nil
}

// requestPath says what a route's requests cost on the way through Envoy.
func requestPath(cfg *config.Config, r *config.Route) string {
	if p := r.Pipeline; p != nil {
		steps := make([]string, len(p.Steps))
		for i, s := range p.Steps {
			steps[i] = s.Name + " (" + s.Route + " " + s.Path + ")"
		}
		return fmt.Sprintf("pipeline run by switchyard at %s, timeout %v: %s; each step a request through the edge", cfg.Server.Pipelines, p.Timeout.Std(), strings.Join(steps, " → "))
	}
	if !cfg.Decides(r) {
		return "left to Envoy (one pool Envoy balances by itself: no exchange with switchyard)"
	}
	// With the module there is no exchange: it decides in Envoy's process
	// and holds the whole body itself when it must read it.
	prefix, whole, held := "", "whole body sent to switchyard (an expression reads the body as a whole)", ""
	if cfg.Server.EdgeModule != "" {
		prefix, whole, held = "decided in Envoy by the module on ", "the whole body, held by the module", " it holds"
	}
	switch {
	case r.BodyPath() == config.BodyMetadata && cfg.Server.EdgeModule != "":
		return prefix + "headers + body fields (" + bodyFieldList(r) + ") found in the body" + held
	case r.BodyPath() == config.BodyMetadata:
		return "headers + body fields extracted by Envoy (" + bodyFieldList(r) + "); the whole body only when Envoy cannot extract them"
	case r.BodyPath() == config.BodyBuffered:
		return prefix + "headers + " + whole
	}
	return prefix + "headers only"
}

func bodyFieldList(r *config.Route) string {
	fields := make([]string, 0, len(r.BodyFields()))
	for _, f := range r.BodyFields() {
		fields = append(fields, "body."+strings.Join(f, "."))
	}
	return strings.Join(fields, ", ")
}

func printProblems(w io.Writer, e *config.Error) {
	var b strings.Builder
	for _, p := range e.Problems {
		b.WriteString(p.String())
		b.WriteByte('\n')
	}
	fmt.Fprintf(&b, "%d problem(s)\n", len(e.Problems))
	io.WriteString(w, b.String())
}
