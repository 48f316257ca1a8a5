package translate

import (
	"encoding/json"
	"slices"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	dynmodv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/dynamic_modules/v3"
	dynmodfilterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/dynamic_modules/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/switchyard/switchyard/internal/config"
	"github.com/switchyard/switchyard/internal/contract"
)

// With server.edge_module, each Envoy decides in process: switchyard's
// dynamic module takes ext_proc's place in the filter chain, reads the
// config file handed to it here, and learns each response's runner and
// hints as Envoy passes them on (no ext_proc stream, no access-log stream).
// The module sets what ext_proc's answer sets (the pool header, a route
// cache refresh, the override_host runner list, the decision's metadata),
// so routes, clusters and decision headers are the same on both paths.

// decisionFilter is the filter that decides: ext_proc, or the module. The
// module's config comes by extension config discovery (ECDS) over ADS, so
// that a new config or runner set reaches it without a listener update
// (which would drain the listener's connections).
func decisionFilter(cfg *config.Config, listener string) *hcmv3.HttpFilter {
	if cfg.Server.EdgeModule == "" {
		return &hcmv3.HttpFilter{Name: contract.ExtProcFilterName, ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(extProcUnlessUndecoded(extProcFilter(cfg, listener)))}}
	}
	return &hcmv3.HttpFilter{Name: contract.ModuleFilterName, ConfigType: &hcmv3.HttpFilter_ConfigDiscovery{ConfigDiscovery: &corev3.ExtensionConfigSource{
		ConfigSource: adsSource(),
		TypeUrls:     []string{"type.googleapis.com/envoy.extensions.filters.http.dynamic_modules.v3.DynamicModuleFilter"},
	}}}
}

// moduleExtensions is the module's filter config, served by ECDS: the
// config file and each pool's runners that take new requests.
func moduleExtensions(cfg *config.Config, endpoints map[string][]Endpoint) []*corev3.TypedExtensionConfig {
	if cfg.Server.EdgeModule == "" {
		return nil
	}
	return []*corev3.TypedExtensionConfig{{Name: contract.ModuleFilterName, TypedConfig: mustAny(moduleFilter(cfg, endpoints))}}
}

func moduleFilter(cfg *config.Config, endpoints map[string][]Endpoint) *dynmodfilterv3.DynamicModuleFilter {
	return &dynmodfilterv3.DynamicModuleFilter{
		DynamicModuleConfig: &dynmodv3.DynamicModuleConfig{
			// Kept loaded across filter config changes: the module's
			// runner state (hints, requests in flight) outlives a reload.
			DoNotClose: true,
			// Its stats (the decisions counter) are switchyard_*.
			MetricsNamespace: "switchyard",
			Module: &corev3.AsyncDataSource{Specifier: &corev3.AsyncDataSource_Local{Local: &corev3.DataSource{
				Specifier: &corev3.DataSource_Filename{Filename: cfg.Server.EdgeModule},
			}}},
		},
		FilterName: contract.ModuleFilterConfigName,
		// The config file's text, named as switchyard read it.
		FilterConfig: mustAny(wrapperspb.String(moduleConfig(cfg, endpoints))),
	}
}

func moduleConfig(cfg *config.Config, endpoints map[string][]Endpoint) string {
	mc := contract.ModuleConfig{File: cfg.File, Source: string(cfg.Source), Runners: map[string][]string{}}
	for _, p := range cfg.Pools {
		addrs := []string{}
		for _, e := range endpoints[p.Name] {
			if !e.Draining {
				addrs = append(addrs, e.Address)
			}
		}
		slices.Sort(addrs)
		mc.Runners[p.Name] = addrs
	}
	b, err := json.Marshal(mc)
	if err != nil {
		panic(err) // strings always marshal
	}
	return string(b)
}
