package edgemodule

import (
	"encoding/json"
	"fmt"
	"maps"
	"strings"
	"testing"

	"github.com/envoyproxy/envoy/source/extensions/dynamic_modules/sdk/go/shared"
	"github.com/envoyproxy/envoy/source/extensions/dynamic_modules/sdk/go/shared/fake"

	"github.com/switchyard/switchyard/internal/contract"
)

// handle is the part of Envoy's per-request handle the filter uses: the
// route's name, the upstream's address, dynamic metadata, route refreshes.
type handle struct {
	shared.HttpFilterHandle // anything else panics: the filter must not use it
	route, upstream         string
	metadata                map[string]string
	refreshed               int
	buffered                shared.BodyBuffer
	request                 shared.HeaderMap
	replies                 []int
}

func newHandle(route string) *handle {
	return &handle{route: route, metadata: map[string]string{}}
}

func (h *handle) GetAttributeString(id shared.AttributeID) (string, bool) {
	switch id {
	case shared.AttributeIDXdsRouteName:
		return h.route, h.route != ""
	case shared.AttributeIDUpstreamAddress:
		return h.upstream, h.upstream != ""
	}
	return "", false
}

func (h *handle) SetMetadata(ns, key string, value any) { h.metadata[ns+"/"+key] = value.(string) }

func (h *handle) GetMetadataString(src shared.MetadataSourceType, ns, key string) (string, bool) {
	v, ok := h.metadata[ns+"/"+key]
	return v, ok && src == shared.MetadataSourceTypeDynamic
}

func (h *handle) ClearRouteCache() { h.refreshed++ }

func (h *handle) BufferedRequestBody() shared.BodyBuffer { return h.buffered }
func (h *handle) RequestHeaders() shared.HeaderMap       { return h.request }

func (h *handle) SendLocalResponse(status uint32, _ [][2]string, _ []byte, _ string) {
	h.replies = append(h.replies, int(status))
}

func moduleConfig(t testing.TB, runners int, extra string) []byte {
	t.Helper()
	var addrs []string
	for i := range runners {
		addrs = append(addrs, fmt.Sprintf(`{address: "10.0.0.%d:9000"}`, i+1))
	}
	src := `listeners: [{name: public, address: 127.0.0.1, port: 8080}]
pools:
  - name: gpu
    runners: [` + strings.Join(addrs, ", ") + `]
  - name: cpu
    runners: [{address: "10.0.1.1:9000"}]
routes:
  - name: gen
    match: {prefix: /gen}
    rules:
      - when: headers["x-tier"] == "cpu"
        pool: cpu
      - pool: gpu
` + extra
	b, err := json.Marshal(contract.ModuleConfig{File: "/etc/switchyard/switchyard.yaml", Source: src})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// request runs one request through a filter: its headers, then a 200 from
// the runner it was sent to (the first of the override_host list), which
// reports hints, then its end.
func request(m *Module, route string, reqHeaders map[string][]string, hints string) (*handle, *fake.FakeHeaderMap) {
	h := newHandle(route)
	f := (&filterFactory{m: m}).Create(h)
	hm := fake.NewFakeHeaderMap(maps.Clone(reqHeaders))
	f.OnRequestHeaders(hm, true)
	if list := h.metadata[contract.LBNamespace+"/"+contract.EndpointKey]; list != "" {
		h.upstream, _, _ = strings.Cut(list, ",")
		h.metadata[contract.MetadataNamespace+"/"+contract.MetaRunnerHints] = hints
		f.OnResponseHeaders(fake.NewFakeHeaderMap(map[string][]string{":status": {"200"}, "content-length": {"10"}}), false)
	}
	f.OnStreamComplete()
	return h, hm
}

func TestDecideAndLearn(t *testing.T) {
	m := New()
	if _, err := m.Configure(moduleConfig(t, 3, "")); err != nil {
		t.Fatal(err)
	}
	hinted := map[string][]string{":method": {"POST"}, ":path": {"/gen?x=1"}, "x-fal-runner-hint": {"flux"}}
	h, hm := request(m, "gen", hinted, "flux")
	if got := hm.GetOne(contract.HeaderPool); got != "gpu" || h.refreshed != 1 {
		t.Fatalf("pool header %q, route refreshes %d: want gpu, 1", got, h.refreshed)
	}
	if got := h.metadata[contract.MetadataNamespace+"/"+contract.MetaOutcome]; got != "miss" {
		t.Fatalf("first hinted request: outcome %q, want miss", got)
	}
	warm := h.upstream
	for i := range 5 {
		h, _ := request(m, "gen", hinted, "flux")
		if h.upstream != warm || h.metadata[contract.MetadataNamespace+"/"+contract.MetaOutcome] != "hit" {
			t.Fatalf("repeat %d: runner %s (%s), want the warm %s (hit)", i, h.upstream, h.metadata[contract.MetadataNamespace+"/"+contract.MetaOutcome], warm)
		}
	}
	// The rule reads headers.
	if _, hm := request(m, "gen", map[string][]string{"x-tier": {"cpu"}}, ""); hm.GetOne(contract.HeaderPool) != "cpu" {
		t.Fatalf("x-tier: cpu went to %q", hm.GetOne(contract.HeaderPool))
	}
	// Not one of the config's routes: Envoy's route decides.
	if h, hm := request(m, "other", hinted, ""); hm.GetOne(contract.HeaderPool) != "" || h.refreshed != 0 || len(h.metadata) != 0 {
		t.Fatalf("unknown route: pool %q, %d refreshes, metadata %v: want nothing set", hm.GetOne(contract.HeaderPool), h.refreshed, h.metadata)
	}
	// Every request ended: no runner counts one in flight.
	for _, r := range m.runners.Active("gpu") {
		if n := r.InFlight(); n != 0 {
			t.Errorf("runner %s: %d in flight after every request ended", r.Address, n)
		}
	}
}

// A route that reads the body is decided at the body's end, on the fields
// found in it; a body an earlier filter held arrives as that same buffer
// and counts once.
func TestBody(t *testing.T) {
	m := New()
	if _, err := m.Configure(moduleConfig(t, 1, `  - name: sized
    match: {prefix: /sized}
    rules:
      - when: body.size.width > 512
        pool: cpu
      - pool: gpu
`)); err != nil {
		t.Fatal(err)
	}
	body := `{"size": {"width": 2048}}`
	for _, sameBuffer := range []bool{false, true} {
		h := newHandle("sized")
		h.request = fake.NewFakeHeaderMap(map[string][]string{":method": {"POST"}})
		f := (&filterFactory{m: m}).Create(h)
		if st := f.OnRequestHeaders(h.request, false); st != shared.HeadersStatusStop {
			t.Fatalf("a body route: headers status %v, want stop", st)
		}
		first, last := fake.NewFakeBodyBuffer([]byte(body[:10])), fake.NewFakeBodyBuffer([]byte(body[10:]))
		if st := f.OnRequestBody(first, false); st != shared.BodyStatusStopAndBuffer {
			t.Fatalf("first chunk: %v, want stop and buffer", st)
		}
		h.buffered = first
		if sameBuffer {
			// As when json_to_metadata held the body: Envoy hands on its
			// buffer, which is also the filter's buffered body.
			whole := fake.NewFakeBodyBuffer([]byte(body))
			h.buffered, last = whole, whole
		}
		if st := f.OnRequestBody(last, true); st != shared.BodyStatusContinue || h.request.GetOne(contract.HeaderPool) != "cpu" {
			t.Fatalf("same buffer %v: body end status %v pool %q, want continue to cpu", sameBuffer, st, h.request.GetOne(contract.HeaderPool))
		}
		f.OnStreamComplete()
	}

	// Over max_body_bytes, by its length or as it arrives: 413, and the
	// request goes no further.
	h := newHandle("sized")
	f := (&filterFactory{m: m}).Create(h)
	if st := f.OnRequestHeaders(fake.NewFakeHeaderMap(map[string][]string{"content-length": {"99999999"}}), false); st != shared.HeadersStatusStop || len(h.replies) != 1 || h.replies[0] != 413 {
		t.Fatalf("content-length over the limit: status %v replies %v", st, h.replies)
	}
	if st := f.OnRequestBody(fake.NewFakeBodyBuffer([]byte("{}")), true); st != shared.BodyStatusStopNoBuffer {
		t.Fatalf("body after a 413: %v, want stop", st)
	}
}

// A panic in the module's code lets the request go its route's default
// way instead of taking Envoy down.
func TestFailOpen(t *testing.T) {
	m := New()
	if _, err := m.Configure(moduleConfig(t, 2, "")); err != nil {
		t.Fatal(err)
	}
	h := &brokenHandle{handle: newHandle("gen")}
	f := (&filterFactory{m: m}).Create(h)
	hm := fake.NewFakeHeaderMap(map[string][]string{"x-fal-runner-hint": {"flux"}})
	if st := f.OnRequestHeaders(hm, true); st != shared.HeadersStatusContinue || m.Panics() != 1 || len(h.logged) != 1 {
		t.Fatalf("a panicking decision: status %v, %d panics counted, logged %q", st, m.Panics(), h.logged)
	}
	f.OnStreamComplete()
	for _, r := range m.runners.Active("gpu") {
		if n := r.InFlight(); n != 0 {
			t.Errorf("runner %s: %d in flight after the request ended", r.Address, n)
		}
	}
}

// brokenHandle fails the way a bug would: a nil map written mid-decision.
type brokenHandle struct {
	*handle
	logged []string
}

func (h *brokenHandle) ClearRouteCache() {
	var m map[string]int
	m["boom"]++
}

func (h *brokenHandle) Log(_ shared.LogLevel, format string, args ...any) {
	h.logged = append(h.logged, fmt.Sprintf(format, args...))
}

// An invalid filter config is refused with the config's own error, and
// the last good one stays in force (Envoy keeps the old listener).
func TestConfigureKeepsLastGood(t *testing.T) {
	m := New()
	if _, err := m.Configure(moduleConfig(t, 2, "")); err != nil {
		t.Fatal(err)
	}
	_, err := m.Configure(moduleConfig(t, 2, "hints: {policy: nonsense}\n"))
	if err == nil || !strings.Contains(err.Error(), "switchyard.yaml:") || !strings.Contains(err.Error(), "hints.policy") {
		t.Fatalf("invalid config: %v, want the file, line and field", err)
	}
	if _, err := m.Configure([]byte("not json")); err == nil {
		t.Fatal("a filter config that is not a ModuleConfig was accepted")
	}
	if _, hm := request(m, "gen", map[string][]string{"x-tier": {"cpu"}}, ""); hm.GetOne(contract.HeaderPool) != "cpu" {
		t.Fatalf("after refused configs: pool %q, want the last good config's cpu", hm.GetOne(contract.HeaderPool))
	}
}

// BenchmarkFilter is the module's work for one hinted request: its
// headers and decision, the response's hints, its end.
func BenchmarkFilter(b *testing.B) {
	for _, n := range []int{8, 64} {
		b.Run(fmt.Sprintf("runners=%d", n), func(b *testing.B) {
			m := New()
			if _, err := m.Configure(moduleConfig(b, n, "")); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				model := fmt.Sprintf("model-%d", i%16)
				i++
				request(m, "gen", map[string][]string{":method": {"POST"}, ":path": {"/gen"}, "x-fal-runner-hint": {model}}, model)
			}
		})
	}
}
