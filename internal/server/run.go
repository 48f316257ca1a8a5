package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"google.golang.org/grpc"

	"github.com/switchyard/switchyard/internal/config"
	"github.com/switchyard/switchyard/internal/configwatch"
	"github.com/switchyard/switchyard/internal/mtls"
	"github.com/switchyard/switchyard/xds"
	"github.com/switchyard/switchyard/xds/translate"
)

// Run serves xDS, ext_proc and the admin API until ctx ends, reloading the
// config and republishing Envoy's resources when the config or the runners
// change. A Server runs once.
func (s *Server) Run(ctx context.Context) error {
	cfg := s.current.Load()
	grpcLis, err := net.Listen("tcp", cfg.Server.GRPC)
	if err != nil {
		return fmt.Errorf("grpc listener: %w", err)
	}
	adminLis, err := net.Listen("tcp", cfg.Server.Admin)
	if err != nil {
		grpcLis.Close()
		return fmt.Errorf("admin listener: %w", err)
	}
	if t := cfg.Server.AdminTLS; t != nil {
		// HTTPS; turning it on or off takes a restart, its files are
		// re-read when they change.
		files, err := mtls.NewAdmin(t)
		if err != nil {
			grpcLis.Close()
			adminLis.Close()
			return err
		}
		adminLis = tls.NewListener(adminLis, files.ServerConfig())
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s.acks = xds.Register(s.grpc, xds.ServerOptions{Context: ctx, Publisher: s.pub, Log: s.log, Metrics: s.metrics.xds})

	// The first snapshot is built before serving, so an Envoy that connects
	// at once gets it.
	s.rebuild(ctx)
	if !isClosed(s.pub.Ready()) {
		grpcLis.Close()
		adminLis.Close()
		return errors.New("the initial snapshot could not be published; see the log")
	}

	errc := make(chan error, 5)
	// The pipelines port is bound only once a route declares a pipeline
	// (a reload may add the first): a config without one needs no third
	// port. Envoy's pipeline routes fail with a JSON 503 until it listens.
	pipelinesOn := false
	servePipelines := func() error {
		c := s.current.Load()
		if pipelinesOn || !c.HasPipelines() {
			return nil
		}
		lis, err := net.Listen("tcp", c.Server.Pipelines)
		if err != nil {
			return fmt.Errorf("pipelines listener: %w", err)
		}
		pipelinesOn = true
		s.log.Info("running pipelines", "address", lis.Addr().String())
		go func() {
			if err := s.pipelines.Serve(lis); !errors.Is(err, http.ErrServerClosed) {
				errc <- err
			}
		}()
		return nil
	}
	if err := servePipelines(); err != nil {
		grpcLis.Close()
		adminLis.Close()
		return err
	}
	go func() { errc <- s.grpc.Serve(grpcLis) }()
	go func() {
		if err := s.admin.Serve(adminLis); !errors.Is(err, http.ErrServerClosed) {
			errc <- err
		}
	}()
	reloaded := make(chan struct{}, 1)
	go func() {
		err := configwatch.Watch(ctx, configwatch.Options{
			Path: s.o.ConfigPath,
			Log:  s.log,
			OnLoad: func(c *config.Config) {
				s.reload(c)
				select {
				case reloaded <- struct{}{}:
				default:
				}
			},
			OnError: s.rejected,
		})
		if err != nil {
			errc <- err
		}
	}()
	go s.runners.Run(ctx.Done())
	if s.cluster != nil {
		go func() {
			if err := s.cluster.Run(ctx); err != nil {
				errc <- err
			}
		}()
	}

	if s.o.Started != nil {
		s.o.Started(grpcLis.Addr(), adminLis.Addr())
	}
	s.log.Info("switchyard serving", "grpc", grpcLis.Addr().String(), "admin", adminLis.Addr().String(), "config", s.o.ConfigPath)

	var runErr error
	// Runner changes are published at most every MinPushInterval: the
	// first change after a quiet spell at once, a storm of registrations
	// as one push per interval.
	var lastPush time.Time
	pending := time.NewTimer(0)
	<-pending.C
	armed := false
	push := func() {
		s.rebuild(ctx)
		lastPush = time.Now()
	}
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case err := <-errc:
			runErr = err
			break loop
		case <-reloaded:
			if err := servePipelines(); err != nil {
				s.log.Error("the config declares a pipeline, but its port cannot be bound; pipeline routes answer 503", "error", err)
			}
			push()
		case <-s.runners.Changed():
			if wait := MinPushInterval - time.Since(lastPush); wait > 0 {
				if !armed {
					pending.Reset(wait)
					armed = true
				}
				continue
			}
			push()
		case <-pending.C:
			armed = false
			push()
		}
	}
	cancel()
	shutdown(s.grpc, s.admin, s.pipelines)
	// The last decisions' spans leave before the process does.
	flush, done := context.WithTimeout(context.Background(), shutdownGrace)
	defer done()
	if err := s.tracer.Shutdown(flush); err != nil {
		s.log.Warn("trace export at shutdown", "error", err)
	}
	return runErr
}

// MinPushInterval is the shortest time between two pushes of Envoy's
// resources for runner changes.
const MinPushInterval = 50 * time.Millisecond

// rebuild translates the current config and runners and publishes the
// result; on error the last good snapshot stays.
func (s *Server) rebuild(ctx context.Context) {
	eps := map[string][]translate.Endpoint{}
	for pool, list := range s.runners.Endpoints() {
		out := make([]translate.Endpoint, len(list))
		for i, e := range list {
			out[i] = translate.Endpoint{Address: e.Address, Draining: e.Draining}
		}
		eps[pool] = out
	}
	res, err := translate.Translate(translate.Input{Config: s.current.Load(), Endpoints: eps})
	if err != nil {
		s.metrics.xds.Snapshots.WithLabelValues("error").Inc()
		s.log.Error("translate failed, keeping the last good snapshot", "error", err)
		return
	}
	_ = s.pub.Publish(ctx, res) // logged and counted by Publish
}

func shutdown(g *grpc.Server, hs ...*http.Server) {
	ctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	for _, h := range hs {
		_ = h.Shutdown(ctx)
	}
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
