// Package accesslog owns Envoy's gRPC access-log protocol (the access log
// service, ALS): each Envoy streams one entry per finished request to
// switchyard, batched, on one long-lived stream per worker, after the
// response went to the client. An entry becomes a policy.Response (the
// runner that answered, its status, the hints it reported, the time to its
// response headers) and ends the flight that awaits it under the key the
// decision put in the request's dynamic metadata. This is how switchyard
// learns a request's end and its runner's report without holding the
// response: nothing here is on a request's path.
//
// In the code map (README), the request path:
//
//	Envoy ──(ext_proc: the decision)──▶ extproc ─▶ policy
//	Envoy ──(access log: the end)────▶ accesslog ─▶ policy
package accesslog

import (
	"context"
	"errors"
	"io"
	"log/slog"

	alsv3 "github.com/envoyproxy/go-control-plane/envoy/service/accesslog/v3"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"

	"github.com/switchyard/switchyard/internal/contract"
	"github.com/switchyard/switchyard/internal/policy"
)

// Policy learns from a finished request (policy.Engine).
type Policy interface {
	Finish(key string, r policy.Response)
}

// Options wire the server to the rest of switchyard.
type Options struct {
	Policy  Policy
	Log     *slog.Logger
	Metrics *Metrics
}

// Server receives Envoy's access-log streams.
type Server struct {
	o Options
}

// Register serves the access log service on g. g must be made with
// ServerCodec among its options: the entries arrive as raw bytes.
func Register(g *grpc.Server, o Options) *Server {
	if o.Metrics == nil {
		o.Metrics = NewMetrics(prometheus.NewRegistry(), nil)
	}
	s := &Server{o: o}
	desc := alsv3.AccessLogService_ServiceDesc
	desc.HandlerType = (*any)(nil)
	desc.Streams = []grpc.StreamDesc{{
		StreamName:    desc.Streams[0].StreamName,
		ClientStreams: true,
		Handler: func(_ any, stream grpc.ServerStream) error {
			return s.stream(stream)
		},
	}}
	g.RegisterService(&desc, s)
	return s
}

// rawMessage is a message's encoding, as ServerCodec hands it over.
type rawMessage []byte

// rawCodec passes a rawMessage's bytes through and leaves every other
// message to protobuf's codec.
type rawCodec struct{ encoding.CodecV2 }

func (c rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	if r, ok := v.(*rawMessage); ok {
		*r = data.Materialize()
		return nil
	}
	return c.CodecV2.Unmarshal(data, v)
}

// ServerCodec is the gRPC server option the access log service needs: its
// entries are decoded straight off the wire (see wire.go); every other
// service's messages go through protobuf as usual.
func ServerCodec() grpc.ServerOption {
	return grpc.ForceServerCodecV2(rawCodec{encoding.GetCodecV2(proto.Name)})
}

// stream reads one Envoy worker's stream of entries until it ends.
func (s *Server) stream(stream grpc.ServerStream) error {
	for {
		var msg rawMessage
		if err := stream.RecvMsg(&msg); err != nil {
			if errors.Is(err, io.EOF) || status.Code(err) == codes.Canceled || errors.Is(err, context.Canceled) {
				return nil
			}
			return err
		}
		if err := decodeMessage(msg, s.entry); err != nil {
			s.o.Log.Warn("access log: dropping a malformed message", "error", err)
			return status.Error(codes.InvalidArgument, err.Error())
		}
	}
}

func (s *Server) entry(e entry) {
	if e.intermediate {
		// A periodic entry of a request still running: its end comes later.
		return
	}
	r := policy.Response{Runner: e.runner, Status: e.status, Elapsed: e.elapsed}
	r.Hints, r.HintsReported = e.own[contract.MetaRunnerHints]
	key := e.own[contract.MetaFlight]
	if key != "" {
		s.o.Metrics.decided.Inc()
	} else {
		s.o.Metrics.undecided.Inc()
	}
	s.o.Policy.Finish(key, r)
}

// Metrics count what the access log brings, and the flights waiting for it.
type Metrics struct {
	entries            *prometheus.CounterVec
	decided, undecided prometheus.Counter
}

// NewMetrics registers the access log's metrics on reg. awaiting, when
// set, reports the flights waiting for their end report and how many ended
// unreported (policy.Engine.Awaiting).
func NewMetrics(reg prometheus.Registerer, awaiting func() (int, uint64)) *Metrics {
	m := &Metrics{entries: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "switchyard_access_log_entries_total",
		Help: "Finished requests Envoy reported through its access log, by whether switchyard decided them.",
	}, []string{"request"})}
	reg.MustRegister(m.entries)
	m.decided, m.undecided = m.entries.WithLabelValues("decided"), m.entries.WithLabelValues("undecided")
	if awaiting != nil {
		reg.MustRegister(
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "switchyard_requests_awaiting_end",
				Help: "Decided requests whose end Envoy's access log has not reported yet.",
			}, func() float64 { n, _ := awaiting(); return float64(n) }),
			prometheus.NewCounterFunc(prometheus.CounterOpts{
				Name: "switchyard_requests_unreported_total",
				Help: "Decided requests taken as ended without an access-log report (past their route's timeout, or too many waiting).",
			}, func() float64 { _, n := awaiting(); return float64(n) }),
		)
	}
	return m
}

// Entries is the counter of entries of decided ("decided") or undecided
// ("undecided") requests.
func (m *Metrics) Entries(request string) prometheus.Counter {
	return m.entries.WithLabelValues(request)
}
