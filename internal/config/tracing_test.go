package config_test

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/switchyard/switchyard/internal/config"
)

// observe.tracing: defaults (ratio 1, plain gRPC to a loopback collector,
// TLS elsewhere), the trace context headers forwarded to switchyard, and
// each problem at its line.
func TestTracing(t *testing.T) {
	const head = "listeners: [{name: l, address: 127.0.0.1, port: 10000}]\npools: [{name: p}, {name: q}]\nroutes: [{name: r, match: {prefix: /}, rules: [{when: 'headers[\"x-a\"] == \"1\"', pool: p}, {pool: q}]}]\n"
	for _, tt := range []struct {
		name, section string
		want          *config.Tracing
	}{
		{"loopback", "observe:\n  tracing: {endpoint: 127.0.0.1:4317, envoy: true}\n",
			&config.Tracing{Endpoint: "127.0.0.1:4317", Insecure: true, SampleRatio: 1, Envoy: true}},
		{"localhost", "observe:\n  tracing: {endpoint: localhost:4317}\n",
			&config.Tracing{Endpoint: "localhost:4317", Insecure: true, SampleRatio: 1}},
		{"remote", "observe:\n  tracing: {endpoint: otel.example:4317, sample_ratio: 0.1, service_name: edge-eu}\n",
			&config.Tracing{Endpoint: "otel.example:4317", SampleRatio: 0.1, ServiceName: "edge-eu"}},
		{"environment", "observe:\n  tracing: {}\n", &config.Tracing{SampleRatio: 1}},
		{"explicit insecure", "observe:\n  tracing: {endpoint: '[::1]:4317', insecure: false}\n",
			&config.Tracing{Endpoint: "[::1]:4317", SampleRatio: 1}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := config.Parse("t.yaml", []byte(head+tt.section))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, cfg.Observe.Tracing); diff != "" {
				t.Errorf("tracing (-want +got):\n%s", diff)
			}
			names, ok := cfg.RequestHeadersRead("l")
			if !ok || !strings.Contains(strings.Join(names, ","), "traceparent,tracestate") {
				t.Errorf("headers read %v: want traceparent and tracestate", names)
			}
		})
	}
	cfg, err := config.Parse("t.yaml", []byte(head))
	if err != nil {
		t.Fatal(err)
	}
	if names, _ := cfg.RequestHeadersRead("l"); cfg.Observe.Tracing != nil || strings.Contains(strings.Join(names, ","), "trace") {
		t.Errorf("without tracing: %+v, headers %v", cfg.Observe.Tracing, names)
	}
	if got := (&config.Tracing{}).Service(); got != "switchyard" {
		t.Errorf("default service %q", got)
	}

	for _, tt := range []struct{ section, want string }{
		{"observe:\n  tracing: {endpoint: 'http://127.0.0.1:4317'}\n", `t.yaml:5: observe.tracing.endpoint: endpoint "http://127.0.0.1:4317" must be host:port`},
		{"observe:\n  tracing: {endpoint: '127.0.0.1:0'}\n", `observe.tracing.endpoint: endpoint "127.0.0.1:0": port must be 1-65535`},
		{"observe:\n  tracing: {endpoint: 'Bad_Host:4317'}\n", `"Bad_Host" is not an IP address or a DNS name`},
		{"observe:\n  tracing:\n    endpoint: 127.0.0.1:4317\n    sample_ratio: 1.5\n", "t.yaml:7: observe.tracing.sample_ratio: sample_ratio 1.5 must be from 0 to 1"},
		{"observe:\n  tracing:\n    envoy: true\n", "t.yaml:6: observe.tracing.envoy: Envoy needs tracing.endpoint"},
		{"observe:\n  tracing: {endpoint: 10.0.0.9:4317, envoy: true}\n", "observe.tracing.envoy: Envoy exports over plain gRPC only"},
		{"observe:\n  tracing: {service_name: \"a\\tb\"}\n", "observe.tracing.service_name: service_name"},
		{"observe:\n  tracing:\n    endpoint: 127.0.0.1:4317\n    sampling: 1\n", "t.yaml:7: observe.tracing.sampling: unknown field"},
	} {
		_, err := config.Parse("t.yaml", []byte(head+tt.section))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%q: %v, want %q", tt.section, err, tt.want)
		}
	}
}
