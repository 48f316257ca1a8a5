package tracing

import (
	"context"
	"log/slog"
	"strconv"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/switchyard/switchyard/internal/config"
	"github.com/switchyard/switchyard/internal/decisions"
)

// SpanName is the name of a decision's span.
const SpanName = "switchyard decide"

// scope names the instrumentation in exported spans.
const scope = "github.com/switchyard/switchyard/internal/tracing"

// Options build a Tracer.
type Options struct {
	Config *config.Tracing
	Log    *slog.Logger
	// Exporter, when set, replaces the OTLP exporter (tests).
	Exporter sdktrace.SpanExporter
}

// Tracer makes decision spans. A nil *Tracer is tracing off: every method
// is safe on it and does nothing.
type Tracer struct {
	provider *sdktrace.TracerProvider
	tracer   trace.Tracer
	prop     propagation.TextMapPropagator
}

// New builds a Tracer for o.Config; nil config is tracing off (a nil
// Tracer, no error). Nothing connects yet: the exporter dials the
// collector lazily and retries, so a collector that is down costs spans,
// never requests.
func New(ctx context.Context, o Options) (*Tracer, error) {
	c := o.Config
	if c == nil {
		return nil, nil
	}
	log := o.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	exp := o.Exporter
	if exp == nil {
		var opts []otlptracegrpc.Option
		if c.Endpoint != "" {
			opts = append(opts, otlptracegrpc.WithEndpoint(c.Endpoint))
		}
		if c.Insecure {
			opts = append(opts, otlptracegrpc.WithInsecure())
		}
		var err error
		if exp, err = otlptracegrpc.New(ctx, opts...); err != nil {
			return nil, err
		}
	}
	res, err := newResource(ctx, c)
	if err != nil {
		// A malformed OTEL_RESOURCE_ATTRIBUTES: what could be read is kept.
		log.Warn("trace resource attributes", "error", err)
	}
	if res == nil {
		res = resource.Empty()
	}
	p := sdktrace.NewTracerProvider(
		sdktrace.WithResource(res),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(c.SampleRatio))),
		// Spans queue in memory and leave in batches; a full queue drops
		// spans rather than wait.
		sdktrace.WithBatcher(&loggedExporter{SpanExporter: exp, log: log}),
	)
	return &Tracer{
		provider: p,
		tracer:   p.Tracer(scope),
		prop:     propagation.TraceContext{},
	}, nil
}

// newResource names the service: service_name from the file, else
// OTEL_SERVICE_NAME, else the default; OTEL_RESOURCE_ATTRIBUTES adds the
// rest.
func newResource(ctx context.Context, c *config.Tracing) (*resource.Resource, error) {
	opts := []resource.Option{
		resource.WithAttributes(attribute.String("service.name", config.DefaultServiceName)),
		resource.WithTelemetrySDK(),
		resource.WithFromEnv(),
	}
	if c.ServiceName != "" {
		opts = append(opts, resource.WithAttributes(attribute.String("service.name", c.ServiceName)))
	}
	return resource.New(ctx, opts...)
}

// Enabled says tracing is on: the caller builds a decision record for it.
func (t *Tracer) Enabled() bool { return t != nil }

// Decision records r as one span from start (the request's first message
// reached switchyard) to end (its answer was sent to Envoy), the child of
// the W3C traceparent and tracestate given. A missing or malformed
// traceparent makes a new trace, sampled at the configured ratio. It never
// blocks: the span is queued for the batch exporter.
func (t *Tracer) Decision(traceparent, tracestate string, start, end time.Time, r *decisions.Record) {
	if t == nil || r == nil {
		return
	}
	ctx := context.Background()
	if traceparent != "" {
		carrier := propagation.MapCarrier{"traceparent": traceparent}
		if tracestate != "" {
			carrier["tracestate"] = tracestate
		}
		ctx = t.prop.Extract(ctx, carrier)
	}
	_, span := t.tracer.Start(ctx, SpanName, trace.WithTimestamp(start), trace.WithSpanKind(trace.SpanKindServer))
	if span.IsRecording() {
		span.SetAttributes(Attributes(r)...)
	}
	span.End(trace.WithTimestamp(end))
}

// Attributes are a decision record's fields as span attributes; fields
// the record leaves empty are left out.
func Attributes(r *decisions.Record) []attribute.KeyValue {
	a := make([]attribute.KeyValue, 0, 24)
	str := func(k, v string) {
		if v != "" {
			a = append(a, attribute.String(k, v))
		}
	}
	ms := func(k string, d decisions.Millis) {
		a = append(a, attribute.Float64(k, float64(d.Std().Microseconds())/1000))
	}
	a = append(a, attribute.String("switchyard.route", r.Route), attribute.Int("switchyard.rule", r.Rule))
	str("switchyard.rule.when", r.When)
	a = append(a, attribute.String("switchyard.pool", r.Pool))
	str("switchyard.variant", r.Variant)
	if len(r.Fallback) > 0 {
		a = append(a, attribute.StringSlice("switchyard.fallback", r.Fallback))
	}
	str("switchyard.hint", r.Hint)
	str("switchyard.hint.source", r.HintSource)
	a = append(a, attribute.String("switchyard.outcome", r.Outcome), attribute.Bool("switchyard.queued", r.Queued))
	str("switchyard.policy", r.Policy)
	if r.Cost != 0 {
		a = append(a, attribute.Float64("switchyard.cost", r.Cost))
	}
	str("switchyard.body", r.Body)
	if c := r.Chosen; c != nil {
		a = append(a, attribute.String("switchyard.runner", c.Runner), attribute.String("switchyard.runner.why", c.Why),
			attribute.Int64("switchyard.runner.in_flight", c.InFlight), attribute.Bool("switchyard.runner.warm", c.Warm))
		if c.Predicted != 0 {
			ms("switchyard.runner.predicted_ms", c.Predicted)
		}
	}
	if c := r.RunnerUp; c != nil {
		a = append(a, attribute.String("switchyard.runner_up", c.Runner), attribute.String("switchyard.runner_up.why", c.Why))
		if c.Predicted != 0 {
			ms("switchyard.runner_up.predicted_ms", c.Predicted)
		}
	}
	if r.HintAge != 0 {
		ms("switchyard.hint_age_ms", r.HintAge)
	}
	ms("switchyard.decide_ms", r.Decide)
	if r.ID != 0 {
		// The record's ID at GET /debug/decisions.
		a = append(a, attribute.String("switchyard.decision_id", strconv.FormatUint(r.ID, 10)))
	}
	return a
}

// Flush exports the spans queued so far.
func (t *Tracer) Flush(ctx context.Context) error {
	if t == nil {
		return nil
	}
	return t.provider.ForceFlush(ctx)
}

// Shutdown exports the queued spans and stops the exporter; decisions
// after it make no spans.
func (t *Tracer) Shutdown(ctx context.Context) error {
	if t == nil {
		return nil
	}
	return t.provider.Shutdown(ctx)
}

// loggedExporter says in switchyard's log when exporting starts failing
// and when it works again (once each way, not per batch), instead of the
// SDK's global error handler.
type loggedExporter struct {
	sdktrace.SpanExporter
	log    *slog.Logger
	failed atomic.Bool
}

func (e *loggedExporter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	err := e.SpanExporter.ExportSpans(ctx, spans)
	switch {
	case err != nil && !e.failed.Swap(true):
		e.log.Warn("trace export failing; spans are dropped until the collector answers", "error", err)
	case err == nil && e.failed.Swap(false):
		e.log.Info("trace export works again")
	}
	return nil
}
