package extproc

import (
	"context"
	"testing"

	"google.golang.org/grpc/metadata"
)

// The decision's span continues Envoy's span of the ext_proc call when the
// stream's metadata carries one, else the client's trace context.
func TestTraceContext(t *testing.T) {
	const envoy, client = "00-0af7651916cd43dd8448eb211c80319c-910de0108ae34b59-01", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	headers := map[string]string{"traceparent": client, "tracestate": "c=1"}
	for _, tt := range []struct {
		name          string
		md            metadata.MD
		headers       map[string]string
		parent, state string
	}{
		{"Envoy's span", metadata.Pairs("traceparent", envoy, "tracestate", "c=1"), headers, envoy, "c=1"},
		{"the client's", metadata.Pairs("content-type", "application/grpc"), headers, client, "c=1"},
		{"no metadata", nil, headers, client, "c=1"},
		{"none", nil, map[string]string{}, "", ""},
	} {
		ctx := context.Background()
		if tt.md != nil {
			ctx = metadata.NewIncomingContext(ctx, tt.md)
		}
		if p, s := traceContext(ctx, tt.headers); p != tt.parent || s != tt.state {
			t.Errorf("%s: %q %q, want %q %q", tt.name, p, s, tt.parent, tt.state)
		}
	}
}
