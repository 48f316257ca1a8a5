package xds_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	statuspb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/switchyard/switchyard/internal/config"
	"github.com/switchyard/switchyard/xds"
	"github.com/switchyard/switchyard/xds/translate"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func resources(t *testing.T, extra ...translate.Endpoint) *translate.Resources {
	t.Helper()
	cfg, err := config.Load("../internal/config/testdata/design.yaml")
	if err != nil {
		t.Fatal(err)
	}
	eps := map[string][]translate.Endpoint{}
	for _, p := range cfg.Pools {
		for _, a := range p.Runners {
			eps[p.Name] = append(eps[p.Name], translate.Endpoint{Address: a})
		}
	}
	eps["a100"] = append(eps["a100"], extra...)
	res, err := translate.Translate(translate.Input{Config: cfg, Endpoints: eps})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func TestPublishVersionsChangeOnlyWithContent(t *testing.T) {
	m := xds.NewMetrics(prometheus.NewRegistry())
	p := xds.NewPublisher(quiet, m)
	ctx := context.Background()
	if err := p.Publish(ctx, resources(t)); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.Ready():
	default:
		t.Fatal("not ready after the first publish")
	}
	v1 := p.Versions()
	if err := p.Publish(ctx, resources(t, translate.Endpoint{Address: "10.9.9.9:80"})); err != nil {
		t.Fatal(err)
	}
	v2 := p.Versions()
	for typ := range v1 {
		changed := v1[typ] != v2[typ]
		if want := typ == resourcev3.EndpointType; changed != want {
			t.Errorf("%s: version %q → %q; changed = %v, want %v", typ, v1[typ], v2[typ], changed, want)
		}
	}
	// Another process (a restart) never reuses a version.
	other := xds.NewPublisher(quiet, xds.NewMetrics(prometheus.NewRegistry()))
	if err := other.Publish(ctx, resources(t)); err != nil {
		t.Fatal(err)
	}
	for typ, v := range other.Versions() {
		if v == v1[typ] {
			t.Errorf("%s: a new process published version %q again", typ, v)
		}
	}
}

func TestInvalidSnapshotKeepsLastGood(t *testing.T) {
	m := xds.NewMetrics(prometheus.NewRegistry())
	p := xds.NewPublisher(quiet, m)
	ctx := context.Background()
	if err := p.Publish(ctx, resources(t)); err != nil {
		t.Fatal(err)
	}
	good := p.Versions()

	bad := resources(t)
	bad.Listeners = append(bad.Listeners, &listenerv3.Listener{Name: "unnamed-filter", FilterChains: []*listenerv3.FilterChain{{Filters: []*listenerv3.Filter{{}}}}})
	if err := p.Publish(ctx, bad); err == nil || !strings.Contains(err.Error(), "unnamed-filter") {
		t.Fatalf("invalid listener published, err = %v", err)
	}
	inconsistent := resources(t)
	inconsistent.Endpoints = inconsistent.Endpoints[1:]
	if err := p.Publish(ctx, inconsistent); err == nil || !strings.Contains(err.Error(), "inconsistent") {
		t.Fatalf("inconsistent snapshot published, err = %v", err)
	}
	snap, err := p.Cache().GetSnapshot("switchyard")
	if err != nil {
		t.Fatal(err)
	}
	for typ, v := range good {
		if got := snap.GetVersion(typ); got != v {
			t.Errorf("%s: served version %q, want the last good %q", typ, got, v)
		}
	}
	if got := testutil.ToFloat64(m.Snapshots.WithLabelValues("error")); got != 2 {
		t.Errorf("snapshot errors counted = %v, want 2", got)
	}
}

// A real ADS client stream: the server answers, and a NACK is counted.
func TestNackIsCounted(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := xds.NewMetrics(reg)
	p := xds.NewPublisher(quiet, m)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := p.Publish(ctx, resources(t)); err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer()
	xds.Register(g, xds.ServerOptions{Context: ctx, Publisher: p, Log: quiet, Metrics: m})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go g.Serve(lis)
	defer g.Stop()

	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	sctx, scancel := context.WithTimeout(ctx, 10*time.Second)
	defer scancel()
	stream, err := discoveryv3.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(sctx)
	if err != nil {
		t.Fatal(err)
	}
	node := &corev3.Node{Id: "test-envoy"}
	if err := stream.Send(&discoveryv3.DiscoveryRequest{Node: node, TypeUrl: resourcev3.ClusterType}); err != nil {
		t.Fatal(err)
	}
	resp, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if got := len(resp.GetResources()); got != 8 {
		t.Fatalf("got %d clusters, want 5 pools, 2 pool+fallback aggregates and ext_proc", got)
	}
	if err := stream.Send(&discoveryv3.DiscoveryRequest{
		Node: node, TypeUrl: resourcev3.ClusterType, ResponseNonce: resp.GetNonce(),
		ErrorDetail: &statuspb.Status{Code: 3, Message: "rejected for the test"},
	}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for testutil.ToFloat64(m.Nacks.WithLabelValues("Cluster")) != 1 {
		if time.Now().After(deadline) {
			t.Fatal("NACK not counted")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got := testutil.ToFloat64(m.Clients); got != 1 {
		t.Errorf("connected clients = %v, want 1", got)
	}
	if got := testutil.ToFloat64(m.Pushes.WithLabelValues("Cluster")); got < 1 {
		t.Errorf("pushes = %v, want ≥ 1", got)
	}
}
