// Package otlpsink is an OTLP/gRPC trace receiver for tests: a collector's
// TraceService on a loopback port that keeps every span it is sent, for
// the real exporters (switchyard's, Envoy's) to send to.
package otlpsink

import (
	"context"
	"encoding/hex"
	"net"
	"sync"
	"testing"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
)

// Span is one received span, flattened for assertions.
type Span struct {
	Service      string // the resource's service.name
	Name         string
	TraceID      string // hex
	SpanID       string // hex
	ParentSpanID string // hex; "" for a root
	Kind         tracepb.Span_SpanKind
	Attributes   map[string]*commonpb.AnyValue
	StartNanos   uint64
	EndNanos     uint64
}

// Str is a string attribute's value ("" when absent or not a string).
func (s Span) Str(key string) string { return s.Attributes[key].GetStringValue() }

// Sink receives spans on Addr until the test ends.
type Sink struct {
	coltracepb.UnimplementedTraceServiceServer
	Addr string // 127.0.0.1:port

	mu      sync.Mutex
	spans   []Span
	changed chan struct{} // closed and replaced on every export
}

// Start serves a sink on a free loopback port, stopped at the test's end.
func Start(t testing.TB) *Sink {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &Sink{Addr: lis.Addr().String(), changed: make(chan struct{})}
	g := grpc.NewServer()
	coltracepb.RegisterTraceServiceServer(g, s)
	go func() { _ = g.Serve(lis) }()
	t.Cleanup(g.Stop)
	return s
}

// Export keeps the spans of one request.
func (s *Sink) Export(_ context.Context, req *coltracepb.ExportTraceServiceRequest) (*coltracepb.ExportTraceServiceResponse, error) {
	var got []Span
	for _, rs := range req.GetResourceSpans() {
		service := ""
		for _, kv := range rs.GetResource().GetAttributes() {
			if kv.GetKey() == "service.name" {
				service = kv.GetValue().GetStringValue()
			}
		}
		for _, ss := range rs.GetScopeSpans() {
			for _, sp := range ss.GetSpans() {
				attrs := map[string]*commonpb.AnyValue{}
				for _, kv := range sp.GetAttributes() {
					attrs[kv.GetKey()] = kv.GetValue()
				}
				got = append(got, Span{
					Service: service, Name: sp.GetName(), Kind: sp.GetKind(),
					TraceID: hex.EncodeToString(sp.GetTraceId()), SpanID: hex.EncodeToString(sp.GetSpanId()),
					ParentSpanID: hex.EncodeToString(sp.GetParentSpanId()), Attributes: attrs,
					StartNanos: sp.GetStartTimeUnixNano(), EndNanos: sp.GetEndTimeUnixNano(),
				})
			}
		}
	}
	s.mu.Lock()
	s.spans = append(s.spans, got...)
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
	return &coltracepb.ExportTraceServiceResponse{}, nil
}

// Spans returns a copy of every span received so far.
func (s *Sink) Spans() []Span {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Span(nil), s.spans...)
}

// Wait returns the spans received once cond holds for them, or what was
// received when ctx ends (ok false).
func (s *Sink) Wait(ctx context.Context, cond func([]Span) bool) (spans []Span, ok bool) {
	for {
		s.mu.Lock()
		spans, changed := append([]Span(nil), s.spans...), s.changed
		s.mu.Unlock()
		if cond(spans) {
			return spans, true
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return spans, false
		}
	}
}
