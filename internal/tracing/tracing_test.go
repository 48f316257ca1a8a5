package tracing_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/switchyard/switchyard/internal/config"
	"github.com/switchyard/switchyard/internal/decisions"
	"github.com/switchyard/switchyard/internal/testutil/otlpsink"
	"github.com/switchyard/switchyard/internal/tracing"
)

const (
	clientTrace  = "4bf92f3577b34da6a3ce929d0e0e4736"
	clientSpan   = "00f067aa0ba902b7"
	sampled      = "00-" + clientTrace + "-" + clientSpan + "-01"
	notSampled   = "00-" + clientTrace + "-" + clientSpan + "-00"
	clientState  = "vendor=opaque"
	decideMillis = 1.25
)

func record() *decisions.Record {
	return &decisions.Record{
		ID: 7, Route: "images", Rule: 0, When: "body.width * body.height <= 1048576", Pool: "a100",
		Fallback: []string{"a6000"}, Hint: "flux", HintSource: "hint_from", Outcome: "hit", Policy: "soonest",
		Body: "fields", Cost: 2,
		Chosen:   &decisions.Candidate{Runner: "10.0.0.1:9001", InFlight: 1, Warm: true, Predicted: decisions.Millis(40 * time.Millisecond), Why: "warm, free, 1 in flight"},
		RunnerUp: &decisions.Candidate{Runner: "10.0.0.2:9001", Predicted: decisions.Millis(3 * time.Second), Why: "cold: model load"},
		HintAge:  decisions.Millis(2 * time.Second),
		Decide:   decisions.Millis(1250 * time.Microsecond),
	}
}

func newTracer(t *testing.T, c *config.Tracing) (*tracing.Tracer, *tracetest.InMemoryExporter) {
	t.Helper()
	exp := tracetest.NewInMemoryExporter()
	tr, err := tracing.New(context.Background(), tracing.Options{Config: c, Exporter: exp})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tr.Shutdown(context.Background()) })
	return tr, exp
}

func flushed(t *testing.T, tr *tracing.Tracer, exp *tracetest.InMemoryExporter) tracetest.SpanStubs {
	t.Helper()
	if err := tr.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	return exp.GetSpans()
}

// A decision's span continues the request's trace: the same trace id, the
// caller's span as parent, its tracestate kept, the decision's times and
// every field of the record as an attribute.
func TestDecisionSpanContinuesTheTrace(t *testing.T) {
	tr, exp := newTracer(t, &config.Tracing{SampleRatio: 0, ServiceName: "edge-1"})
	start := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	end := start.Add(3 * time.Millisecond)
	tr.Decision(sampled, clientState, start, end, record())
	spans := flushed(t, tr, exp)
	if len(spans) != 1 {
		t.Fatalf("%d spans, want 1", len(spans))
	}
	s := spans[0]
	if s.Name != tracing.SpanName || s.SpanKind != trace.SpanKindServer {
		t.Errorf("span %q kind %v", s.Name, s.SpanKind)
	}
	if s.SpanContext.TraceID().String() != clientTrace || s.Parent.SpanID().String() != clientSpan || !s.Parent.IsRemote() {
		t.Errorf("trace %s parent %s (remote %v), want %s / %s", s.SpanContext.TraceID(), s.Parent.SpanID(), s.Parent.IsRemote(), clientTrace, clientSpan)
	}
	if got := s.SpanContext.TraceState().String(); got != clientState {
		t.Errorf("tracestate %q, want %q", got, clientState)
	}
	if !s.StartTime.Equal(start) || !s.EndTime.Equal(end) {
		t.Errorf("times %v – %v, want %v – %v", s.StartTime, s.EndTime, start, end)
	}
	want := map[attribute.Key]attribute.Value{
		"switchyard.route":                  attribute.StringValue("images"),
		"switchyard.rule":                   attribute.IntValue(0),
		"switchyard.rule.when":              attribute.StringValue("body.width * body.height <= 1048576"),
		"switchyard.pool":                   attribute.StringValue("a100"),
		"switchyard.fallback":               attribute.StringSliceValue([]string{"a6000"}),
		"switchyard.hint":                   attribute.StringValue("flux"),
		"switchyard.hint.source":            attribute.StringValue("hint_from"),
		"switchyard.outcome":                attribute.StringValue("hit"),
		"switchyard.queued":                 attribute.BoolValue(false),
		"switchyard.policy":                 attribute.StringValue("soonest"),
		"switchyard.cost":                   attribute.Float64Value(2),
		"switchyard.body":                   attribute.StringValue("fields"),
		"switchyard.runner":                 attribute.StringValue("10.0.0.1:9001"),
		"switchyard.runner.why":             attribute.StringValue("warm, free, 1 in flight"),
		"switchyard.runner.in_flight":       attribute.Int64Value(1),
		"switchyard.runner.warm":            attribute.BoolValue(true),
		"switchyard.runner.predicted_ms":    attribute.Float64Value(40),
		"switchyard.runner_up":              attribute.StringValue("10.0.0.2:9001"),
		"switchyard.runner_up.why":          attribute.StringValue("cold: model load"),
		"switchyard.runner_up.predicted_ms": attribute.Float64Value(3000),
		"switchyard.hint_age_ms":            attribute.Float64Value(2000),
		"switchyard.decide_ms":              attribute.Float64Value(decideMillis),
		"switchyard.decision_id":            attribute.StringValue("7"),
	}
	got := map[attribute.Key]attribute.Value{}
	for _, kv := range s.Attributes {
		got[kv.Key] = kv.Value
	}
	if diff := cmp.Diff(want, got, cmp.Comparer(func(a, b attribute.Value) bool { return a.Emit() == b.Emit() && a.Type() == b.Type() })); diff != "" {
		t.Errorf("attributes (-want +got):\n%s", diff)
	}
	if name, _ := s.Resource.Set().Value("service.name"); name.AsString() != "edge-1" {
		t.Errorf("service.name %q, want the file's edge-1", name.AsString())
	}
}

// Sampling follows the parent: a parent sampled out leaves no span even at
// ratio 1, a sampled one is kept even at ratio 0; requests without a
// parent are sampled at the ratio.
func TestSamplingFollowsTheParent(t *testing.T) {
	for _, tt := range []struct {
		name   string
		ratio  float64
		parent string
		want   int
	}{
		{"parent sampled out", 1, notSampled, 0},
		{"parent sampled", 0, sampled, 1},
		{"no parent, ratio 1", 1, "", 1},
		{"no parent, ratio 0", 0, "", 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tr, exp := newTracer(t, &config.Tracing{SampleRatio: tt.ratio})
			tr.Decision(tt.parent, "", time.Now(), time.Now(), record())
			if got := len(flushed(t, tr, exp)); got != tt.want {
				t.Errorf("%d spans, want %d", got, tt.want)
			}
		})
	}
}

// A traceparent that is not one starts a new trace: no crash, no parent.
func TestMalformedTraceparentStartsANewTrace(t *testing.T) {
	tr, exp := newTracer(t, &config.Tracing{SampleRatio: 1})
	for _, tp := range []string{"garbage", "00-" + clientTrace + "-" + clientSpan, "00-00000000000000000000000000000000-" + clientSpan + "-01", "ff-" + clientTrace + "-" + clientSpan + "-01", "00-" + clientTrace + "-0000000000000000-01"} {
		tr.Decision(tp, "k=v", time.Now(), time.Now(), record())
	}
	spans := flushed(t, tr, exp)
	if len(spans) != 5 {
		t.Fatalf("%d spans, want 5", len(spans))
	}
	for _, s := range spans {
		if s.Parent.IsValid() || !s.SpanContext.IsValid() || s.SpanContext.TraceID().String() == clientTrace {
			t.Errorf("span with parent %v, trace %s: want a new root", s.Parent, s.SpanContext.TraceID())
		}
	}
}

// Tracing off is a nil Tracer: every call is safe and nothing is made.
func TestOffIsNil(t *testing.T) {
	tr, err := tracing.New(context.Background(), tracing.Options{Config: nil, Exporter: tracetest.NewInMemoryExporter()})
	if err != nil || tr != nil {
		t.Fatalf("New(nil config) = %v, %v; want a nil Tracer", tr, err)
	}
	if tr.Enabled() {
		t.Error("a nil Tracer says it is enabled")
	}
	tr.Decision(sampled, "", time.Now(), time.Now(), record())
	if tr.Flush(context.Background()) != nil || tr.Shutdown(context.Background()) != nil {
		t.Error("Flush or Shutdown on a nil Tracer failed")
	}
	on, exp := newTracer(t, &config.Tracing{SampleRatio: 1})
	on.Decision(sampled, "", time.Now(), time.Now(), nil) // no record: no span
	if n := len(flushed(t, on, exp)); n != 0 {
		t.Errorf("%d spans without a record", n)
	}
}

// OTEL_SERVICE_NAME names the service when the file does not, and
// OTEL_RESOURCE_ATTRIBUTES adds attributes; the file's name wins.
func TestServiceNameFromEnvironment(t *testing.T) {
	t.Setenv("OTEL_SERVICE_NAME", "from-env")
	t.Setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=test")
	for _, tt := range []struct{ file, want string }{{"", "from-env"}, {"from-file", "from-file"}} {
		tr, exp := newTracer(t, &config.Tracing{SampleRatio: 1, ServiceName: tt.file})
		tr.Decision("", "", time.Now(), time.Now(), record())
		spans := flushed(t, tr, exp)
		if len(spans) != 1 {
			t.Fatalf("%d spans", len(spans))
		}
		set := spans[0].Resource.Set()
		name, _ := set.Value("service.name")
		env, _ := set.Value("deployment.environment")
		if name.AsString() != tt.want || env.AsString() != "test" {
			t.Errorf("file %q: service.name %q, deployment.environment %q; want %q, test", tt.file, name.AsString(), env.AsString(), tt.want)
		}
	}
}

// The real exporter sends the span over OTLP/gRPC to a collector: here an
// in-process receiver. Shutdown flushes what is queued.
func TestExportsOverOTLP(t *testing.T) {
	sink := otlpsink.Start(t)
	tr, err := tracing.New(context.Background(), tracing.Options{Config: &config.Tracing{Endpoint: sink.Addr, Insecure: true, SampleRatio: 1}})
	if err != nil {
		t.Fatal(err)
	}
	tr.Decision(sampled, clientState, time.Now(), time.Now().Add(time.Millisecond), record())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := tr.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	spans := sink.Spans()
	if len(spans) != 1 {
		t.Fatalf("collector got %d spans, want 1", len(spans))
	}
	s := spans[0]
	if s.Name != tracing.SpanName || s.Service != config.DefaultServiceName || s.TraceID != clientTrace || s.ParentSpanID != clientSpan ||
		s.Str("switchyard.route") != "images" || s.Str("switchyard.pool") != "a100" || s.Str("switchyard.outcome") != "hit" {
		t.Errorf("received %+v", s)
	}
	// After Shutdown nothing is made or sent.
	tr.Decision(sampled, "", time.Now(), time.Now(), record())
	if err := tr.Flush(ctx); err != nil {
		t.Logf("flush after shutdown: %v", err)
	}
	if n := len(sink.Spans()); n != 1 {
		t.Errorf("%d spans after shutdown, want 1", n)
	}
}

// A decision is cheap: it never waits on the exporter.
func BenchmarkDecision(b *testing.B) {
	for _, bc := range []struct {
		name  string
		ratio float64
	}{{"sampled", 1}, {"not_sampled", 0}} {
		b.Run(bc.name, func(b *testing.B) {
			tr, err := tracing.New(context.Background(), tracing.Options{Config: &config.Tracing{SampleRatio: bc.ratio}, Exporter: tracetest.NewNoopExporter()})
			if err != nil {
				b.Fatal(err)
			}
			defer tr.Shutdown(context.Background())
			r, now := record(), time.Now()
			b.ReportAllocs()
			for b.Loop() {
				tr.Decision("", "", now, now, r)
			}
		})
	}
}
