// Package extproc owns the ext_proc gRPC protocol with Envoy: the stream
// loop, the order of phases, and translating between ext_proc messages and
// the policy's API — a request into a policy.Request, a decision into
// header mutations, dynamic metadata and immediate responses, response
// headers into a policy.Response. What is decided, and what is learnt from
// a response, belongs to package policy; extproc decides and learns nothing
// itself.
//
//	Envoy ──(ext_proc gRPC)──▶ extproc ──▶ policy (decide, dispatch, respond, end)
//
// The names both ends of the wire must agree on are in package contract.
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
	"github.com/switchyard/switchyard/internal/decisions"
	"github.com/switchyard/switchyard/internal/policy"
	"github.com/switchyard/switchyard/internal/tracing"
)

// Policy is the routing policy: it decides, and follows each dispatched
// request to its end (policy.Engine).
type Policy interface {
	Decide(cfg *config.Config, route *config.Route, req policy.Request) (policy.Decision, error)
	Dispatch(cfg *config.Config, d policy.Decision) *policy.Flight
	// Await hands a flight over to wait for the report of its request's
	// end (at most limit), under the key it returns.
	Await(f *policy.Flight, limit time.Duration) string
	// Finish reports a request's end; an empty Response says it ended
	// without one.
	Finish(key string, r policy.Response)
}

// Options wire the server to the rest of switchyard.
type Options struct {
	Config  func() *config.Config
	Policy  Policy
	Log     *slog.Logger
	Metrics *Metrics
	// Decisions keeps the last decision records; none are kept when nil.
	Decisions *decisions.Ring
	// Tracer makes a span per decision; nil is tracing off.
	Tracer *tracing.Tracer
}

// Server answers Envoy's ext_proc streams: one stream per HTTP request.
type Server struct {
	extprocv3.UnimplementedExternalProcessorServer
	o Options
}

// New makes a server; Register serves it on a gRPC server.
func New(o Options) *Server { return &Server{o: o} }

// Register serves ext_proc on g.
func Register(g *grpc.Server, o Options) *Server {
	s := New(o)
	extprocv3.RegisterExternalProcessorServer(g, s)
	return s
}

// Process handles one request's exchange with Envoy: the request's
// headers (and, on the buffered path, its body) in, the decision out. The
// exchange ends there, from this side: the request's end, and what its
// runner reported, come back through Envoy's access log (package
// accesslog), so nothing of the response waits on switchyard.
func (s *Server) Process(stream extprocv3.ExternalProcessor_ProcessServer) error {
	x := &exchange{s: s, cfg: s.o.Config()}
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
			if x.awaits != "" {
				// Envoy never got the decision: the request goes its
				// route's default way, and the flight ends here.
				s.o.Policy.Finish(x.awaits, policy.Response{})
			}
			return err
		}
		if x.awaits != "" {
			x.trace(stream.Context())
			return nil
		}
	}
}
