package accesslog_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	datav3 "github.com/envoyproxy/go-control-plane/envoy/data/accesslog/v3"
	alsv3 "github.com/envoyproxy/go-control-plane/envoy/service/accesslog/v3"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/switchyard/switchyard/internal/accesslog"
	"github.com/switchyard/switchyard/internal/policy"
)

type finished struct {
	key string
	r   policy.Response
}

type recorder chan finished

func (c recorder) Finish(key string, r policy.Response) { c <- finished{key, r} }

func entry(key, hints string, withHints bool) *datav3.HTTPAccessLogEntry {
	own := map[string]*structpb.Value{}
	if key != "" {
		own["flight"] = structpb.NewStringValue(key)
	}
	if withHints {
		own["runner_hints"] = structpb.NewStringValue(hints)
	}
	return &datav3.HTTPAccessLogEntry{
		CommonProperties: &datav3.AccessLogCommon{
			UpstreamRemoteAddress: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
				Address: "::1", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 9001},
			}}},
			TimeToFirstUpstreamRxByte: durationpb.New(120 * time.Millisecond),
			Metadata:                  &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{"switchyard": {Fields: own}}},
		},
		Response: &datav3.HTTPResponseProperties{ResponseCode: wrapperspb.UInt32(200)},
	}
}

// Entries arrive over a real gRPC stream, batched, and each becomes a
// finished request: the flight key, the runner as ip:port, the status, the
// time to the response headers and the hints (reported, even when empty,
// or not reported at all). Intermediate entries finish nothing.
func TestEntriesFinishRequests(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer(accesslog.ServerCodec())
	rec := make(recorder, 16)
	reg := prometheus.NewRegistry()
	m := accesslog.NewMetrics(reg, func() (int, uint64) { return 3, 1 })
	accesslog.Register(g, accesslog.Options{Policy: rec, Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Metrics: m})
	go g.Serve(lis)
	defer g.Stop()

	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stream, err := alsv3.NewAccessLogServiceClient(conn).StreamAccessLogs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	intermediate := entry("k0", "x", true)
	intermediate.CommonProperties.IntermediateLogEntry = true
	err = stream.Send(&alsv3.StreamAccessLogsMessage{
		Identifier: &alsv3.StreamAccessLogsMessage_Identifier{LogName: "switchyard"},
		LogEntries: &alsv3.StreamAccessLogsMessage_HttpLogs{HttpLogs: &alsv3.StreamAccessLogsMessage_HTTPAccessLogEntries{
			LogEntry: []*datav3.HTTPAccessLogEntry{intermediate, entry("k1", "flux,sdxl", true), entry("", "", true), entry("k2", "", false)},
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []finished{
		{"k1", policy.Response{Runner: "[::1]:9001", Status: 200, Hints: "flux,sdxl", HintsReported: true, Elapsed: 120 * time.Millisecond}},
		{"", policy.Response{Runner: "[::1]:9001", Status: 200, Hints: "", HintsReported: true, Elapsed: 120 * time.Millisecond}},
		{"k2", policy.Response{Runner: "[::1]:9001", Status: 200, Elapsed: 120 * time.Millisecond}},
	}
	for i, w := range want {
		select {
		case got := <-rec:
			if got != w {
				t.Errorf("finished %d = %+v, want %+v", i, got, w)
			}
		case <-ctx.Done():
			t.Fatalf("finished %d never came", i)
		}
	}
	stream.CloseSend()
	if got := testutil.ToFloat64(m.Entries("decided")); got != 2 {
		t.Errorf("decided entries = %v, want 2", got)
	}
	if n, err := testutil.GatherAndCount(reg, "switchyard_requests_awaiting_end", "switchyard_requests_unreported_total"); err != nil || n != 2 {
		t.Errorf("awaiting metrics: %d series, %v", n, err)
	}
}
