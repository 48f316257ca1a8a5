// Package stack runs the local stack in one process tree: switchyard serve,
// the real Envoy with the project's bootstrap, and optionally a simulated
// runner on every loopback runner address of the config. `switchyard up`,
// the demo and the benchmarks start it; it stops everything it started.
//
// In the code map (README), dev tooling:
//
//	up, demo, benchmarks ─▶ stack ─▶ server, envoy, simrunner
package stack

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"time"

	"github.com/switchyard/switchyard/envoy"
	"github.com/switchyard/switchyard/internal/config"
	"github.com/switchyard/switchyard/internal/dev/simrunner"
	"github.com/switchyard/switchyard/internal/server"
)

// Options configure Start.
type Options struct {
	ConfigPath string
	// Simulate starts a simulated runner on each static runner address of
	// the config that is on loopback, with Sim as its options.
	Simulate bool
	Sim      simrunner.Options
	// EnvoyAdminPort is Envoy's admin port; 0 lets Envoy pick one.
	EnvoyAdminPort int
	// EnvoyConcurrency is Envoy's worker count; 0 means 2.
	EnvoyConcurrency int
	// Log receives switchyard's log; EnvoyLog Envoy's (discarded when nil).
	Log      *slog.Logger
	EnvoyLog io.Writer
}

// Runner is a simulated runner the stack started.
type Runner struct {
	Pool string
	*simrunner.Server
}

// Stack is a running local stack.
type Stack struct {
	Config        *config.Config
	EdgeURL       string // the first listener
	AdminURL      string // switchyard's admin API
	EnvoyAdminURL string
	Envoy         *envoy.Process
	Runners       []Runner

	cancel  context.CancelFunc
	serving bool
	served  chan error
}

// Start starts the stack and returns once a request can go through Envoy.
func Start(ctx context.Context, o Options) (*Stack, error) {
	cfg, err := config.Load(o.ConfigPath)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	s := &Stack{Config: cfg, cancel: cancel, served: make(chan error, 1)}
	ok := false
	defer func() {
		if !ok {
			s.Stop()
		}
	}()

	if o.Simulate {
		for _, p := range cfg.Pools {
			for i, addr := range p.Runners {
				ap := netip.MustParseAddrPort(addr)
				if !ap.Addr().IsLoopback() {
					continue
				}
				so := o.Sim
				so.Name = fmt.Sprintf("%s-%d", p.Name, i+1)
				srv, err := simrunner.Serve(ctx, addr, so)
				if err != nil {
					return nil, fmt.Errorf("simulated runner for pool %s at %s: %w", p.Name, addr, err)
				}
				s.Runners = append(s.Runners, Runner{Pool: p.Name, Server: srv})
			}
		}
	}

	log := o.Log
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	started := make(chan struct{})
	s.serving = true
	go func() {
		s.served <- server.Run(ctx, server.Options{ConfigPath: o.ConfigPath, Log: log, Started: func(net.Addr, net.Addr) { close(started) }})
	}()
	select {
	case <-started:
	case err := <-s.served:
		s.served <- err
		return nil, fmt.Errorf("switchyard: %w", err)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	s.AdminURL = "http://" + cfg.Server.Admin

	concurrency := o.EnvoyConcurrency
	if concurrency == 0 {
		concurrency = 2
	}
	s.Envoy, err = envoy.Start(ctx, envoy.StartOptions{
		Bootstrap:   envoy.BootstrapOptions{XDSAddress: cfg.Server.GRPC, AdminPort: o.EnvoyAdminPort, TLS: envoyTLS(cfg)},
		Concurrency: concurrency,
		Log:         o.EnvoyLog,
	})
	if err != nil {
		return nil, err
	}
	s.EnvoyAdminURL = s.Envoy.AdminURL()
	l := cfg.Listeners[0]
	host := l.Address
	if ip := netip.MustParseAddr(host); ip.IsUnspecified() {
		host = "127.0.0.1"
		if ip.Is6() {
			host = "::1"
		}
	}
	edge := net.JoinHostPort(host, strconv.Itoa(l.Port))
	s.EdgeURL = "http://" + edge
	if err := waitListening(ctx, edge, 10*time.Second); err != nil {
		return nil, fmt.Errorf("envoy listener %s: %w", edge, err)
	}
	ok = true
	return s, nil
}

func waitListening(ctx context.Context, addr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Wait blocks until ctx ends (nil) or a component stops on its own (its
// error).
func (s *Stack) Wait(ctx context.Context) error {
	var envoyDone <-chan struct{}
	if s.Envoy != nil {
		envoyDone = s.Envoy.Done()
	}
	select {
	case <-ctx.Done():
		return nil
	case err := <-s.served:
		s.served <- err
		if err == nil {
			err = errors.New("switchyard stopped")
		}
		return fmt.Errorf("switchyard: %w", err)
	case <-envoyDone:
		return fmt.Errorf("envoy exited: %w", s.Envoy.Wait())
	}
}

// Stop stops Envoy, switchyard and the runners, and waits for them.
func (s *Stack) Stop() error {
	var errs []error
	if s.Envoy != nil {
		errs = append(errs, s.Envoy.Stop())
	}
	s.cancel()
	if s.serving {
		select {
		case err := <-s.served:
			s.served <- err
			errs = append(errs, err)
		case <-time.After(10 * time.Second):
			errs = append(errs, errors.New("switchyard did not stop within 10s"))
		}
	}
	for _, r := range s.Runners {
		select {
		case <-r.Done:
		case <-time.After(simrunner.ShutdownGrace + time.Second):
			errs = append(errs, fmt.Errorf("runner %s did not stop", r.Addr))
		}
	}
	return errors.Join(errs...)
}

// envoyTLS is what Envoy presents to switchyard's gRPC port, when the
// config puts it under mutual TLS.
func envoyTLS(cfg *config.Config) *config.EnvoyClientTLS {
	if cfg.Server.GRPCTLS == nil {
		return nil
	}
	return &cfg.Server.GRPCTLS.Envoy
}
