// Package extproc owns the ext_proc gRPC protocol with Envoy: the stream
// loop, the order of phases, and turning a policy decision into header
// mutations, dynamic metadata and immediate responses. Routing decisions
// belong to package policy; extproc never decides anything itself.
package extproc

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"time"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/switchyard/switchyard/internal/config"
	"github.com/switchyard/switchyard/internal/policy"
	"github.com/switchyard/switchyard/internal/registry"
)

// Decider is the routing policy.
type Decider interface {
	Decide(cfg *config.Config, route *config.Route, req policy.Request) (policy.Decision, error)
}

// HintReporter learns the hints a runner reports on its responses.
type HintReporter interface {
	Report(addr, header string, present bool)
}

// CostObserver learns how long requests take, hits and misses apart.
type CostObserver interface {
	Observe(pool string, hit bool, d time.Duration)
}

// RunnerLookup finds a registered runner.
type RunnerLookup interface {
	Runner(pool, address string) (*registry.Runner, bool)
}

// Options wire the server to the rest of switchyard.
type Options struct {
	Config  func() *config.Config
	Decider Decider
	Hints   HintReporter
	Runners RunnerLookup
	Costs   CostObserver // optional
	Log     *slog.Logger
	Metrics *Metrics
}

// Server answers Envoy's ext_proc streams: one stream per HTTP request.
type Server struct {
	extprocv3.UnimplementedExternalProcessorServer
	o      Options
	fields fieldCache
}

// New makes a server; Register serves it on a gRPC server.
func New(o Options) *Server { return &Server{o: o} }

// Register serves ext_proc on g.
func Register(g *grpc.Server, o Options) *Server {
	s := New(o)
	extprocv3.RegisterExternalProcessorServer(g, s)
	return s
}

// Process handles one request's exchange with Envoy. Whatever ends the
// stream (the response, an error, a reset, the client going away), the
// runner's in-flight count taken at the decision is given back.
func (s *Server) Process(stream extprocv3.ExternalProcessor_ProcessServer) error {
	x := &exchange{s: s, cfg: s.o.Config()}
	defer x.finish()
	for {
		req, err := stream.Recv()
		if err != nil {
			if errors.Is(err, io.EOF) || status.Code(err) == codes.Canceled || errors.Is(err, context.Canceled) {
				return nil
			}
			return err
		}
		resp := x.handle(req)
		if resp == nil {
			continue
		}
		if err := stream.Send(resp); err != nil {
			return err
		}
	}
}
