package controlplane

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/envoy"
)

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// The smoke run is complete and sane. It checks shape, never speed: a timed
// assertion would fail on a loaded CI machine for no fault of the code.
func TestSmoke(t *testing.T) {
	if _, err := envoy.Find(); err != nil {
		t.Fatalf("this benchmark needs the real Envoy (make envoy): %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, err := Run(ctx, Options{Smoke: true, Log: testWriter{t}})
	if err != nil {
		t.Fatal(err)
	}
	o := res.Options
	if len(res.Registration) != len(o.Sizes) || len(res.Fanout) != len(o.Sizes) || len(o.Sizes) == 0 {
		t.Fatalf("%d registration and %d fan-out results for sizes %v", len(res.Registration), len(res.Fanout), o.Sizes)
	}
	positive := func(what string, d Dist, n int) {
		t.Helper()
		if d.N != n || d.Min <= 0 || d.Min > d.P50 || d.P50 > d.P99 || d.P99 > d.Max {
			t.Errorf("%s: %+v, want %d positive, ordered samples", what, d, n)
		}
	}
	for i, g := range res.Registration {
		if g.Endpoints != o.Sizes[i] {
			t.Errorf("registration %d: %d endpoints, want %d", i, g.Endpoints, o.Sizes[i])
		}
		positive("known", g.Known, o.Repeats)
		positive("routed", g.Routed, o.Repeats)
		positive("removed", g.Removed, o.Repeats)
		if g.HintRotations != 0 {
			// Not a failure of the code under test, but the probe was not
			// deterministic: the warm-up left a runner unmarked.
			t.Logf("size %d: %d probe hints were won by another runner", g.Endpoints, g.HintRotations)
		}
		if g.SwitchyardHeapBytes == 0 || g.EnvoyRSSBytes == 0 || g.EnvoyAllocatedBytes == 0 {
			t.Errorf("size %d: memory not read: %+v", g.Endpoints, g)
		}
		if g.WarmupRequests < g.Endpoints-1 {
			t.Errorf("size %d: %d warm-up requests for %d static runners", g.Endpoints, g.WarmupRequests, g.Endpoints-1)
		}
	}
	for _, f := range res.Fanout {
		if f.Clients != o.ADSClients || f.Pushes != o.Pushes || f.Delivered != f.Clients*f.Pushes {
			t.Errorf("fan-out at %d: %d clients, %d pushes, %d delivered", f.Endpoints, f.Clients, f.Pushes, f.Delivered)
		}
		positive("per client", f.PerClient, f.Clients*f.Pushes)
		positive("all clients", f.AllClients, f.Pushes)
		if f.AllClients.Max < f.PerClient.Max-0.001 || f.AllClients.Max > f.PerClient.Max+0.001 {
			t.Errorf("fan-out at %d: slowest push %v ms but slowest delivery %v ms", f.Endpoints, f.AllClients.Max, f.PerClient.Max)
		}
	}
	if _, err := json.Marshal(res); err != nil {
		t.Fatal(err)
	}
	md := res.Markdown()
	for _, want := range []string{"### Runner registration → Envoy", "### ADS fan-out", "| 100 |", "Target:"} {
		if !strings.Contains(md, want) {
			t.Errorf("Markdown lacks %q:\n%s", want, md)
		}
	}
	t.Logf("run took %.1fs\n%s", res.Seconds, md)
}
