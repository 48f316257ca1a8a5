package translate_test

import (
	"slices"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"

	"github.com/switchyard/switchyard/internal/config"
	"github.com/switchyard/switchyard/xds/translate"
)

// Envoy traces only with observe.tracing.envoy; a collector named by host
// is reached through DNS.
func TestTracingEnvoy(t *testing.T) {
	const head = "listeners: [{name: l, address: 127.0.0.1, port: 10000}]\npools: [{name: p}, {name: q}]\nroutes: [{name: r, match: {prefix: /}, rules: [{when: 'headers[\"x-a\"] == \"1\"', pool: p}, {pool: q}]}]\n"
	for _, tt := range []struct {
		name, section string
		envoy         bool
		kind          clusterv3.Cluster_DiscoveryType
	}{
		{"switchyard only", "observe: {tracing: {endpoint: '127.0.0.1:4317'}}\n", false, 0},
		{"host name", "observe: {tracing: {endpoint: 'otel-collector:4317', insecure: true, envoy: true}}\n", true, clusterv3.Cluster_STRICT_DNS},
		{"ip", "observe: {tracing: {endpoint: '[::1]:4317', envoy: true}}\n", true, clusterv3.Cluster_STATIC},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := config.Parse("t.yaml", []byte(head+tt.section))
			if err != nil {
				t.Fatal(err)
			}
			res, err := translate.Translate(translate.Input{Config: cfg})
			if err != nil {
				t.Fatal(err)
			}
			var hcm hcmv3.HttpConnectionManager
			if err := res.Listeners[0].FilterChains[0].Filters[0].GetTypedConfig().UnmarshalTo(&hcm); err != nil {
				t.Fatal(err)
			}
			i := slices.IndexFunc(res.Clusters, func(c *clusterv3.Cluster) bool { return c.GetName() == translate.TracingCluster })
			if (hcm.GetTracing() != nil) != tt.envoy || (i >= 0) != tt.envoy {
				t.Fatalf("HCM tracing %v, collector cluster %v; want Envoy tracing %v", hcm.GetTracing(), i >= 0, tt.envoy)
			}
			if tt.envoy {
				if got := res.Clusters[i].GetType(); got != tt.kind {
					t.Errorf("collector cluster %v, want %v", got, tt.kind)
				}
				for _, r := range []interface{ ValidateAll() error }{res.Clusters[i], res.Listeners[0]} {
					if err := r.ValidateAll(); err != nil {
						t.Error(err)
					}
				}
			}
		})
	}
}
