package integration

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/dev/simrunner"
)

// pipelineBody is the seed's router app as a declared pipeline: an
// upscaler, then a background remover, each its own routed route and pool.
func pipelineBody(upscalers, removers []*TestRunner) string {
	return poolsYAML(poolSpec{name: "upscaler", runners: upscalers}, poolSpec{name: "rembg", runners: removers}) + `routes:
  - name: clean-upscale
    match: {path: /v1/pipelines/clean-upscale}
    pipeline:
      timeout: 30s
      steps:
        - name: upscale
          route: upscale
          input: '{"image_url": body.image_url, "scale": 2, "model": "esrgan"}'
        - name: remove-background
          route: remove-background
          input: '{"image_url": steps.upscale.image_url, "model": "rembg"}'
  - name: clean-upscale-both
    match: {path: /v1/pipelines/clean-upscale-both}
    pipeline:
      steps:
        - {name: upscale, route: upscale, input: '{"image_url": body.image_url}'}
        - {name: remove-background, route: remove-background, input: '{"image_url": steps.upscale.image_url}'}
      output: '{"upscaled": steps.upscale.image_url, "clean": steps["remove-background"].image_url, "served_by": [steps.upscale.runner, steps["remove-background"].runner]}'
  - name: upscale
    match: {prefix: /v1/upscale}
    rules: [{pool: upscaler}]
  - name: remove-background
    match: {prefix: /v1/remove-background}
    rules: [{pool: rembg}]
`
}

func requestsOf(rs []*TestRunner) int64 {
	var n int64
	for _, r := range rs {
		n += r.Requests()
	}
	return n
}

// The seed's chain through the real Envoy: the client sends one request,
// each step goes back through the edge to its own route and pool, and the
// client gets the last step's output with where each step went.
func TestPipelineThroughEdge(t *testing.T) {
	o := simrunner.Options{LoadTime: 10 * time.Millisecond, InferTime: 10 * time.Millisecond}
	upscalers := runnersNamed(t, o, "upscaler-1", "upscaler-2")
	removers := runnersNamed(t, o, "rembg-1")
	s := NewStack(t, StackConfig{Body: pipelineBody(upscalers, removers)})

	r := s.MustDo("POST", "/v1/pipelines/clean-upscale", map[string]string{"x-user-id": "alice"}, `{"image_url": "s3://cat.png"}`)
	if r.Status != 200 {
		t.Fatalf("status %d: %s", r.Status, r.RawBody)
	}
	if got := r.Body["image_url"]; got != "s3://cat.png+upscale+remove-background" {
		t.Errorf("image_url %v, want the input through both steps", got)
	}
	if r.Runner() != "rembg-1" || r.Body["model"] != "rembg" {
		t.Errorf("answer from %q (model %v), want the last step's runner rembg-1", r.Runner(), r.Body["model"])
	}
	// Each step is a request of its own through the edge, with the
	// client's headers (the runner echoes its x- headers).
	headers, _ := r.Body["headers"].(map[string]any)
	if headers["x-user-id"] != "alice" {
		t.Errorf("the step's request headers %v: want the client's x-user-id", headers)
	}
	got := r.Header.Get("x-switchyard-pipeline")
	steps := strings.Split(got, ",")
	if len(steps) != 2 || !strings.HasPrefix(steps[0], "upscale=upscaler@") || steps[1] != "remove-background=rembg@"+removers[0].Addr {
		t.Errorf("x-switchyard-pipeline %q, want upscale=upscaler@…,remove-background=rembg@%s", got, removers[0].Addr)
	}
	if addr := strings.TrimPrefix(steps[0], "upscale=upscaler@"); addr != upscalers[0].Addr && addr != upscalers[1].Addr {
		t.Errorf("upscale step on %s, not an upscaler", addr)
	}
	if u, rb := requestsOf(upscalers), requestsOf(removers); u != 1 || rb != 1 {
		t.Errorf("runner requests: upscaler %d, rembg %d; want one each", u, rb)
	}

	// An output expression projects both steps' outputs.
	r = s.MustDo("POST", "/v1/pipelines/clean-upscale-both", nil, `{"image_url": "s3://dog.png"}`)
	if r.Status != 200 || r.Body["upscaled"] != "s3://dog.png+upscale" || r.Body["clean"] != "s3://dog.png+upscale+remove-background" {
		t.Errorf("projection: %d %s", r.Status, r.RawBody)
	}
	if by, _ := r.Body["served_by"].([]any); len(by) != 2 || by[1] != "rembg-1" {
		t.Errorf("served_by %v", r.Body["served_by"])
	}

	// A request that carries a step's mark never runs a pipeline.
	r = s.MustDo("POST", "/v1/pipelines/clean-upscale", map[string]string{"switchyard-pipeline-step": "clean-upscale/upscale"}, `{"image_url": "s3://cat.png"}`)
	if r.Status != 508 || r.Body["error"] != "pipeline_loop" {
		t.Errorf("re-entry: %d %s, want 508 pipeline_loop", r.Status, r.RawBody)
	}
	// A body that is not JSON: nothing runs.
	before := requestsOf(upscalers)
	r = s.MustDo("POST", "/v1/pipelines/clean-upscale", nil, `{"image_url":`)
	if r.Status != 400 || r.Body["error"] != "invalid_body" || requestsOf(upscalers) != before {
		t.Errorf("bad body: %d %s", r.Status, r.RawBody)
	}
}

// A failing second step fails the pipeline with a JSON error naming the
// step and what it got; with switchyard down, pipeline routes answer a JSON
// 503 (they need the executor), while routed routes fail open.
func TestPipelineFailures(t *testing.T) {
	o := simrunner.Options{LoadTime: 10 * time.Millisecond, InferTime: 10 * time.Millisecond}
	upscalers := runnersNamed(t, o, "upscaler-1")
	removers := runnersNamed(t, o, "rembg-1")
	s := NewStack(t, StackConfig{Body: pipelineBody(upscalers, removers)})
	if r := s.MustDo("POST", "/v1/pipelines/clean-upscale", nil, `{"image_url": "s3://cat.png"}`); r.Status != 200 {
		t.Fatalf("before the failure: %d %s", r.Status, r.RawBody)
	}

	removers[0].Stop()
	r := s.MustDo("POST", "/v1/pipelines/clean-upscale", nil, `{"image_url": "s3://cat.png"}`)
	if r.Status != 502 || r.Body["error"] != "step_failed" || r.Body["step"] != "remove-background" || r.Body["status"] != float64(503) {
		t.Errorf("second step down: %d %s, want 502 step_failed, step remove-background, status 503", r.Status, r.RawBody)
	}
	if h := r.Header.Get("x-switchyard-pipeline"); !strings.HasPrefix(h, "upscale=upscaler@"+upscalers[0].Addr+",remove-background=") {
		t.Errorf("x-switchyard-pipeline %q: want both steps, the first on %s", h, upscalers[0].Addr)
	}
	if n := upscalers[0].Requests(); n != 2 {
		t.Errorf("upscaler served %d, want 2 (the first step ran both times)", n)
	}

	s.StopSwitchyard()
	r = s.MustDo("POST", "/v1/pipelines/clean-upscale", nil, `{"image_url": "s3://cat.png"}`)
	if r.Status != 503 || r.Body["error"] != "pipelines_unavailable" {
		t.Errorf("switchyard down: %d %s, want 503 pipelines_unavailable", r.Status, r.RawBody)
	}
	if r := s.MustDo("POST", "/v1/upscale", nil, `{"image_url": "s3://cat.png"}`); r.Status != 200 || r.Runner() != "upscaler-1" {
		t.Errorf("a routed route with switchyard down: %d %s, want it served", r.Status, r.RawBody)
	}
}

// A pipeline whose step names a pipeline is refused before it serves:
// `switchyard validate` names the step's line and field.
func TestPipelineLoopRefusedAtValidation(t *testing.T) {
	path := filepath.Join(t.TempDir(), "loop.yaml")
	cfg := `listeners: [{name: public, address: 127.0.0.1, port: 10000}]
pools: [{name: upscaler}]
routes:
  - name: a
    match: {path: /v1/pipelines/a}
    pipeline:
      steps:
        - {name: b, route: b, input: '{}'}
  - name: b
    match: {path: /v1/pipelines/b}
    pipeline:
      steps:
        - {name: a, route: a, input: '{}'}
  - {name: upscale, match: {prefix: /v1/upscale}, rules: [{pool: upscaler}]}
`
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	cmd := exec.Command(switchyardBin, "validate", path)
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	var exit *exec.ExitError
	if !errors.As(err, &exit) {
		t.Fatalf("validate accepted a loop: %v\n%s", err, out.String())
	}
	for _, want := range []string{
		path + `:8: routes[0].pipeline.steps[0].route: route "b" is a pipeline: a step must name a routed route (pipelines do not call pipelines)`,
		path + `:13: routes[1].pipeline.steps[0].route: route "a" is a pipeline`,
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("validate output lacks\n  %s\n%s", want, out.String())
		}
	}
}

// A reload that adds the first pipeline binds the pipelines port then: the
// new route answers without a restart.
func TestPipelineAddedByReload(t *testing.T) {
	o := simrunner.Options{LoadTime: 10 * time.Millisecond, InferTime: 10 * time.Millisecond}
	upscalers := runnersNamed(t, o, "upscaler-1")
	removers := runnersNamed(t, o, "rembg-1")
	routed := poolsYAML(poolSpec{name: "upscaler", runners: upscalers}, poolSpec{name: "rembg", runners: removers}) + `routes:
  - {name: upscale, match: {prefix: /v1/upscale}, rules: [{pool: upscaler}]}
  - {name: remove-background, match: {prefix: /v1/remove-background}, rules: [{pool: rembg}]}
`
	s := NewStack(t, StackConfig{Body: routed})
	if r := s.MustDo("POST", "/v1/upscale", nil, `{"image_url": "a"}`); r.Status != 200 {
		t.Fatalf("before the reload: %d %s", r.Status, r.RawBody)
	}
	cfg := s.ReadConfig()
	head := cfg[:strings.Index(cfg, "pools:")]
	s.WriteConfig(head + pipelineBody(upscalers, removers))
	Eventually(t, 10*time.Second, "the pipeline route answers", func() bool {
		r, err := s.Do("POST", "/v1/pipelines/clean-upscale", nil, `{"image_url": "s3://cat.png"}`)
		return err == nil && r.Status == 200 && r.Body["image_url"] == "s3://cat.png+upscale+remove-background"
	})
}
