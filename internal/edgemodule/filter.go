package edgemodule

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/envoyproxy/envoy/source/extensions/dynamic_modules/sdk/go/shared"

	"github.com/switchyard/switchyard/internal/config"
	"github.com/switchyard/switchyard/internal/contract"
	"github.com/switchyard/switchyard/internal/policy"
	"github.com/switchyard/switchyard/internal/registry"
)

// Module is what outlives a filter config: the runners, what is known of
// them (hints, requests in flight) and the config in force. Envoy makes a
// filter config per listener and again at every listener update; all of
// them share the process's one Module, so a reload keeps what was learnt.
type Module struct {
	runners *registry.Registry
	engine  *policy.Engine
	mu      sync.Mutex // serialises Configure
	cfg     atomic.Pointer[config.Config]
}

// New makes an empty Module.
func New() *Module {
	m := &Module{}
	m.runners = registry.New(registry.Options{InFlightTracked: true, OnNew: func(addr string) { m.engine.Forget(addr) }})
	m.engine = policy.New(policy.Options{Runners: m.runners})
	return m
}

// Configure parses a filter config (a contract.ModuleConfig) and puts it in
// force; an invalid one is refused with the config's own error and the
// last good config stays.
func (m *Module) Configure(raw []byte) (*config.Config, error) {
	var mc contract.ModuleConfig
	if err := json.Unmarshal(raw, &mc); err != nil {
		return nil, fmt.Errorf("switchyard module: filter config: %w", err)
	}
	cfg, err := config.Parse(mc.File, []byte(mc.Source))
	if err != nil {
		return nil, fmt.Errorf("switchyard module: %w", err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.runners.ApplyConfig(cfg)
	m.cfg.Store(cfg)
	return cfg, nil
}

// Engine is the module's policy engine.
func (m *Module) Engine() *policy.Engine { return m.engine }

// ConfigFactory is the module's shared.HttpFilterConfigFactory.
type ConfigFactory struct {
	shared.EmptyHttpFilterConfigFactory
	M *Module
}

// Create puts the filter config in force and makes the filter factory.
func (f *ConfigFactory) Create(_ shared.HttpFilterConfigHandle, raw []byte) (shared.HttpFilterFactory, error) {
	if _, err := f.M.Configure(raw); err != nil {
		return nil, err
	}
	return &filterFactory{m: f.M}, nil
}

type filterFactory struct{ m *Module }

func (f *filterFactory) Create(h shared.HttpFilterHandle) shared.HttpFilter {
	return &Filter{m: f.m, h: h}
}

// Filter decides one request.
type Filter struct {
	shared.EmptyHttpFilter
	m      *Module
	h      shared.HttpFilterHandle
	flight *policy.Flight
}

// OnRequestHeaders decides the request, as ext_proc's answer to its
// headers would.
func (x *Filter) OnRequestHeaders(hm shared.HeaderMap, _ bool) shared.HeadersStatus {
	cfg := x.m.cfg.Load()
	if cfg == nil {
		return shared.HeadersStatusContinue
	}
	name, _ := x.h.GetAttributeString(shared.AttributeIDXdsRouteName)
	route, ok := cfg.Route(name)
	if !ok || !cfg.Decides(route) {
		return shared.HeadersStatusContinue // Envoy's route decides
	}
	req := policy.Request{Headers: headers(hm)}
	req.Method = req.Headers[":method"]
	req.Path, _, _ = strings.Cut(req.Headers[":path"], "?")
	d, err := x.m.engine.Decide(cfg, route, req)
	if err != nil {
		// Only a body can make a decision fail, and validate keeps
		// routes that read one off this path: let Envoy's route decide.
		return shared.HeadersStatusContinue
	}
	x.flight = x.m.engine.Dispatch(cfg, d)
	hm.Set(contract.HeaderPool, d.Target.Name())
	x.h.ClearRouteCache()
	if list := d.Endpoints(); list != "" {
		x.h.SetMetadata(contract.LBNamespace, contract.EndpointKey, list)
	}
	x.h.SetMetadata(contract.MetadataNamespace, contract.MetaOutcome, string(d.Outcome))
	if d.Variant != "" {
		x.h.SetMetadata(contract.MetadataNamespace, contract.MetaVariant, d.Variant)
	}
	return shared.HeadersStatusContinue
}

// OnResponseHeaders learns the runner's reported hints (copied into the
// request's metadata by the chain's hints filter, which runs first on the
// way back) and, for a response of known length, the end of its work.
func (x *Filter) OnResponseHeaders(hm shared.HeaderMap, endOfStream bool) shared.HeadersStatus {
	if x.flight == nil {
		return shared.HeadersStatusContinue
	}
	addr, _ := x.h.GetAttributeString(shared.AttributeIDUpstreamAddress)
	status, _ := strconv.Atoi(hm.GetOne(":status"))
	hints, reported := x.h.GetMetadataString(shared.MetadataSourceTypeDynamic, contract.MetadataNamespace, contract.MetaRunnerHints)
	x.flight.Respond(policy.Response{
		Runner: strings.Clone(addr), Status: status,
		Hints: strings.Clone(hints), HintsReported: reported,
		Final: endOfStream || hm.GetOne("content-length") != "",
	})
	return shared.HeadersStatusContinue
}

// OnStreamComplete ends the request's work on its runner however it ended.
func (x *Filter) OnStreamComplete() { x.flight.End() }

// headers is the request's headers as the rules read them: lower-case
// names, first values, copied out of Envoy's memory.
func headers(hm shared.HeaderMap) map[string]string {
	all := hm.GetAll()
	out := make(map[string]string, len(all))
	for _, kv := range all {
		k := strings.ToLower(kv[0])
		if _, dup := out[k]; !dup {
			out[k] = strings.Clone(kv[1])
		}
	}
	return out
}
