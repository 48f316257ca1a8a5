package extproc_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/switchyard/switchyard/extproc"
	"github.com/switchyard/switchyard/internal/affinity"
	"github.com/switchyard/switchyard/internal/config"
	"github.com/switchyard/switchyard/internal/decisions"
	"github.com/switchyard/switchyard/internal/policy"
	"github.com/switchyard/switchyard/internal/registry"
)

const testConfig = `
listeners: [{name: l, address: 127.0.0.1, port: 10000}]
server: {max_body_bytes: 2048}
pools:
  - {name: small, max_concurrency: 1, runners: [{address: 10.0.0.1:80}, {address: 10.0.0.2:80}]}
  - {name: big, runners: [{address: 10.0.1.1:80}]}
  - {name: spare, runners: [{address: 10.0.2.1:80}]}
routes:
  - name: strict
    match: {prefix: /strict}
    on_invalid_body: reject
    rules: [{when: 'body.width > 10', pool: big}, {pool: small}]
  - name: headers-only
    match: {prefix: /h}
    rules: [{when: 'headers["x-tier"] == "big"', pool: big}, {pool: small, fallback: [spare]}]
  - name: images
    match: {prefix: /}
    hint_from: body.model
    rules:
      - when: body.width * body.height <= 1048576
        pool: small
      - pool: big
`

// fakeStream is Envoy's side of one ext_proc stream, in memory.
type fakeStream struct {
	grpc.ServerStream
	ctx  context.Context
	in   chan *extprocv3.ProcessingRequest
	out  chan *extprocv3.ProcessingResponse
	done chan error
	// failSend makes Send fail, as when Envoy has gone.
	failSend bool
}

func (f *fakeStream) Context() context.Context { return f.ctx }
func (f *fakeStream) Send(r *extprocv3.ProcessingResponse) error {
	if f.failSend {
		return io.ErrClosedPipe
	}
	f.out <- r
	return nil
}
func (f *fakeStream) Recv() (*extprocv3.ProcessingRequest, error) {
	r, ok := <-f.in
	if !ok {
		return nil, io.EOF
	}
	return r, nil
}

type fixture struct {
	srv     *extproc.Server
	engine  *policy.Engine
	runners *registry.Registry
	hints   *affinity.Index
	cfg     *config.Config
	ring    *decisions.Ring
}

func newFixture(t testing.TB, yaml string) *fixture {
	t.Helper()
	cfg, err := config.Parse("t.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	runners := registry.New(registry.Options{InFlightTracked: true})
	runners.ApplyConfig(cfg)
	hints := affinity.NewIndex(affinity.IndexOptions{})
	picker := affinity.NewPicker(affinity.PickerOptions{Index: hints, Mode: affinity.ModeLoadingMarks})
	engine := policy.New(policy.Options{Runners: runners, Hints: hints, Pickers: map[config.HintPolicy]policy.Picker{
		config.HintLoadingMarks: picker, config.HintFal: picker,
		config.HintSoonest: affinity.NewPicker(affinity.PickerOptions{Index: hints, Mode: affinity.ModeSoonest}),
	}})
	ring := decisions.NewRing(cfg.Observe.Decisions)
	srv := extproc.New(extproc.Options{
		Config:    func() *config.Config { return cfg },
		Policy:    engine,
		Log:       slog.New(slog.NewTextHandler(io.Discard, nil)),
		Metrics:   extproc.NewMetrics(prometheus.NewRegistry()),
		Decisions: ring,
	})
	return &fixture{srv: srv, engine: engine, runners: runners, hints: hints, cfg: cfg, ring: ring}
}

// open starts one request's stream on the server.
func (f *fixture) open() *fakeStream {
	s := &fakeStream{ctx: context.Background(), in: make(chan *extprocv3.ProcessingRequest), out: make(chan *extprocv3.ProcessingResponse, 4), done: make(chan error, 1)}
	go func() { s.done <- f.srv.Process(s) }()
	return s
}

func (s *fakeStream) exchange(r *extprocv3.ProcessingRequest) *extprocv3.ProcessingResponse {
	s.in <- r
	return <-s.out
}

func (s *fakeStream) close() error {
	close(s.in)
	return <-s.done
}

func attrs(kv ...string) map[string]*structpb.Struct {
	fields := map[string]*structpb.Value{}
	for i := 0; i+1 < len(kv); i += 2 {
		fields[kv[i]] = structpb.NewStringValue(kv[i+1])
	}
	return map[string]*structpb.Struct{"envoy.filters.http.ext_proc": {Fields: fields}}
}

func headers(endOfStream bool, kv ...string) *extprocv3.HttpHeaders {
	hm := &corev3.HeaderMap{}
	for i := 0; i+1 < len(kv); i += 2 {
		hm.Headers = append(hm.Headers, &corev3.HeaderValue{Key: kv[i], RawValue: []byte(kv[i+1])})
	}
	return &extprocv3.HttpHeaders{Headers: hm, EndOfStream: endOfStream}
}

func requestHeaders(route, path string, endOfStream bool, kv ...string) *extprocv3.ProcessingRequest {
	return &extprocv3.ProcessingRequest{
		Request:    &extprocv3.ProcessingRequest_RequestHeaders{RequestHeaders: headers(endOfStream, append([]string{":method", "POST", ":path", path}, kv...)...)},
		Attributes: attrs("xds.route_name", route),
	}
}

func requestBody(body string) *extprocv3.ProcessingRequest {
	return &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_RequestBody{RequestBody: &extprocv3.HttpBody{Body: []byte(body), EndOfStream: true}}}
}

// decision reads the routing header and runner list from a response.
func decision(r *extprocv3.ProcessingResponse) (target, runners string, clear bool) {
	var common *extprocv3.CommonResponse
	switch x := r.GetResponse().(type) {
	case *extprocv3.ProcessingResponse_RequestHeaders:
		common = x.RequestHeaders.GetResponse()
	case *extprocv3.ProcessingResponse_RequestBody:
		common = x.RequestBody.GetResponse()
	}
	for _, h := range common.GetHeaderMutation().GetSetHeaders() {
		if h.GetHeader().GetKey() == "x-switchyard-pool" {
			target = string(h.GetHeader().GetRawValue())
		}
	}
	lb := r.GetDynamicMetadata().GetFields()["envoy.lb"].GetStructValue()
	runners = lb.GetFields()["x-gateway-destination-endpoint"].GetStringValue()
	return target, runners, common.GetClearRouteCache()
}

// own reads switchyard's namespace of the decision's dynamic metadata.
func own(r *extprocv3.ProcessingResponse) map[string]string {
	out := map[string]string{}
	for k, v := range r.GetDynamicMetadata().GetFields()["switchyard"].GetStructValue().GetFields() {
		out[k] = v.GetStringValue()
	}
	return out
}

// ended says whether the server ended the stream by itself.
func (s *fakeStream) ended(t testing.TB) {
	t.Helper()
	select {
	case err := <-s.done:
		if err != nil {
			t.Fatalf("stream ended with %v", err)
		}
		s.done <- nil // for close
	case <-time.After(5 * time.Second):
		t.Fatal("the server kept the stream open after the decision")
	}
}

func TestHeaderPhaseDecision(t *testing.T) {
	f := newFixture(t, testConfig)
	s := f.open()
	resp := s.exchange(requestHeaders("headers-only", "/h/x", true, "x-tier", "big"))
	target, runners, clear := decision(resp)
	if target != "big" || runners != "10.0.1.1:80" || !clear {
		t.Fatalf("decision: target %q runners %q clear %v", target, runners, clear)
	}
	if resp.GetModeOverride() != nil {
		t.Error("a headers-only route asked for the body")
	}
	md := own(resp)
	if md["flight"] == "" || md["hint"] != "none" {
		t.Errorf("decision metadata %v: want a flight key and hint outcome none", md)
	}
	if _, ok := md["variant"]; ok {
		t.Errorf("a route without a split has a variant: %v", md)
	}
	// The exchange is over once the decision is sent.
	s.ended(t)
	// The access log's report of the end teaches the runner's hints.
	f.engine.Finish(md["flight"], policy.Response{Runner: "10.0.1.1:80", Status: 200, Hints: "flux", HintsReported: true})
	if !f.hints.Has("10.0.1.1:80", "flux") {
		t.Error("the serving runner's reported hints were not learnt")
	}
}

// With fallbacks, the runner list has one entry per attempt of the
// composite cluster: two in the pool, then one per fallback pool.
func TestFallbackRunnerList(t *testing.T) {
	f := newFixture(t, testConfig)
	s := f.open()
	target, runners, _ := decision(s.exchange(requestHeaders("headers-only", "/h/x", true)))
	list := strings.Split(runners, ",")
	if target != "small+spare" || len(list) != 3 || list[2] != "10.0.2.1:80" || !strings.HasPrefix(list[0], "10.0.0.") || !strings.HasPrefix(list[1], "10.0.0.") {
		t.Fatalf("target %q runners %q", target, runners)
	}
	s.close()
}

func TestBodyPhaseDecision(t *testing.T) {
	tests := []struct {
		name, route, body, target string
	}{
		{"small", "images", `{"model": "flux", "width": 512, "height": 512}`, "small"},
		{"large", "images", `{"model": "flux", "width": 4096, "height": 4096}`, "big"},
		{"not json, lenient", "images", `nope`, "big"},
		{"valid, strict", "strict", `{"width": 50}`, "big"},
	}
	for _, tt := range tests {
		f := newFixture(t, testConfig)
		s := f.open()
		resp := s.exchange(requestHeaders(tt.route, "/x", false))
		if target, _, _ := decision(resp); target != "" {
			t.Errorf("%s: decided %q before the body arrived", tt.name, target)
		}
		if resp.GetModeOverride().GetRequestBodyMode().String() != "BUFFERED" {
			t.Errorf("%s: the body was not asked for", tt.name)
		}
		if target, runners, clear := decision(s.exchange(requestBody(tt.body))); target != tt.target || runners == "" || !clear {
			t.Errorf("%s: target %q runners %q clear %v, want %q", tt.name, target, runners, clear, tt.target)
		}
		s.ended(t)
	}
}

func TestImmediateAnswers(t *testing.T) {
	f := newFixture(t, testConfig)
	s := f.open()
	s.exchange(requestHeaders("strict", "/strict", false))
	resp := s.exchange(requestBody(`width=50`))
	if im := resp.GetImmediateResponse(); im.GetStatus().GetCode() != 400 || !strings.Contains(string(im.GetBody()), `"error":"invalid_body"`) {
		t.Errorf("invalid body on a strict route: %v", resp)
	}
	s.close()

	s = f.open()
	resp = s.exchange(requestHeaders("images", "/x", false, "content-length", "4096"))
	if im := resp.GetImmediateResponse(); im.GetStatus().GetCode() != 413 || !strings.Contains(string(im.GetBody()), "max_body_bytes") {
		t.Errorf("body over max_body_bytes by content-length: %v", resp)
	}
	s.close()
}

// A decided request counts on its runner until the access log reports its
// end, not until the exchange ends; a decision Envoy never got counts on
// nothing.
func TestInFlightUntilReported(t *testing.T) {
	f := newFixture(t, testConfig)
	inflight := func() int64 {
		var n int64
		for _, r := range f.runners.List() {
			n += r.InFlight
		}
		return n
	}
	s := f.open()
	resp := s.exchange(requestHeaders("headers-only", "/h", true, "x-tier", "big"))
	s.ended(t)
	if inflight() != 1 {
		t.Fatalf("in flight after the decision's exchange ended = %d, want 1", inflight())
	}
	f.engine.Finish(own(resp)["flight"], policy.Response{Runner: "10.0.1.1:80", Status: 200})
	if inflight() != 0 {
		t.Errorf("in flight after the end report = %d, want 0", inflight())
	}
	// Envoy went away before the decision reached it.
	s = f.open()
	s.failSend = true
	s.in <- requestHeaders("headers-only", "/h", true, "x-tier", "big")
	if err := <-s.done; err == nil {
		t.Error("a failed send ended the stream without an error")
	}
	if inflight() != 0 {
		t.Errorf("in flight after an undelivered decision = %d, want 0", inflight())
	}
	if n, _ := f.engine.Awaiting(); n != 0 {
		t.Errorf("%d flights await a report that cannot come", n)
	}
}

// benchmarkExchange measures one whole request through the ext_proc
// server: headers (and body), decision, the stream's end, and the access
// log's report of the request's end.
func benchmarkExchange(b *testing.B, route string, body []byte) {
	benchmarkExchangeWith(b, testConfig, route, body)
}

func benchmarkExchangeWith(b *testing.B, config, route string, body []byte) {
	f := newFixture(b, config)
	f.cfg.Server.MaxBodyBytes = 2 << 20
	reqH := requestHeaders(route, "/x", body == nil, "x-fal-runner-hint", "flux")
	reqB := &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_RequestBody{RequestBody: &extprocv3.HttpBody{Body: body, EndOfStream: true}}}
	done := policy.Response{Runner: "10.0.0.1:80", Status: 200, Hints: "flux,sdxl", HintsReported: true}
	b.ReportAllocs()
	if body != nil {
		b.SetBytes(int64(len(body)))
	}
	for b.Loop() {
		s := f.open()
		resp := s.exchange(reqH)
		if body != nil {
			resp = s.exchange(reqB)
		}
		if t, _, _ := decision(resp); t == "" {
			b.Fatal("no decision")
		}
		s.ended(b)
		f.engine.Finish(own(resp)["flight"], done)
	}
}

func imageBody(size int) []byte {
	pad := max(size-80, 0)
	return []byte(fmt.Sprintf(`{"image": "%s", "model": "flux", "width": 512, "height": 512}`, strings.Repeat("A", pad)))
}

func BenchmarkDecisionHeadersOnly(b *testing.B) { benchmarkExchange(b, "headers-only", nil) }

// What the decision record costs: none kept, kept (the default), kept and
// handed to Envoy for its access log.
func BenchmarkDecisionRecord(b *testing.B) {
	for _, c := range []struct{ name, extra string }{
		{"off", "observe: {decisions: 0}\n"},
		{"kept", ""},
		{"access-log", "observe: {access_log: {path: /dev/null}}\n"},
	} {
		b.Run(c.name, func(b *testing.B) { benchmarkExchangeWith(b, testConfig+c.extra, "headers-only", nil) })
	}
}

// BenchmarkDecisionBodyFields is a body route's decision on the fields
// Envoy extracted, sent with the headers: one message, no body.
func BenchmarkDecisionBodyFields(b *testing.B) {
	f := newFixture(b, testConfig)
	reqH := requestHeadersWithFields("images", map[string]*structpb.Value{
		"0": structpb.NewNumberValue(512), "1": structpb.NewStringValue("flux"), "2": structpb.NewNumberValue(512),
	})
	done := policy.Response{Runner: "10.0.0.1:80", Status: 200, Hints: "flux,sdxl", HintsReported: true}
	b.ReportAllocs()
	for b.Loop() {
		s := f.open()
		resp := s.exchange(reqH)
		if t, _, _ := decision(resp); t == "" {
			b.Fatal("no decision")
		}
		s.ended(b)
		f.engine.Finish(own(resp)["flight"], done)
	}
}
func BenchmarkDecisionBody4KB(b *testing.B) { benchmarkExchange(b, "images", imageBody(4<<10)) }
func BenchmarkDecisionBody1MB(b *testing.B) { benchmarkExchange(b, "images", imageBody(1<<20)) }

// requestHeadersWithFields is a request whose body fields Envoy's
// json_to_metadata filter extracted (nil fields: the filter did not run).
func requestHeadersWithFields(route string, fields map[string]*structpb.Value) *extprocv3.ProcessingRequest {
	r := requestHeaders(route, "/x", false, "content-type", "application/json")
	if fields != nil {
		r.MetadataContext = &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{
			"switchyard.body": {Fields: fields},
		}}
	}
	return r
}

// The images route reads body.height, body.model and body.width: fields
// 0, 1 and 2 of the route's sorted body fields.
func TestBodyFieldsFromEnvoy(t *testing.T) {
	num, str := structpb.NewNumberValue, structpb.NewStringValue
	tests := []struct {
		name   string
		fields map[string]*structpb.Value
		target string // "" when the whole body is asked for
	}{
		{"small", map[string]*structpb.Value{"0": num(512), "1": str("flux"), "2": num(512)}, "small"},
		{"large", map[string]*structpb.Value{"0": num(4096), "1": str("flux"), "2": num(4096)}, "big"},
		{"fraction", map[string]*structpb.Value{"0": num(1000.5), "1": str("flux"), "2": num(1000.5)}, "small"},
		{"a field missing", map[string]*structpb.Value{"0": num(512), "1": str("flux"), "incomplete": str("missing")}, ""},
		{"not extracted", map[string]*structpb.Value{"incomplete": str("unreadable")}, ""},
		{"filter did not run", nil, ""},
		{"a key left out", map[string]*structpb.Value{"0": num(512), "2": num(512)}, ""},
	}
	for _, tt := range tests {
		f := newFixture(t, testConfig)
		s := f.open()
		resp := s.exchange(requestHeadersWithFields("images", tt.fields))
		target, _, _ := decision(resp)
		if target != tt.target {
			t.Errorf("%s: decided %q, want %q", tt.name, target, tt.target)
		}
		if tt.target != "" {
			if resp.GetModeOverride() != nil {
				t.Errorf("%s: asked for the body although Envoy sent its fields", tt.name)
			}
			s.ended(t)
			continue
		}
		if resp.GetModeOverride().GetRequestBodyMode().String() != "BUFFERED" {
			t.Errorf("%s: did not fall back to the whole body", tt.name)
		}
		// The whole body then decides as on the buffered path.
		if target, _, _ := decision(s.exchange(requestBody(`{"model": "flux", "width": 4096, "height": 4096}`))); target != "big" {
			t.Errorf("%s: after the whole body, decided %q, want big", tt.name, target)
		}
		s.ended(t)
	}
}

// A hint read from a body field Envoy extracted is the request's hint.
func TestHintFromEnvoyFields(t *testing.T) {
	f := newFixture(t, testConfig)
	f.hints.Report("10.0.0.2:80", "flux", true)
	s := f.open()
	resp := s.exchange(requestHeadersWithFields("images", map[string]*structpb.Value{
		"0": structpb.NewNumberValue(512), "1": structpb.NewStringValue("flux"), "2": structpb.NewNumberValue(512),
	}))
	if _, runners, _ := decision(resp); !strings.HasPrefix(runners, "10.0.0.2:80") || own(resp)["hint"] != "hit" {
		t.Errorf("runners %q, outcome %q: want the runner holding flux first, a hit", runners, own(resp)["hint"])
	}
	s.ended(t)
}
