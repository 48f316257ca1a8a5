package extproc

import (
	"context"
	"strings"
	"time"

	"google.golang.org/grpc/metadata"
)

// trace hands the decision, just sent to Envoy, to the tracer: a span from
// the request's headers' arrival to now.
func (x *exchange) trace(ctx context.Context) {
	if x.rec == nil || !x.s.o.Tracer.Enabled() {
		return
	}
	traceparent, tracestate := traceContext(ctx, x.req.Headers)
	x.s.o.Tracer.Decision(traceparent, tracestate, x.begun, time.Now(), x.rec)
}

// traceContext is the W3C trace context the decision's span continues.
// When Envoy traces the request, it sends its span of the ext_proc call
// in the stream's gRPC metadata (the request headers still carry only the
// client's traceparent, if any: Envoy adds its own when it forwards the
// request upstream); else the client's, from the request headers.
func traceContext(ctx context.Context, headers map[string]string) (traceparent, tracestate string) {
	md, _ := metadata.FromIncomingContext(ctx)
	if tp := md.Get("traceparent"); len(tp) > 0 && tp[0] != "" {
		return tp[0], strings.Join(md.Get("tracestate"), ",")
	}
	return headers["traceparent"], headers["tracestate"]
}
