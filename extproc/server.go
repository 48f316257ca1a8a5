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

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/switchyard/switchyard/internal/config"
	"github.com/switchyard/switchyard/internal/policy"
)

// Policy is the routing policy: it decides, and follows each dispatched
// request to its end (policy.Engine).
type Policy interface {
	Decide(cfg *config.Config, route *config.Route, req policy.Request) (policy.Decision, error)
	Dispatch(cfg *config.Config, d policy.Decision) *policy.Flight
	// Observe learns from a response to a request no Flight follows.
	Observe(r policy.Response)
}

// Options wire the server to the rest of switchyard.
type Options struct {
	Config  func() *config.Config
	Policy  Policy
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
	defer func() { x.flight.End() }()
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
