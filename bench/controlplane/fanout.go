package controlplane

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

const (
	connectTimeout = 2 * time.Minute
	pushTimeout    = time.Minute
	// maxRecvMsg leaves room for an EDS answer of a very large pool
	// (about 30 bytes per endpoint).
	maxRecvMsg = 256 << 20
)

// fanout connects o.ADSClients simulated Envoys to switchyard's ADS server
// and times o.Pushes runner registrations reaching each of them.
func (b *bench) fanout(ctx context.Context, grpcAddr string) (Fanout, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// The pool starts at its full size, as in the registration measurement.
	if err := b.runnerAPI(ctx, http.MethodPut, b.live.addr); err != nil {
		return Fanout{}, err
	}
	res := Fanout{Endpoints: b.n, Clients: b.o.ADSClients, Pushes: b.o.Pushes}

	start := time.Now()
	var cur atomic.Pointer[push]
	errc := make(chan error, b.o.ADSClients)
	cs := make([]*adsClient, b.o.ADSClients)
	var wg sync.WaitGroup
	defer func() {
		cancel()
		for _, c := range cs {
			if c != nil {
				c.conn.Close()
			}
		}
		wg.Wait()
	}()
	for i := range cs {
		c, err := dialADS(ctx, grpcAddr, i, &cur)
		if err != nil {
			return Fanout{}, fmt.Errorf("ADS client %d: %w", i, err)
		}
		cs[i] = c
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := c.run(); err != nil && ctx.Err() == nil {
				errc <- fmt.Errorf("ADS client %d: %w", c.i, err)
			}
		}()
	}
	base, err := settled(ctx, cs, errc, connectTimeout)
	if err != nil {
		return Fanout{}, fmt.Errorf("clients never agreed on a first EDS version: %w", err)
	}
	res.ConnectSeconds = time.Since(start).Seconds()
	logf(b.o, "fan-out: %d ADS clients hold EDS version %s after %.2fs", len(cs), base, res.ConnectSeconds)

	var perClient, all []time.Duration
	for k := range b.o.Pushes {
		p := &push{before: base, lat: make([]atomic.Int64, len(cs)), done: make(chan struct{})}
		p.left.Store(int64(len(cs)))
		p.t0 = time.Now()
		cur.Store(p)
		if err := b.runnerAPI(ctx, http.MethodPut, pushAddr(k)); err != nil {
			return Fanout{}, fmt.Errorf("push %d: %w", k+1, err)
		}
		select {
		case <-p.done:
		case err := <-errc:
			return Fanout{}, fmt.Errorf("push %d: %w", k+1, err)
		case <-time.After(pushTimeout):
			return Fanout{}, fmt.Errorf("push %d: %d of %d clients did not get a new EDS version within %v", k+1, p.left.Load(), len(cs), pushTimeout)
		case <-ctx.Done():
			return Fanout{}, ctx.Err()
		}
		cur.Store(nil)
		var last time.Duration
		for i := range p.lat {
			d := time.Duration(p.lat[i].Load())
			perClient = append(perClient, d)
			last = max(last, d)
			res.Delivered++
		}
		all = append(all, last)
		// The next push starts from the version everyone now holds; a
		// client still receiving another version would blur it.
		if base, err = settled(ctx, cs, errc, pushTimeout); err != nil {
			return Fanout{}, fmt.Errorf("after push %d: %w", k+1, err)
		}
		if base == p.before {
			return Fanout{}, fmt.Errorf("push %d: clients went back to version %s", k+1, base)
		}
	}
	res.PerClient, res.AllClients = dist(perClient, false), dist(all, false)
	logf(b.o, "fan-out: per client p50 %.2f ms, p99 %.2f ms, max %.2f ms; all clients p50 %.2f ms, max %.2f ms",
		res.PerClient.P50, res.PerClient.P99, res.PerClient.Max, res.AllClients.P50, res.AllClients.Max)
	return res, nil
}

// push is one change being timed.
type push struct {
	t0     time.Time
	before string         // the EDS version every client held before it
	lat    []atomic.Int64 // per client: nanoseconds to the new version, 0 until then
	left   atomic.Int64
	done   chan struct{}
}

// received notes that client i got EDS version v at now.
func (p *push) received(i int, v string, now time.Time) {
	if v == p.before {
		return
	}
	if p.lat[i].CompareAndSwap(0, max(int64(now.Sub(p.t0)), 1)) && p.left.Add(-1) == 0 {
		close(p.done)
	}
}

// settled waits until every client has received an EDS version and they
// all hold the same one, and returns it.
func settled(ctx context.Context, cs []*adsClient, errc <-chan error, timeout time.Duration) (string, error) {
	deadline := time.Now().Add(timeout)
	for {
		v, same := "", true
		for _, c := range cs {
			got := c.version()
			if got == "" || (v != "" && got != v) {
				same = false
				break
			}
			v = got
		}
		if same {
			return v, nil
		}
		if time.Now().After(deadline) {
			return "", errTimeout
		}
		select {
		case err := <-errc:
			return "", err
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// adsClient speaks ADS as Envoy does: CDS first, then EDS for every EDS
// cluster it got, acknowledging every response.
type adsClient struct {
	i      int
	conn   *grpc.ClientConn
	stream grpc.BidiStreamingClient[discoveryv3.DiscoveryRequest, discoveryv3.DiscoveryResponse]
	cur    *atomic.Pointer[push]

	eds []string // cluster names asked for, sorted
	ver atomic.Pointer[string]
}

func dialADS(ctx context.Context, addr string, i int, cur *atomic.Pointer[push]) (*adsClient, error) {
	// One connection per client, as each Envoy has its own.
	conn, err := grpc.NewClient(addr,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxRecvMsg)))
	if err != nil {
		return nil, err
	}
	stream, err := discoveryv3.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(ctx)
	if err != nil {
		conn.Close()
		return nil, err
	}
	node := &corev3.Node{Id: fmt.Sprintf("bench-envoy-%d", i), Cluster: "bench"}
	if err := stream.Send(&discoveryv3.DiscoveryRequest{Node: node, TypeUrl: resourcev3.ClusterType}); err != nil {
		conn.Close()
		return nil, err
	}
	return &adsClient{i: i, conn: conn, stream: stream, cur: cur}, nil
}

func (c *adsClient) version() string {
	if v := c.ver.Load(); v != nil {
		return *v
	}
	return ""
}

func (c *adsClient) run() error {
	for {
		resp, err := c.stream.Recv()
		if err != nil {
			return err
		}
		now := time.Now()
		switch resp.GetTypeUrl() {
		case resourcev3.ClusterType:
			names, err := edsClusters(resp)
			if err != nil {
				return err
			}
			if err := c.ack(resp, nil); err != nil {
				return err
			}
			if !slices.Equal(names, c.eds) {
				// A new set of EDS clusters is a new subscription, as
				// Envoy makes when its clusters change.
				c.eds = names
				if err := c.stream.Send(&discoveryv3.DiscoveryRequest{TypeUrl: resourcev3.EndpointType, ResourceNames: names}); err != nil {
					return err
				}
			}
		case resourcev3.EndpointType:
			v := resp.GetVersionInfo()
			if p := c.cur.Load(); p != nil {
				p.received(c.i, v, now)
			}
			c.ver.Store(&v)
			if err := c.ack(resp, c.eds); err != nil {
				return err
			}
		default:
			return fmt.Errorf("unexpected %s response", resp.GetTypeUrl())
		}
	}
}

func (c *adsClient) ack(resp *discoveryv3.DiscoveryResponse, names []string) error {
	return c.stream.Send(&discoveryv3.DiscoveryRequest{
		TypeUrl:       resp.GetTypeUrl(),
		VersionInfo:   resp.GetVersionInfo(),
		ResponseNonce: resp.GetNonce(),
		ResourceNames: names,
	})
}

// edsClusters lists the EDS service names of a CDS response's clusters.
func edsClusters(resp *discoveryv3.DiscoveryResponse) ([]string, error) {
	var names []string
	for _, a := range resp.GetResources() {
		var cl clusterv3.Cluster
		if err := a.UnmarshalTo(&cl); err != nil {
			return nil, fmt.Errorf("CDS resource: %w", err)
		}
		if cl.GetType() != clusterv3.Cluster_EDS {
			continue
		}
		name := cl.GetEdsClusterConfig().GetServiceName()
		if name == "" {
			name = cl.GetName()
		}
		names = append(names, name)
	}
	if len(names) == 0 {
		return nil, errors.New("CDS response has no EDS cluster")
	}
	slices.Sort(names)
	return names, nil
}
