// Package tracing owns switchyard's OpenTelemetry traces: one span per
// decision, "switchyard decide", parented to the request's W3C trace
// context, carrying the decision record's fields as switchyard.*
// attributes, exported over OTLP/gRPC in batches off the request path.
//
// It owns the tracer provider (built from observe.tracing and the standard
// OTEL_* environment variables, never registered globally), the sampler,
// the exporter and their shutdown. It knows nothing of gRPC streams,
// ext_proc or Envoy: extproc hands it a trace context, two times and a
// decisions.Record. Envoy's own spans are configured by package translate.
//
//	extproc ─▶ tracing (Decision) ──(OTLP/gRPC, batched)──▶ collector ◀── Envoy's spans
package tracing
