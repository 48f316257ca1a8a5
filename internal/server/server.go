// Package server wires one `switchyard serve` process: it loads the config,
// owns the runner registry, rebuilds and publishes Envoy's resources when
// either changes, and serves xDS, ext_proc and the admin API until its
// context ends.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"

	"github.com/switchyard/switchyard/extproc"
	"github.com/switchyard/switchyard/internal/admin"
	"github.com/switchyard/switchyard/internal/affinity"
	"github.com/switchyard/switchyard/internal/config"
	"github.com/switchyard/switchyard/internal/configwatch"
	"github.com/switchyard/switchyard/internal/metrics"
	"github.com/switchyard/switchyard/internal/policy"
	"github.com/switchyard/switchyard/internal/registry"
	"github.com/switchyard/switchyard/xds"
	"github.com/switchyard/switchyard/xds/translate"
)

// Options for Run.
type Options struct {
	ConfigPath string
	Log        *slog.Logger
	// Started, when set, is called once both ports listen, with their addresses.
	Started func(grpcAddr, adminAddr net.Addr)
}

// grpcHeadroom is what an ext_proc message carries besides the body.
const grpcHeadroom = 1 << 20

// shutdownGrace bounds how long open streams get to finish on shutdown.
const shutdownGrace = 2 * time.Second

// Run serves until ctx ends. It refuses to start on an invalid config.
func Run(ctx context.Context, o Options) error {
	log := o.Log
	cfg, err := config.Load(o.ConfigPath)
	if err != nil {
		return err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m := metrics.New(reg)
	m.ConfigReloads.WithLabelValues("ok").Inc()
	m.ConfigGeneration.Set(1)

	// ext_proc counts every decided request in flight, so a draining
	// runner can go as soon as its last one finishes. A runner new at an
	// address starts with no known hints, whatever an earlier one held.
	hints := affinity.NewIndex(affinity.IndexOptions{})
	soonest := affinity.NewPicker(affinity.PickerOptions{Index: hints, Mode: affinity.ModeSoonest})
	runners := registry.New(registry.Options{InFlightTracked: true, OnNew: func(addr string) {
		hints.Forget(addr)
		soonest.Forget(addr)
	}})
	runners.ApplyConfig(cfg)
	metrics.RegisterRunners(reg, runners)

	var current atomic.Pointer[config.Config]
	current.Store(cfg)
	pub := xds.NewPublisher(log, m)

	grpcLis, err := net.Listen("tcp", cfg.Server.GRPC)
	if err != nil {
		return fmt.Errorf("grpc listener: %w", err)
	}
	adminLis, err := net.Listen("tcp", cfg.Server.Admin)
	if err != nil {
		grpcLis.Close()
		return fmt.Errorf("admin listener: %w", err)
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	g := grpc.NewServer(
		// A buffered request body arrives in one ext_proc message. Envoy
		// refuses bodies over max_body_bytes with 413; the limit here has
		// room for twice that, because a body that races the switch to
		// buffering can pass Envoy's check by up to its size again.
		grpc.MaxRecvMsgSize(2*cfg.Server.MaxBodyBytes+grpcHeadroom),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 30 * time.Second, Timeout: 10 * time.Second}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
	)
	acks := xds.Register(ctx, g, pub, log, m)
	costs := affinity.NewCosts()
	engine := policy.New(policy.Options{
		Runners: runners,
		Costs:   costs,
		Pickers: map[string]policy.Picker{
			config.PolicyFal:        affinity.NewPicker(affinity.PickerOptions{Index: hints, Mode: affinity.ModeFal}),
			config.PolicySwitchyard: affinity.NewPicker(affinity.PickerOptions{Index: hints, Mode: affinity.ModeSwitchyard}),
			config.PolicySoonest:    soonest,
		},
	})
	extproc.Register(g, extproc.Options{
		Config:  current.Load,
		Decider: engine,
		Hints:   hints,
		Runners: runners,
		Costs:   costs,
		Log:     log,
		Metrics: extproc.NewMetrics(reg),
	})

	httpSrv := &http.Server{
		Handler: admin.Handler(admin.Options{
			Runners:  runners,
			Hints:    hints.Hints,
			Config:   current.Load,
			Ready:    func() bool { return isClosed(pub.Ready()) },
			XDS:      func() any { return map[string]any{"published": pub.Versions(), "acked": acks.Versions()} },
			Costs:    func() any { return costs.Snapshot() },
			Gatherer: reg,
			Log:      log,
		}),
		ReadHeaderTimeout: 10 * time.Second,
	}

	// The first snapshot is built before serving, so an Envoy that connects
	// at once gets it.
	rebuild := func() {
		c := current.Load()
		res, err := translate.Translate(translate.Input{Config: c, Endpoints: runners.Endpoints()})
		if err != nil {
			m.Snapshots.WithLabelValues("error").Inc()
			log.Error("translate failed, keeping the last good snapshot", "error", err)
			return
		}
		_ = pub.Publish(ctx, res) // logged and counted by Publish
	}
	rebuild()
	if !isClosed(pub.Ready()) {
		grpcLis.Close()
		adminLis.Close()
		return errors.New("the initial snapshot could not be published; see the log")
	}

	errc := make(chan error, 3)
	go func() { errc <- g.Serve(grpcLis) }()
	go func() {
		if err := httpSrv.Serve(adminLis); !errors.Is(err, http.ErrServerClosed) {
			errc <- err
		}
	}()
	reloaded := make(chan struct{}, 1)
	go func() {
		err := configwatch.Watch(ctx, configwatch.Options{
			Path: o.ConfigPath,
			Log:  log,
			OnLoad: func(c *config.Config) {
				if cur := current.Load().Server; c.Server.GRPC != cur.GRPC || c.Server.Admin != cur.Admin || c.Server.MaxBodyBytes != cur.MaxBodyBytes {
					log.Warn("server.grpc, server.admin and server.max_body_bytes apply at the next restart; keeping the running ones", "file", c.File)
					c = withBound(c, cur)
				}
				current.Store(c)
				runners.ApplyConfig(c)
				m.ConfigReloads.WithLabelValues("ok").Inc()
				m.ConfigGeneration.Inc()
				log.Info("config reloaded", "file", c.File)
				select {
				case reloaded <- struct{}{}:
				default:
				}
			},
			OnError: func(err error) {
				m.ConfigReloads.WithLabelValues("error").Inc()
				var cerr *config.Error
				if errors.As(err, &cerr) {
					for _, p := range cerr.Problems {
						log.Warn("config rejected, keeping the last good one", "problem", p.String())
					}
					return
				}
				log.Warn("config rejected, keeping the last good one", "error", err)
			},
		})
		if err != nil {
			errc <- err
		}
	}()
	go runners.Run(ctx.Done())

	if o.Started != nil {
		o.Started(grpcLis.Addr(), adminLis.Addr())
	}
	log.Info("switchyard serving", "grpc", grpcLis.Addr().String(), "admin", adminLis.Addr().String(), "config", o.ConfigPath)

	var runErr error
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case err := <-errc:
			runErr = err
			break loop
		case <-reloaded:
			rebuild()
		case <-runners.Changed():
			rebuild()
		}
	}
	cancel()
	shutdown(g, httpSrv)
	return runErr
}

// withBound keeps the settings fixed when switchyard started: the
// addresses it is bound to and the gRPC message limit.
func withBound(c *config.Config, bound config.Server) *config.Config {
	cp := *c
	cp.Server.GRPC, cp.Server.Admin, cp.Server.MaxBodyBytes = bound.GRPC, bound.Admin, bound.MaxBodyBytes
	return &cp
}

func shutdown(g *grpc.Server, h *http.Server) {
	ctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	_ = h.Shutdown(ctx)
	done := make(chan struct{})
	go func() { g.GracefulStop(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		g.Stop()
	}
}

func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}
