package config_test

import (
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/config"
)

// A split's guards name its variants, need a limit, take defaults for the
// rest, and leave one variant unguarded; each problem at its line.
func TestSplitGuards(t *testing.T) {
	base := "listeners: [{name: l, address: 127.0.0.1, port: 10000}]\npools: [{name: a}, {name: b}, {name: c}]\nroutes:\n  - name: r\n    match: {prefix: /}\n    rules:\n      - split:\n          weights: {a: 80, b: 20}\n          guards:\n"
	cfg, err := config.Parse("g.yaml", []byte(base+"            b: {max_error_rate: 0.05}\n"))
	if err != nil {
		t.Fatal(err)
	}
	v := cfg.Routes[0].Rules[0].Split.Variants
	if v[0].Guard != nil || v[1].Guard == nil || v[1].Guard.Window.Std() != time.Minute || v[1].Guard.MinRequests != 20 || v[1].Guard.ProbeWeight != 1 || v[1].Guard.CoolDown != 0 {
		t.Errorf("variants %+v, guard %+v: want b guarded with the defaults", v, v[1].Guard)
	}
	for _, tt := range []struct{ guards, want string }{
		{"            b: {window: 10s}\n", "g.yaml:10: routes[0].rules[0].split.guards.b: a guard needs max_error_rate or max_latency"},
		{"            c: {max_error_rate: 0.1}\n", `g.yaml:10: routes[0].rules[0].split.guards.c: pool "c" is not a variant of this split`},
		{"            b: {max_error_rate: 1.5}\n", "routes[0].rules[0].split.guards.b.max_error_rate: must be in (0, 1)"},
		{"            b: {max_latency: 2s, window: 100ms}\n", "split.guards.b.window: must be from 1s to 1h"},
		{"            b: {max_latency: 2s, min_requests: 0}\n", "split.guards.b.min_requests: must be from 1 to 4096"},
		{"            b: {max_latency: 2s, probe_weight: 0}\n", "split.guards.b.probe_weight: must be a positive integer"},
		{"            a: {max_latency: 2s}\n            b: {max_latency: 2s}\n", "split.guards: at least one variant must be unguarded"},
		{"            b: {max_latency: 2s, oops: 1}\n", "split.guards.b.oops: unknown field"},
	} {
		_, err := config.Parse("g.yaml", []byte(base+tt.guards))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("guards %q: %v, want %q", tt.guards, err, tt.want)
		}
	}
}
