package edgemodule

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/envoyproxy/envoy/source/extensions/dynamic_modules/sdk/go/shared"

	"github.com/switchyard/switchyard/internal/bodyfields"
	"github.com/switchyard/switchyard/internal/config"
	"github.com/switchyard/switchyard/internal/contract"
	"github.com/switchyard/switchyard/internal/decisions"
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
	panics  atomic.Uint64
}

// New makes an empty Module. Its registry sweeps out drained runners for
// the life of the process.
func New() *Module {
	m := &Module{}
	m.runners = registry.New(registry.Options{InFlightTracked: true, OnNew: func(addr string) { m.engine.Forget(addr) }})
	m.engine = policy.New(policy.Options{Runners: m.runners})
	go m.runners.Run(nil)
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
	m.applyRunners(mc.Runners)
	m.cfg.Store(cfg)
	return cfg, nil
}

// applyRunners makes the registered runners those listed (the pools'
// static ones are the config's): a new one joins, one no longer listed
// drains (no new requests; gone once its requests end).
func (m *Module) applyRunners(listed map[string][]string) {
	want := map[[2]string]bool{}
	for pool, addrs := range listed {
		for _, a := range addrs {
			want[[2]string{pool, a}] = true
			// A runner switchyard listed is known good; an error (a pool
			// the config no longer has) only leaves it out.
			m.runners.Register(pool, a, 0)
		}
	}
	for _, r := range m.runners.List() {
		if r.Source == registry.FromAPI && r.State == registry.Active && !want[[2]string{r.Pool, r.Address}] {
			m.runners.Deregister(r.Pool, r.Address)
		}
	}
}

// ConfigFactory is the module's shared.HttpFilterConfigFactory.
type ConfigFactory struct {
	shared.EmptyHttpFilterConfigFactory
	M *Module
}

// Create puts the filter config in force and makes the filter factory,
// with the Envoy stats the module counts its decisions in.
func (f *ConfigFactory) Create(h shared.HttpFilterConfigHandle, raw []byte) (shared.HttpFilterFactory, error) {
	if _, err := f.M.Configure(raw); err != nil {
		return nil, err
	}
	ff := &filterFactory{m: f.M}
	if h != nil {
		id, res := h.DefineCounter(DecisionsCounter, "pool", "hint")
		ff.decisions, ff.counted = id, res == shared.MetricsSuccess
	}
	return ff, nil
}

// DecisionsCounter is the Envoy counter of the module's decisions, tagged
// with the pool and the hint outcome (hit, miss, busy, none), under the
// metrics namespace switchyard: switchyard_decisions{pool,hint} in
// Envoy's Prometheus stats. switchyard's own /metrics does not count them.
const DecisionsCounter = "decisions"

type filterFactory struct {
	m         *Module
	decisions shared.MetricID
	counted   bool
}

func (f *filterFactory) Create(h shared.HttpFilterHandle) shared.HttpFilter {
	return &Filter{m: f.m, h: h, f: f}
}

// Filter decides one request.
type Filter struct {
	shared.EmptyHttpFilter
	m      *Module
	h      shared.HttpFilterHandle
	f      *filterFactory
	flight *policy.Flight
	// Between the headers and the end of a body the route reads.
	cfg      *config.Config
	route    *config.Route
	req      policy.Request
	waiting  bool   // for the end of the body
	replied  bool   // answered the client itself: nothing goes on
	bodyRead string // how the body's fields were read, for the record: none, fields, whole
}

// OnRequestHeaders decides the request, as ext_proc's answer to its
// headers would: at once when the route reads no body, else once the
// whole body is in (its fields found in it by bodyfields, which skips
// what lies between them: cheaper than Envoy's json_to_metadata, which
// parses the whole body).
func (x *Filter) OnRequestHeaders(hm shared.HeaderMap, endOfStream bool) (st shared.HeadersStatus) {
	defer x.failOpen("request headers", func() { st = shared.HeadersStatusContinue })
	cfg := x.m.cfg.Load()
	if cfg == nil {
		return shared.HeadersStatusContinue
	}
	name, _ := x.h.GetAttributeString(shared.AttributeIDXdsRouteName)
	route, ok := cfg.Route(name)
	if !ok || !cfg.Decides(route) {
		return shared.HeadersStatusContinue // Envoy's route decides
	}
	x.cfg, x.route = cfg, route
	x.req = policy.Request{Headers: headers(hm)}
	x.req.Method = x.req.Headers[":method"]
	x.req.Path, _, _ = strings.Cut(x.req.Headers[":path"], "?")
	x.bodyRead = decisions.BodyNone
	switch {
	case !route.NeedsBody():
	case endOfStream:
		x.req.BodyErr = bodyfields.ErrNoBody
	case bodyfields.OverLimit(x.req.Headers["content-length"], cfg.Server.MaxBodyBytes):
		x.replyTooLarge()
		return shared.HeadersStatusStop
	default:
		// The body is held to its end, then its fields read.
		x.waiting, x.bodyRead = true, decisions.BodyWhole
		return shared.HeadersStatusStop
	}
	if !x.decide(hm) {
		return shared.HeadersStatusStop
	}
	return shared.HeadersStatusContinue
}

// OnRequestBody holds the body until its end, then decides on its fields.
func (x *Filter) OnRequestBody(body shared.BodyBuffer, endOfStream bool) (st shared.BodyStatus) {
	defer x.failOpen("request body", func() { st = shared.BodyStatusContinue })
	switch {
	case x.replied:
		return shared.BodyStatusStopNoBuffer
	case !x.waiting:
		return shared.BodyStatusContinue
	case x.bodySize(body) > uint64(x.cfg.Server.MaxBodyBytes):
		x.replyTooLarge()
		return shared.BodyStatusStopNoBuffer
	case !endOfStream:
		return shared.BodyStatusStopAndBuffer
	}
	return x.decideOnBody(body)
}

// OnRequestTrailers ends a body that trailers follow.
func (x *Filter) OnRequestTrailers(shared.HeaderMap) (st shared.TrailersStatus) {
	defer x.failOpen("request trailers", func() { st = shared.TrailersStatusContinue })
	if x.replied || (x.waiting && x.decideOnBody(nil) != shared.BodyStatusContinue) {
		return shared.TrailersStatusStop
	}
	return shared.TrailersStatusContinue
}

// bodyChunks is the body so far: what Envoy buffered for the filter and
// the chunk just received. When an earlier filter held the whole body, the
// chunk received is that same buffer: it counts once.
func (x *Filter) bodyChunks(last shared.BodyBuffer) [][]byte {
	var buffered, received [][]byte
	if b := x.h.BufferedRequestBody(); b != nil {
		buffered = b.GetChunks()
	}
	if last != nil {
		received = last.GetChunks()
	}
	if sameChunks(buffered, received) {
		return buffered
	}
	return append(buffered, received...)
}

// sameChunks says a and b are one buffer's chunks.
func sameChunks(a, b [][]byte) bool {
	return len(a) > 0 && len(b) > 0 && len(a[0]) > 0 && len(b[0]) > 0 && &a[0][0] == &b[0][0]
}

// bodySize is the size of bodyChunks(last), from the buffers' sizes: it
// runs on every chunk of a body, which must not cost the whole body so
// far each time. Only a chunk as large as what is buffered is looked at
// closer (it may be that buffer).
func (x *Filter) bodySize(last shared.BodyBuffer) uint64 {
	var buffered, received uint64
	b := x.h.BufferedRequestBody()
	if b != nil {
		buffered = b.GetSize()
	}
	if last != nil {
		received = last.GetSize()
	}
	if buffered > 0 && buffered == received && sameChunks(b.GetChunks(), last.GetChunks()) {
		return buffered
	}
	return buffered + received
}

// bodies are reused buffers for a body's bytes: Extract copies out what it
// keeps, so a buffer is free again once it returns.
var bodies = sync.Pool{New: func() any { return new([]byte) }}

func (x *Filter) decideOnBody(last shared.BodyBuffer) shared.BodyStatus {
	x.waiting = false
	buf := bodies.Get().(*[]byte)
	data := (*buf)[:0]
	for _, c := range x.bodyChunks(last) {
		data = append(data, c...)
	}
	x.req.Body, x.req.BodyErr = x.route.Fields().Extract(data)
	*buf = data
	bodies.Put(buf)
	if !x.decide(x.h.RequestHeaders()) {
		return shared.BodyStatusStopNoBuffer
	}
	return shared.BodyStatusContinue
}

// decide runs the policy on x.req and sets on the request what ext_proc's
// answer sets; false when it answered the client instead (a body the
// route cannot read, with on_invalid_body: reject).
func (x *Filter) decide(hm shared.HeaderMap) bool {
	start := time.Now()
	d, err := x.m.engine.Decide(x.cfg, x.route, x.req)
	if err != nil {
		x.reply(http.StatusBadRequest, "invalid_body", err.Error()+": this route reads fields of a JSON object body")
		return false
	}
	x.flight = x.m.engine.Dispatch(x.cfg, d)
	if x.f.counted {
		x.h.IncrementCounterValue(x.f.decisions, 1, d.Target.Name(), string(d.Outcome))
	}
	hm.Set(contract.HeaderPool, d.Target.Name())
	x.h.ClearRouteCache()
	if list := d.Endpoints(); list != "" {
		x.h.SetMetadata(contract.LBNamespace, contract.EndpointKey, list)
	}
	x.h.SetMetadata(contract.MetadataNamespace, contract.MetaOutcome, string(d.Outcome))
	if d.Variant != "" {
		x.h.SetMetadata(contract.MetadataNamespace, contract.MetaVariant, d.Variant)
	}
	if x.cfg.Responses.Explain && x.req.Headers[contract.HeaderExplain] != "" {
		// The client asked for the decision record (responses.explain):
		// the route adds it to the response from this metadata.
		rec := d.Record(start)
		rec.Body = x.bodyRead
		rec.Decide = decisions.Millis(time.Since(start))
		x.h.SetMetadata(contract.MetadataNamespace, contract.MetaExplain, decisions.Header(rec))
	}
	return true
}

// reply answers the client with switchyard's JSON error.
func (x *Filter) reply(status int, code, msg string) {
	x.replied, x.waiting = true, false
	x.h.SendLocalResponse(uint32(status), [][2]string{{"content-type", "application/json"}}, contract.ErrorBody(code, msg), "switchyard_"+code)
}

// replyTooLarge answers 413 for a body over max_body_bytes.
func (x *Filter) replyTooLarge() {
	x.reply(http.StatusRequestEntityTooLarge, "body_too_large", bodyfields.TooLargeMessage(x.cfg.Server.MaxBodyBytes))
}

// OnResponseHeaders learns the runner's reported hints (copied into the
// request's metadata by the chain's hints filter, which runs first on the
// way back) and, for a response of known length, the end of its work.
func (x *Filter) OnResponseHeaders(hm shared.HeaderMap, endOfStream bool) (st shared.HeadersStatus) {
	defer x.failOpen("response headers", func() { st = shared.HeadersStatusContinue })
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
func (x *Filter) OnStreamComplete() {
	defer x.failOpen("stream end", func() {})
	x.flight.End()
}

// failOpen turns a panic in the module's code into Envoy's own handling of
// the request (its route's default, as on the ext_proc path when
// switchyard is down), logged and counted: a bug in the module must not
// take Envoy and every request it holds down with it.
func (x *Filter) failOpen(where string, cont func()) {
	r := recover()
	if r == nil {
		return
	}
	x.m.panics.Add(1)
	// Whatever was dispatched stops counting on its runner: the request
	// may go elsewhere now. (End itself may be what panicked.)
	func() {
		defer func() { _ = recover() }()
		x.flight.End()
	}()
	x.waiting, x.flight = false, nil
	cont()
	x.h.Log(shared.LogLevelError, "switchyard module: %s: %v (the request goes its route's default way)", where, r)
}

// Panics is how many requests the module let go their route's default way
// because its code panicked.
func (m *Module) Panics() uint64 { return m.panics.Load() }

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
