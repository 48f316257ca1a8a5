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
	"net"
	"strconv"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	datav3 "github.com/envoyproxy/go-control-plane/envoy/data/accesslog/v3"
	alsv3 "github.com/envoyproxy/go-control-plane/envoy/service/accesslog/v3"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
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
	alsv3.UnimplementedAccessLogServiceServer
	o Options
}

// Register serves the access log service on g.
func Register(g *grpc.Server, o Options) *Server {
	if o.Metrics == nil {
		o.Metrics = NewMetrics(prometheus.NewRegistry(), nil)
	}
	s := &Server{o: o}
	alsv3.RegisterAccessLogServiceServer(g, s)
	return s
}

// StreamAccessLogs reads one Envoy worker's stream of entries until it ends.
func (s *Server) StreamAccessLogs(stream alsv3.AccessLogService_StreamAccessLogsServer) error {
	for {
		msg, err := stream.Recv()
		if err != nil {
			if errors.Is(err, io.EOF) || status.Code(err) == codes.Canceled || errors.Is(err, context.Canceled) {
				return nil
			}
			return err
		}
		for _, e := range msg.GetHttpLogs().GetLogEntry() {
			s.entry(e)
		}
	}
}

func (s *Server) entry(e *datav3.HTTPAccessLogEntry) {
	c := e.GetCommonProperties()
	if c.GetIntermediateLogEntry() {
		// A periodic entry of a request still running: its end comes later.
		return
	}
	own := c.GetMetadata().GetFilterMetadata()[contract.MetadataNamespace].GetFields()
	r := policy.Response{
		Runner:  address(c.GetUpstreamRemoteAddress()),
		Status:  int(e.GetResponse().GetResponseCode().GetValue()),
		Elapsed: c.GetTimeToFirstUpstreamRxByte().AsDuration(),
	}
	if v, ok := own[contract.MetaRunnerHints]; ok {
		r.Hints, r.HintsReported = v.GetStringValue(), true
	}
	key := own[contract.MetaFlight].GetStringValue()
	if key != "" {
		s.o.Metrics.entries.WithLabelValues("decided").Inc()
	} else {
		s.o.Metrics.entries.WithLabelValues("undecided").Inc()
	}
	s.o.Policy.Finish(key, r)
}

// address is a runner's address as the registry spells it: ip:port.
func address(a *corev3.Address) string {
	sa := a.GetSocketAddress()
	if sa == nil || sa.GetAddress() == "" {
		return ""
	}
	return net.JoinHostPort(sa.GetAddress(), strconv.FormatUint(uint64(sa.GetPortValue()), 10))
}

// Metrics count what the access log brings, and the flights waiting for it.
type Metrics struct {
	entries *prometheus.CounterVec
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
	m.entries.WithLabelValues("decided")
	m.entries.WithLabelValues("undecided")
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
