package server

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"reflect"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"

	"github.com/switchyard/switchyard/extproc"
	"github.com/switchyard/switchyard/internal/accesslog"
	"github.com/switchyard/switchyard/internal/admin"
	"github.com/switchyard/switchyard/internal/cluster"
	"github.com/switchyard/switchyard/internal/config"
	"github.com/switchyard/switchyard/internal/configwatch"
	"github.com/switchyard/switchyard/internal/decisions"
	"github.com/switchyard/switchyard/internal/mtls"
	"github.com/switchyard/switchyard/internal/pipeline"
	"github.com/switchyard/switchyard/internal/policy"
	"github.com/switchyard/switchyard/internal/registry"
	"github.com/switchyard/switchyard/internal/tracing"
	"github.com/switchyard/switchyard/xds"
)

// Server is one built `switchyard serve` process, ready to Run.
type Server struct {
	o       Options
	log     *slog.Logger
	current atomic.Pointer[config.Config]

	metrics struct {
		config *configwatch.Metrics
		xds    *xds.Metrics
	}
	runners *registry.Registry
	engine  *policy.Engine
	// reg holds every metric of the process.
	reg *prometheus.Registry
	// loads is the config's loads, for the status.
	loads loads
	// decisions keeps the last decision records (observe.decisions).
	decisions *decisions.Ring
	cluster   *cluster.Cluster // nil for a single instance
	pub       *xds.Publisher
	grpc      *grpc.Server
	admin     *http.Server
	// pipelines runs pipeline routes' requests for Envoy; it listens on
	// server.pipelines once a config declares a pipeline.
	pipelines *http.Server
	acks      *xds.Acks // set by Run, which registers ADS for its context

	// tracer exports decision spans (observe.tracing); nil when off.
	tracer *tracing.Tracer
}

// New loads the config and builds the process's objects; nothing listens
// yet. It refuses an invalid config.
func New(o Options) (*Server, error) {
	cfg, err := config.Load(o.ConfigPath)
	if err != nil {
		return nil, err
	}
	s := &Server{o: o, log: o.Log}
	s.warn(cfg)
	s.current.Store(cfg)

	reg := prometheus.NewRegistry()
	s.reg = reg
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	s.metrics.config = configwatch.NewMetrics(reg)
	s.metrics.config.Loaded()
	s.loads.loaded()
	s.metrics.xds = xds.NewMetrics(reg)

	// ext_proc counts every decided request in flight, so a draining
	// runner can go as soon as its last one finishes. A runner new at an
	// address starts with no known hints and no work, whatever an earlier
	// one held.
	s.runners = registry.New(registry.Options{InFlightTracked: true, OnNew: func(addr string) { s.engine.Forget(addr) }})
	s.engine = policy.New(policy.Options{Runners: s.runners, Metrics: policy.NewMetrics(reg), Log: s.log, Reported: func(addr, hints string) {
		if s.cluster != nil {
			s.cluster.Reported(addr, hints)
		}
	}})
	s.runners.ApplyConfig(cfg)
	s.decisions = decisions.NewRing(cfg.Observe.Decisions)
	registry.RegisterMetrics(reg, s.runners)
	reg.MustRegister(newStateCollector(s))
	// Registrations go through the cluster when there is one, so that every
	// replica has them.
	var runners admin.Runners = s.runners
	if cfg.Cluster != nil {
		s.cluster = cluster.New(cluster.Options{
			Config:   cfg.Cluster,
			Registry: s.runners,
			Engine:   s.engine,
			Log:      s.log,
			Metrics:  cluster.NewMetrics(reg),
		})
		runners = s.cluster
	}

	s.pub = xds.NewPublisher(s.log, s.metrics.xds)
	opts := []grpc.ServerOption{
		// A buffered request body arrives in one ext_proc message. Envoy
		// refuses bodies over max_body_bytes with 413; the limit here has
		// room for twice that, because a body that races the switch to
		// buffering can pass Envoy's check by up to its size again.
		grpc.MaxRecvMsgSize(2*cfg.Server.MaxBodyBytes + grpcHeadroom),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 30 * time.Second, Timeout: 10 * time.Second}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
		accesslog.ServerCodec(),
	}
	if t := cfg.Server.GRPCTLS; t != nil {
		// Only a client with a certificate of the configured CA may read
		// the config or report requests; the files are re-read when they
		// change. Turning grpc_tls on or off takes a restart.
		files, err := mtls.New(t)
		if err != nil {
			return nil, err
		}
		opts = append(opts, grpc.Creds(credentials.NewTLS(files.ServerConfig())))
	}
	s.grpc = grpc.NewServer(opts...)
	// Tracing is set up once, at start; the exporter connects lazily.
	if s.tracer, err = tracing.New(context.Background(), tracing.Options{Config: cfg.Observe.Tracing, Log: s.log}); err != nil {
		return nil, err
	}
	extproc.Register(s.grpc, extproc.Options{
		Config:    s.current.Load,
		Policy:    s.engine,
		Log:       s.log,
		Metrics:   extproc.NewMetrics(reg),
		Decisions: s.decisions,
		Tracer:    s.tracer,
	})
	accesslog.Register(s.grpc, accesslog.Options{
		Policy:  s.engine,
		Log:     s.log,
		Metrics: accesslog.NewMetrics(reg, s.engine.Awaiting),
	})
	s.admin = &http.Server{
		Handler: admin.Handler(admin.Options{
			Runners: runners,
			Hints:   s.engine.Hints().Hints,
			Config:  s.current.Load,
			Ready:   func() bool { return isClosed(s.pub.Ready()) },
			XDS: func() any {
				return map[string]any{"published": s.pub.Versions(), "acked": s.acks.Versions(), "envoys": s.acks.Envoys()}
			},
			Costs:     func() any { return s.engine.Costs().Snapshot() },
			Decisions: s.decisions,
			Splits:    s.engine,
			Reloads:   s.loads.status,
			Envoys:    s.envoys,
			Published: s.published,
			Queued:    s.queued,
			Gatherer:  reg,
			Log:       s.log,
			Metrics:   admin.NewMetrics(reg),
		}),
		ReadHeaderTimeout: 10 * time.Second,
	}
	s.pipelines = &http.Server{
		Handler: pipeline.New(pipeline.Options{
			Config:  s.current.Load,
			Log:     s.log,
			Metrics: pipeline.NewMetrics(reg),
		}),
		ReadHeaderTimeout: 10 * time.Second,
	}
	return s, nil
}

// warn logs what a valid config has to say: deprecated names.
func (s *Server) warn(c *config.Config) {
	for _, w := range c.Warnings {
		s.log.Warn("config warning", "problem", w.String())
	}
}

// reload serves c, a valid new config, keeping the settings that apply
// only at start.
func (s *Server) reload(c *config.Config) {
	if cur := s.current.Load(); c.Server.GRPC != cur.Server.GRPC || c.Server.Admin != cur.Server.Admin || c.Server.Pipelines != cur.Server.Pipelines || c.Server.MaxBodyBytes != cur.Server.MaxBodyBytes || !reflect.DeepEqual(c.Cluster, cur.Cluster) || !reflect.DeepEqual(c.Observe.Tracing, cur.Observe.Tracing) {
		s.log.Warn("server.grpc, server.admin, server.pipelines, server.max_body_bytes, cluster and observe.tracing apply at the next restart; keeping the running ones", "file", c.File)
		c = withBound(c, cur)
	}
	s.warn(c)
	s.current.Store(c)
	s.runners.ApplyConfig(c)
	s.metrics.config.Loaded()
	s.loads.loaded()
	s.log.Info("config reloaded", "file", c.File)
}

// rejected logs and counts a file that did not load.
func (s *Server) rejected(err error) {
	s.metrics.config.Rejected()
	s.loads.rejected(err)
	var cerr *config.Error
	if errors.As(err, &cerr) {
		for _, p := range cerr.Problems {
			s.log.Warn("config rejected, keeping the last good one", "problem", p.String())
		}
		return
	}
	s.log.Warn("config rejected, keeping the last good one", "error", err)
}

// withBound keeps the settings fixed when switchyard started: the
// addresses it is bound to, the gRPC message limit, the cluster and
// tracing (switchyard's exporter, and so Envoy's, which must match it).
func withBound(c, started *config.Config) *config.Config {
	cp := *c
	cp.Server.GRPC, cp.Server.Admin, cp.Server.MaxBodyBytes = started.Server.GRPC, started.Server.Admin, started.Server.MaxBodyBytes
	cp.Server.Pipelines = started.Server.Pipelines
	cp.Cluster = started.Cluster
	cp.Observe.Tracing = started.Observe.Tracing
	return &cp
}
