package registry_test

import (
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/switchyard/switchyard/internal/config"
	"github.com/switchyard/switchyard/internal/registry"
)

type clock struct{ t time.Time }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }

func mustConfig(t *testing.T, yaml string) *config.Config {
	t.Helper()
	cfg, err := config.Parse("t.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

const twoPools = `
listeners: [{name: l, address: 127.0.0.1, port: 10000}]
server: {drain_timeout: 10s}
pools:
  - {name: a, runners: [{address: 10.0.0.2:80}, {address: 10.0.0.1:80}]}
  - {name: b}
routes: [{name: r, match: {prefix: /}, rules: [{pool: a}]}]
`

func endpoints(r *registry.Registry) map[string][]registry.Endpoint { return r.Endpoints() }

func drained(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

func TestStaticRunnersAndRegistration(t *testing.T) {
	c := &clock{t: time.Unix(1000, 0)}
	r := registry.New(registry.Options{Now: c.now})
	r.ApplyConfig(mustConfig(t, twoPools))
	if !drained(r.Changed()) {
		t.Fatal("ApplyConfig did not signal a change")
	}
	want := map[string][]registry.Endpoint{
		"a": {{Address: "10.0.0.1:80"}, {Address: "10.0.0.2:80"}},
		"b": {},
	}
	if diff := cmp.Diff(want, endpoints(r)); diff != "" {
		t.Fatalf("endpoints (-want +got):\n%s", diff)
	}

	if _, err := r.Register("b", "10.0.0.9:8080", 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if !drained(r.Changed()) {
		t.Fatal("a new runner did not signal a change")
	}
	// A heartbeat is not a change of the runner set.
	c.advance(4 * time.Second)
	if _, err := r.Register("b", "10.0.0.9:8080", 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if drained(r.Changed()) {
		t.Fatal("a heartbeat signalled a change")
	}
	c.advance(4 * time.Second)
	r.Sweep()
	if got := len(endpoints(r)["b"]); got != 1 {
		t.Fatalf("renewed runner expired early: %d endpoints", got)
	}
	c.advance(2 * time.Second)
	r.Sweep()
	if got := len(endpoints(r)["b"]); got != 0 || !drained(r.Changed()) {
		t.Fatalf("runner past its TTL is still there (%d) or no change signalled", got)
	}
}

func TestErrors(t *testing.T) {
	r := registry.New(registry.Options{})
	r.ApplyConfig(mustConfig(t, twoPools))
	tests := []struct {
		name string
		err  error
		want error
	}{
		{"unknown pool", second(r.Register("zz", "10.0.0.1:80", 0)), registry.ErrUnknownPool},
		{"bad address", second(r.Register("a", "runner-1:80", 0)), registry.ErrBadAddress},
		{"no port", second(r.Register("a", "10.0.0.1", 0)), registry.ErrBadAddress},
		{"unknown runner", second(r.Deregister("b", "10.0.0.1:80")), registry.ErrUnknownRunner},
		{"deregister unknown pool", second(r.Deregister("zz", "10.0.0.1:80")), registry.ErrUnknownPool},
	}
	for _, tt := range tests {
		if !errors.Is(tt.err, tt.want) {
			t.Errorf("%s: err = %v, want %v", tt.name, tt.err, tt.want)
		}
	}
}

func second(_ registry.Info, err error) error { return err }

func TestDrain(t *testing.T) {
	for _, tracked := range []bool{false, true} {
		c := &clock{t: time.Unix(1000, 0)}
		r := registry.New(registry.Options{Now: c.now, InFlightTracked: tracked})
		r.ApplyConfig(mustConfig(t, twoPools))
		rn, _ := r.Runner("a", "10.0.0.1:80")
		rn.Acquire()
		info, err := r.Deregister("a", "10.0.0.1:80")
		if err != nil || info.State != registry.Draining {
			t.Fatalf("Deregister = %+v, %v", info, err)
		}
		if eps := endpoints(r)["a"]; !eps[0].Draining || eps[1].Draining {
			t.Fatalf("endpoints after deregister: %+v", eps)
		}
		if act := r.Active("a"); len(act) != 1 || act[0].Address != "10.0.0.2:80" {
			t.Fatalf("active runners after deregister: %v", act)
		}
		c.advance(time.Second)
		r.Sweep()
		if _, ok := r.Runner("a", "10.0.0.1:80"); !ok {
			t.Fatalf("tracked=%v: runner with a request in flight removed", tracked)
		}
		rn.Release()
		r.Sweep()
		_, ok := r.Runner("a", "10.0.0.1:80")
		if ok == tracked {
			t.Fatalf("tracked=%v: after the last request finished, present = %v", tracked, ok)
		}
		c.advance(10 * time.Second)
		r.Sweep()
		if _, ok := r.Runner("a", "10.0.0.1:80"); ok {
			t.Fatalf("tracked=%v: runner still present after the drain timeout", tracked)
		}
	}
}

func TestOnNewForEachJoin(t *testing.T) {
	var joined []string
	r := registry.New(registry.Options{OnNew: func(a string) { joined = append(joined, a) }})
	r.ApplyConfig(mustConfig(t, twoPools))
	r.Register("b", "10.0.0.9:80", 0)
	r.Register("b", "10.0.0.9:80", 0) // a heartbeat is not a join
	if len(joined) != 3 || joined[2] != "10.0.0.9:80" {
		t.Fatalf("joins = %v, want the two static runners then 10.0.0.9:80 once", joined)
	}
}

func TestRegisterAgainReactivates(t *testing.T) {
	r := registry.New(registry.Options{})
	r.ApplyConfig(mustConfig(t, twoPools))
	if _, err := r.Deregister("a", "10.0.0.2:80"); err != nil {
		t.Fatal(err)
	}
	info, err := r.Register("a", "10.0.0.2:80", time.Minute)
	if err != nil || info.State != registry.Active || info.Source != registry.FromConfig || info.ExpiresAt != nil {
		t.Fatalf("re-register = %+v, %v; want an active config runner with no TTL", info, err)
	}
}

func TestConfigChangeDrainsRemovedStaticRunners(t *testing.T) {
	r := registry.New(registry.Options{})
	r.ApplyConfig(mustConfig(t, twoPools))
	if _, err := r.Register("b", "[::1]:9000", 0); err != nil {
		t.Fatal(err)
	}
	r.ApplyConfig(mustConfig(t, `
listeners: [{name: l, address: 127.0.0.1, port: 10000}]
pools: [{name: a, runners: [{address: 10.0.0.2:80}]}]
routes: [{name: r, match: {prefix: /}, rules: [{pool: a}]}]
`))
	want := []registry.Info{
		{Pool: "a", Address: "10.0.0.1:80", State: registry.Draining, Source: registry.FromConfig},
		{Pool: "a", Address: "10.0.0.2:80", State: registry.Active, Source: registry.FromConfig},
	}
	if diff := cmp.Diff(want, r.List()); diff != "" {
		t.Fatalf("runners (-want +got); pool b's API runner must go with its pool:\n%s", diff)
	}
}
