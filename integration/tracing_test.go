package integration

import (
	"context"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/dev/simrunner"
	"github.com/switchyard/switchyard/internal/testutil/otlpsink"
	"github.com/switchyard/switchyard/internal/tracing"
)

// tracedRunner is a simulated runner that remembers the traceparent each
// request reached it with, by the x-test-id header.
type tracedRunner struct {
	Addr string
	mu   sync.Mutex
	seen map[string]string
}

func startTracedRunner(t *testing.T) *tracedRunner {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tr := &tracedRunner{Addr: lis.Addr().String(), seen: map[string]string{}}
	sim := simrunner.New(simrunner.Options{Name: "runner"})
	srv := &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tr.mu.Lock()
		tr.seen[r.Header.Get("x-test-id")] = r.Header.Get("traceparent")
		tr.mu.Unlock()
		sim.ServeHTTP(w, r)
	})}
	go srv.Serve(lis)
	t.Cleanup(func() { _ = srv.Close() })
	return tr
}

func (tr *tracedRunner) traceparent(id string) string {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return tr.seen[id]
}

func tracingConfig(sink *otlpsink.Sink, envoy bool, runner string) string {
	e := "false"
	if envoy {
		e = "true"
	}
	return `
observe:
  tracing: {endpoint: ` + sink.Addr + `, envoy: ` + e + `}
pools:
  - {name: a100, runners: [{address: ` + runner + `}]}
  - {name: h100, runners: [{address: ` + runner + `}]}
routes:
  - name: images
    match: {prefix: /}
    rules:
      - when: headers["x-size"] == "small"
        pool: a100
      - pool: h100
`
}

// waitSpans waits until cond holds for the spans of trace.
func waitSpans(t *testing.T, sink *otlpsink.Sink, what string, cond func(trace []otlpsink.Span) bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if spans, ok := sink.Wait(ctx, func(all []otlpsink.Span) bool { return cond(all) }); !ok {
		for _, sp := range spans {
			t.Logf("got %s %q trace %s span %s parent %s", sp.Service, sp.Name, sp.TraceID, sp.SpanID, sp.ParentSpanID)
		}
		t.Fatalf("%s: spans did not arrive", what)
	}
}

// find returns the span of trace with name (prefix "~" for a prefix
// match), or nil.
func find(spans []otlpsink.Span, trace, name string) *otlpsink.Span {
	for i, sp := range spans {
		if sp.TraceID != trace {
			continue
		}
		if sp.Name == name || strings.HasPrefix(name, "~") && strings.HasPrefix(sp.Name, name[1:]) {
			return &spans[i]
		}
	}
	return nil
}

// With observe.tracing and envoy: true, Envoy and switchyard export to the
// same collector (here an in-process OTLP receiver), and a request makes
// one trace: the client's span ─▶ Envoy's ingress ─▶ Envoy's span of the
// ext_proc call ─▶ switchyard's decision (the context travels in the
// ext_proc stream's gRPC metadata; the request headers still hold the
// client's traceparent), and ingress ─▶ the upstream attempt, whose
// context reaches the runner. Without a client traceparent Envoy starts
// the trace; a parent sampled out is followed by both; with envoy: false
// switchyard's span is the client's child.
func TestTracing(t *testing.T) {
	// switchyard's exporter honours the SDK's variables: export every
	// 100 ms instead of every 5 s.
	t.Setenv("OTEL_BSP_SCHEDULE_DELAY", "100")
	sink := otlpsink.Start(t)
	runner := startTracedRunner(t)
	s := NewStack(t, StackConfig{Body: tracingConfig(sink, true, runner.Addr)})

	// A parent sampled out: neither Envoy nor switchyard records the
	// request, and the runner is told so.
	const outTrace = "11111111111111111111111111111111"
	if r := s.MustDo(http.MethodPost, "/gen", map[string]string{"traceparent": "00-" + outTrace + "-2222222222222222-00", "x-test-id": "sampled-out"}, `{}`); r.Status != http.StatusOK {
		t.Fatalf("status %d", r.Status)
	}
	const trace, client = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"
	r := s.MustDo(http.MethodPost, "/gen", map[string]string{
		"traceparent": "00-" + trace + "-" + client + "-01", "tracestate": "client=1", "x-size": "small", "x-test-id": "with-parent",
	}, `{"prompt": "a cat"}`)
	if r.Status != http.StatusOK {
		t.Fatalf("status %d: %s", r.Status, r.RawBody)
	}
	const (
		ingress = "ingress"
		extproc = "async envoy.service.ext_proc.v3.ExternalProcessor.Process egress"
		router  = "router pool_a100 egress"
	)
	var spans []otlpsink.Span
	waitSpans(t, sink, "client-parented trace", func(all []otlpsink.Span) bool {
		spans = all
		return find(all, trace, tracing.SpanName) != nil && find(all, trace, ingress) != nil && find(all, trace, extproc) != nil && find(all, trace, router) != nil
	})
	decide, in, ext, up := find(spans, trace, tracing.SpanName), find(spans, trace, ingress), find(spans, trace, extproc), find(spans, trace, router)
	if in.ParentSpanID != client || ext.ParentSpanID != in.SpanID || decide.ParentSpanID != ext.SpanID || up.ParentSpanID != in.SpanID {
		t.Errorf("parents: ingress %s (want the client's %s), ext_proc %s (want ingress %s), decide %s (want ext_proc %s), upstream %s (want ingress)",
			in.ParentSpanID, client, ext.ParentSpanID, in.SpanID, decide.ParentSpanID, ext.SpanID, up.ParentSpanID)
	}
	if decide.Service != "switchyard" || in.Service != "switchyard-envoy" {
		t.Errorf("services: decide %q, ingress %q", decide.Service, in.Service)
	}
	if decide.Str("switchyard.route") != "images" || decide.Str("switchyard.pool") != "a100" || decide.Str("switchyard.outcome") != "none" ||
		decide.Str("switchyard.rule.when") != `headers["x-size"] == "small"` || decide.Str("switchyard.runner") != runner.Addr || decide.Attributes["switchyard.decide_ms"] == nil {
		t.Errorf("decision attributes %v", decide.Attributes)
	}
	if decide.StartNanos < ext.StartNanos || decide.EndNanos > in.EndNanos || decide.EndNanos < decide.StartNanos {
		t.Errorf("decide %d–%d outside ext_proc's start %d / ingress's end %d", decide.StartNanos, decide.EndNanos, ext.StartNanos, in.EndNanos)
	}
	if got, want := runner.traceparent("with-parent"), "00-"+trace+"-"+up.SpanID+"-01"; got != want {
		t.Errorf("runner got traceparent %q, want the upstream span's %q", got, want)
	}
	// Spans leave in the order they end: the sampled-out request's would
	// have come first.
	for _, sp := range spans {
		if sp.TraceID == outTrace {
			t.Errorf("a span of the sampled-out request: %s %q", sp.Service, sp.Name)
		}
	}
	if tp := runner.traceparent("sampled-out"); !strings.HasPrefix(tp, "00-"+outTrace+"-") || !strings.HasSuffix(tp, "-00") {
		t.Errorf("runner got traceparent %q for the sampled-out request", tp)
	}

	// No traceparent from the client: Envoy starts the trace, and the
	// decision joins it through the ext_proc stream.
	if r := s.MustDo(http.MethodPost, "/gen", map[string]string{"x-test-id": "root"}, `{}`); r.Status != http.StatusOK {
		t.Fatalf("status %d", r.Status)
	}
	rootTrace := ""
	waitSpans(t, sink, "Envoy-rooted trace", func(all []otlpsink.Span) bool {
		spans = all
		tp := runner.traceparent("root")
		if len(tp) != 55 {
			return false
		}
		rootTrace = tp[3:35]
		return find(all, rootTrace, tracing.SpanName) != nil && find(all, rootTrace, ingress) != nil && find(all, rootTrace, extproc) != nil
	})
	if in, ext, decide := find(spans, rootTrace, ingress), find(spans, rootTrace, extproc), find(spans, rootTrace, tracing.SpanName); in.ParentSpanID != "" || decide.ParentSpanID != ext.SpanID || decide.Str("switchyard.pool") != "h100" {
		t.Errorf("Envoy-rooted: ingress parent %q (want none), decide parent %s (want ext_proc %s), pool %q", in.ParentSpanID, decide.ParentSpanID, ext.SpanID, decide.Str("switchyard.pool"))
	}
}

// With envoy: false only switchyard traces: its decision span is the
// child of the client's traceparent, which ext_proc is sent for it.
func TestTracingSwitchyardOnly(t *testing.T) {
	t.Setenv("OTEL_BSP_SCHEDULE_DELAY", "100")
	sink := otlpsink.Start(t)
	runner := startTracedRunner(t)
	s := NewStack(t, StackConfig{Body: tracingConfig(sink, false, runner.Addr)})
	const trace, client = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	if r := s.MustDo(http.MethodPost, "/gen", map[string]string{"traceparent": "00-" + trace + "-" + client + "-01", "x-test-id": "only"}, `{}`); r.Status != http.StatusOK {
		t.Fatalf("status %d", r.Status)
	}
	var spans []otlpsink.Span
	waitSpans(t, sink, "switchyard's span", func(all []otlpsink.Span) bool {
		spans = all
		return find(all, trace, tracing.SpanName) != nil
	})
	if d := find(spans, trace, tracing.SpanName); d.ParentSpanID != client || d.Str("switchyard.pool") != "h100" {
		t.Errorf("decide parent %s (want the client's %s), pool %q", d.ParentSpanID, client, d.Str("switchyard.pool"))
	}
	for _, sp := range spans {
		if sp.Service != "switchyard" {
			t.Errorf("a span from %q (%q) with Envoy tracing off", sp.Service, sp.Name)
		}
	}
	// Envoy did not trace: the runner gets the client's traceparent as sent.
	if got := runner.traceparent("only"); got != "00-"+trace+"-"+client+"-01" {
		t.Errorf("runner got traceparent %q", got)
	}
}
