package pipeline_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/switchyard/switchyard/internal/config"
	"github.com/switchyard/switchyard/internal/contract"
	"github.com/switchyard/switchyard/internal/pipeline"
)

// edge stands in for Envoy's listener: each step path answers as its
// handler says, and every step request is recorded.
type edge struct {
	srv  *httptest.Server
	mu   sync.Mutex
	seen []*stepSeen
}

type stepSeen struct {
	path   string
	header http.Header
	body   map[string]any
}

func newEdge(t *testing.T, handlers map[string]http.HandlerFunc) *edge {
	e := &edge{}
	e.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, _ := io.ReadAll(r.Body)
		s := &stepSeen{path: r.URL.Path, header: r.Header.Clone()}
		_ = json.Unmarshal(raw, &s.body)
		e.mu.Lock()
		e.seen = append(e.seen, s)
		e.mu.Unlock()
		h, ok := handlers[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		h(w, r)
	}))
	t.Cleanup(e.srv.Close)
	return e
}

func (e *edge) port() int { return e.srv.Listener.Addr().(*net.TCPAddr).Port }

// answer is a step that answers like a runner behind the edge: JSON, with
// the decision headers Envoy adds.
func answer(pool, runner string, v map[string]any) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(contract.HeaderPool, pool)
		w.Header().Set(contract.HeaderRunner, runner)
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(v)
	}
}

func configFor(t *testing.T, port int, pipelineYAML, server string) *config.Config {
	t.Helper()
	cfg, err := config.Parse("p.yaml", []byte(fmt.Sprintf(`listeners: [{name: public, address: 127.0.0.1, port: %d}]
server: {%s}
pools: [{name: upscaler}, {name: rembg}]
routes:
  - name: clean-upscale
    match: {path: /v1/pipelines/clean-upscale}
    pipeline:
%s
  - {name: upscale, match: {prefix: /v1/upscale}, rules: [{pool: upscaler}]}
  - {name: remove-background, match: {path: /v1/remove-background}, rules: [{pool: rembg}]}
`, port, server, pipelineYAML)))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

const twoSteps = `      steps:
        - {name: upscale, route: upscale, input: '{"image_url": body.image_url, "scale": body.scale * 2}'}
        - {name: remove-background, route: remove-background, input: '{"image_url": steps.upscale.image_url, "user": headers["x-user-id"]}'}`

type result struct {
	status int
	header http.Header
	body   map[string]any
}

// run sends a pipeline request as Envoy would: the route and the edge in
// switchyard's headers.
func run(t *testing.T, cfg *config.Config, e *edge, body string, header map[string]string) result {
	t.Helper()
	x := pipeline.New(pipeline.Options{Config: func() *config.Config { return cfg }})
	req := httptest.NewRequest(http.MethodPost, "/v1/pipelines/clean-upscale", strings.NewReader(body))
	req.Header.Set(contract.HeaderPipelineRoute, "clean-upscale")
	req.Header.Set(contract.HeaderPipelineEdge, e.srv.URL)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	x.ServeHTTP(w, req)
	res := result{status: w.Code, header: w.Header()}
	if err := json.Unmarshal(w.Body.Bytes(), &res.body); err != nil {
		t.Fatalf("answer is not JSON: %v: %q", err, w.Body.String())
	}
	return res
}

// The seed's chain: the first step's input from the request, the second's
// from the first's output; the answer is the last step's, and the header
// says where each step went.
func TestPipelineRunsStepsInOrder(t *testing.T) {
	e := newEdge(t, map[string]http.HandlerFunc{
		"/v1/upscale":           answer("upscaler", "127.0.0.1:9701", map[string]any{"image_url": "s3://big.png", "width": 2048}),
		"/v1/remove-background": answer("rembg", "127.0.0.1:9801", map[string]any{"image_url": "s3://clean.png"}),
	})
	cfg := configFor(t, e.port(), twoSteps, "")
	res := run(t, cfg, e, `{"image_url": "s3://in.png", "scale": 1}`, map[string]string{
		"x-user-id": "alice", "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "x-fal-runner-hint": "flux",
	})
	if res.status != http.StatusOK {
		t.Fatalf("status %d: %v", res.status, res.body)
	}
	if diff := cmp.Diff(map[string]any{"image_url": "s3://clean.png"}, res.body); diff != "" {
		t.Errorf("answer (-want +got):\n%s", diff)
	}
	if got, want := res.header.Get(contract.HeaderPipeline), "upscale=upscaler@127.0.0.1:9701,remove-background=rembg@127.0.0.1:9801"; got != want {
		t.Errorf("%s = %q, want %q", contract.HeaderPipeline, got, want)
	}
	if len(e.seen) != 2 {
		t.Fatalf("%d step requests, want 2", len(e.seen))
	}
	first, second := e.seen[0], e.seen[1]
	if diff := cmp.Diff(map[string]any{"image_url": "s3://in.png", "scale": float64(2)}, first.body); diff != "" {
		t.Errorf("first input (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[string]any{"image_url": "s3://big.png", "user": "alice"}, second.body); diff != "" {
		t.Errorf("second input (-want +got):\n%s", diff)
	}
	if first.path != "/v1/upscale" || second.path != "/v1/remove-background" {
		t.Errorf("paths %s, %s", first.path, second.path)
	}
	for _, s := range e.seen {
		if s.header.Get("traceparent") == "" || s.header.Get("x-user-id") != "alice" {
			t.Errorf("%s: the client's headers were not forwarded: %v", s.path, s.header)
		}
		if s.header.Get("x-fal-runner-hint") != "" || s.header.Get(contract.HeaderPipelineRoute) != "" {
			t.Errorf("%s: hint or switchyard headers forwarded: %v", s.path, s.header)
		}
	}
	if got := second.header.Get(contract.HeaderPipelineStep); got != "clean-upscale/remove-background" {
		t.Errorf("step header %q", got)
	}
}

// An output expression projects the steps' outputs.
func TestPipelineOutput(t *testing.T) {
	e := newEdge(t, map[string]http.HandlerFunc{
		"/v1/upscale":           answer("upscaler", "r1", map[string]any{"image_url": "big", "n": 3}),
		"/v1/remove-background": answer("rembg", "r2", map[string]any{"image_url": "clean"}),
	})
	cfg := configFor(t, e.port(), twoSteps+"\n      output: '{\"final\": steps[\"remove-background\"].image_url, \"upscaled\": steps.upscale.image_url, \"n\": steps.upscale.n + 1}'", "")
	res := run(t, cfg, e, `{"image_url": "in", "scale": 1}`, map[string]string{"x-user-id": "carol"})
	if diff := cmp.Diff(map[string]any{"final": "clean", "upscaled": "big", "n": float64(4)}, res.body); res.status != 200 || diff != "" {
		t.Errorf("status %d, answer (-want +got):\n%s", res.status, diff)
	}
}

// Every way a pipeline fails: a JSON error naming the step and its status.
func TestPipelineFailures(t *testing.T) {
	ok := answer("upscaler", "r1", map[string]any{"image_url": "big"})
	tests := []struct {
		name     string
		handlers map[string]http.HandlerFunc
		pipeline string
		server   string
		body     string
		header   map[string]string
		status   int
		want     pipeline.Failure
		header1  string // the pipeline header, "" for none
	}{
		{name: "second step answers 500",
			handlers: map[string]http.HandlerFunc{"/v1/upscale": ok, "/v1/remove-background": func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set(contract.HeaderPool, "rembg")
				w.Header().Set(contract.HeaderRunner, "r2")
				w.WriteHeader(500)
				io.WriteString(w, `{"error": "out of memory"}`)
			}},
			status: 502, want: pipeline.Failure{Error: "step_failed", Step: "remove-background", Status: 500, Message: "out of memory"},
			header1: "upscale=upscaler@r1,remove-background=rembg@r2"},
		{name: "step answers text",
			handlers: map[string]http.HandlerFunc{"/v1/upscale": func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "hello") }},
			status:   502, want: pipeline.Failure{Error: "step_failed", Step: "upscale", Status: 200, Message: `the answer is not a JSON object: "hello"`}, header1: "upscale=-"},
		{name: "step answers a JSON array",
			handlers: map[string]http.HandlerFunc{"/v1/upscale": func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "[1]") }},
			status:   502, want: pipeline.Failure{Error: "step_failed", Step: "upscale", Status: 200, Message: `the answer is not a JSON object: "[1]"`}},
		{name: "step answers too much", server: "max_body_bytes: 1024",
			handlers: map[string]http.HandlerFunc{"/v1/upscale": answer("upscaler", "r1", map[string]any{"image_url": strings.Repeat("x", 2000)})},
			status:   502, want: pipeline.Failure{Error: "step_failed", Step: "upscale", Status: 200, Message: "answer over 1024 bytes (server.max_body_bytes)"}},
		{name: "step route not served", handlers: map[string]http.HandlerFunc{"/v1/upscale": ok},
			status: 502, want: pipeline.Failure{Error: "step_failed", Step: "remove-background", Status: 404, Message: "404 page not found"}},
		{name: "timeout", pipeline: "      timeout: 200ms\n" + twoSteps,
			handlers: map[string]http.HandlerFunc{"/v1/upscale": func(w http.ResponseWriter, r *http.Request) {
				select {
				case <-r.Context().Done():
				case <-time.After(5 * time.Second):
				}
			}},
			status: 504, want: pipeline.Failure{Error: "pipeline_timeout", Step: "upscale", Message: "the pipeline took longer than its timeout (200ms) during step upscale"}},
		{name: "a step's request reaches a pipeline", header: map[string]string{contract.HeaderPipelineStep: "other/a"},
			status: 508, want: pipeline.Failure{Error: "pipeline_loop", Message: "a pipeline step (other/a) reached a pipeline route: steps never run pipelines"}},
		{name: "body not JSON", body: "{", status: 400, want: pipeline.Failure{Error: "invalid_body", Message: "the request body must be JSON: unexpected EOF"}},
		{name: "body too large", server: "max_body_bytes: 1024", body: `{"image_url": "` + strings.Repeat("x", 1100) + `"}`,
			status: 413, want: pipeline.Failure{Error: "body_too_large", Message: "request body over 1024 bytes (server.max_body_bytes)"}},
		{name: "input from the request fails", body: `{"scale": 1}`,
			status: 400, want: pipeline.Failure{Error: "input_failed", Step: "upscale", Message: `input {"image_url": body.image_url, "scale": body.scale * 2}: no such key: image_url`}},
		{name: "input from a step's output fails",
			handlers: map[string]http.HandlerFunc{"/v1/upscale": answer("upscaler", "r1", map[string]any{"url": "big"})},
			status:   502, want: pipeline.Failure{Error: "input_failed", Step: "remove-background", Message: `input {"image_url": steps.upscale.image_url, "user": headers["x-user-id"]}: no such key: image_url`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEdge(t, tt.handlers)
			p := tt.pipeline
			if p == "" {
				p = twoSteps
			}
			body := tt.body
			if body == "" {
				body = `{"image_url": "in", "scale": 1}`
			}
			header := map[string]string{"x-user-id": "bob"}
			for k, v := range tt.header {
				header[k] = v
			}
			res := run(t, configFor(t, e.port(), p, tt.server), e, body, header)
			var got pipeline.Failure
			raw, _ := json.Marshal(res.body)
			_ = json.Unmarshal(raw, &got)
			if res.status != tt.status {
				t.Errorf("status %d, want %d (%s)", res.status, tt.status, raw)
			}
			if diff := cmp.Diff(tt.want, got, cmp.AllowUnexported(pipeline.Failure{})); diff != "" {
				t.Errorf("error (-want +got):\n%s", diff)
			}
			if tt.header1 != "" && res.header.Get(contract.HeaderPipeline) != tt.header1 {
				t.Errorf("%s = %q, want %q", contract.HeaderPipeline, res.header.Get(contract.HeaderPipeline), tt.header1)
			}
		})
	}
}

// The steps go only to a listener of the route, whatever a caller of the
// pipelines port says.
func TestPipelineEdgeMustBeAListener(t *testing.T) {
	e := newEdge(t, nil)
	cfg := configFor(t, e.port(), twoSteps, "")
	x := pipeline.New(pipeline.Options{Config: func() *config.Config { return cfg }})
	for _, edge := range []string{"http://10.1.2.3:" + fmt.Sprint(e.port()), "http://127.0.0.1:1", "https://127.0.0.1:" + fmt.Sprint(e.port()), "http://127.0.0.1:" + fmt.Sprint(e.port()) + "/x", ""} {
		req := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(`{}`))
		req.Header.Set(contract.HeaderPipelineRoute, "clean-upscale")
		req.Header.Set(contract.HeaderPipelineEdge, edge)
		w := httptest.NewRecorder()
		x.ServeHTTP(w, req)
		if w.Code != http.StatusBadRequest || !strings.Contains(w.Body.String(), `"bad_edge"`) {
			t.Errorf("edge %q: %d %s, want 400 bad_edge", edge, w.Code, w.Body.String())
		}
	}
	if len(e.seen) != 0 {
		t.Errorf("%d steps sent", len(e.seen))
	}
}
