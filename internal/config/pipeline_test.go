package config_test

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/switchyard/switchyard/internal/config"
)

const pipelineHead = `listeners: [{name: l, address: 127.0.0.1, port: 10000}]
pools: [{name: gpu}, {name: cpu}]
routes:
`

// The seed's chain: an upscaler, then a background remover, each a routed
// route; the pipeline route has neither rules nor a route timeout.
const pipelineRoutes = `  - name: clean-upscale
    match: {path: /v1/pipelines/clean-upscale}
    pipeline:
      timeout: 2m
      steps:
        - name: upscale
          route: upscale
          input: '{"image_url": body.image_url, "scale": 2}'
        - name: remove-background
          route: remove-background
          input: '{"image_url": steps.upscale.image_url}'
      output: '{"image_url": steps["remove-background"].image_url, "upscaled": steps.upscale.image_url}'
  - name: upscale
    match: {prefix: /v1/upscale}
    rules: [{pool: gpu}]
  - name: remove-background
    match: {path: /v1/remove-background}
    rules: [{pool: cpu}]
`

func TestPipelineConfig(t *testing.T) {
	cfg, err := config.Parse("p.yaml", []byte(pipelineHead+pipelineRoutes))
	if err != nil {
		t.Fatal(err)
	}
	r, _ := cfg.Route("clean-upscale")
	p := r.Pipeline
	if p == nil || p.Timeout.Std().Minutes() != 2 || r.Timeout != p.Timeout {
		t.Fatalf("pipeline %+v, route timeout %v: want a 2m pipeline, the route's timeout the same", p, r.Timeout)
	}
	got := []string{}
	for _, s := range p.Steps {
		got = append(got, s.Name+" "+s.Route+" "+s.Path)
	}
	if diff := cmp.Diff([]string{"upscale upscale /v1/upscale", "remove-background remove-background /v1/remove-background"}, got); diff != "" {
		t.Errorf("steps (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"upscale"}, p.Steps[1].Input.StepsRead); diff != "" {
		t.Errorf("second input reads (-want +got):\n%s", diff)
	}
	if p.Steps[0].Input.UsesSteps || !p.Steps[1].Input.UsesSteps || !p.Steps[0].Input.UsesBody {
		t.Errorf("first input reads the body only, the second the steps")
	}
	if cfg.Decides(r) || !cfg.HasPipelines() || cfg.Server.Pipelines != config.DefaultPipelines {
		t.Errorf("a pipeline route is not decided by ext_proc; HasPipelines %v; server.pipelines %q", cfg.HasPipelines(), cfg.Server.Pipelines)
	}
	if names, _ := cfg.RequestHeadersRead("l"); strings.Contains(strings.Join(names, ","), "image") {
		t.Errorf("headers read %v", names)
	}
	// Without a pipeline, nothing listens for them.
	plain, err := config.Parse("p.yaml", []byte(pipelineHead+"  - {name: r, match: {prefix: /}, rules: [{pool: gpu}]}\n"))
	if err != nil || plain.HasPipelines() {
		t.Errorf("HasPipelines without one: %v (%v)", plain.HasPipelines(), err)
	}
}

// Every problem of a pipeline, at its line and field.
func TestPipelineProblems(t *testing.T) {
	step := func(name, route, input string) string {
		return "        - {name: " + name + ", route: " + route + ", input: '" + input + "'}\n"
	}
	pipe := func(steps ...string) string {
		return "  - name: pipe\n    match: {path: /v1/pipe}\n    pipeline:\n      steps:\n" + strings.Join(steps, "")
	}
	const routed = "  - {name: up, match: {prefix: /v1/up}, rules: [{pool: gpu}]}\n"
	tests := []struct {
		name string
		yaml string
		want []string // each "line|field|substring"
	}{
		{"loop through another pipeline", pipe(step("a", "other", "{}")) + "  - name: other\n    match: {path: /v1/other}\n    pipeline:\n      steps:\n" + step("b", "up", "{}") + routed,
			[]string{`8|routes[0].pipeline.steps[0].route|route "other" is a pipeline: a step must name a routed route`}},
		{"calls itself", pipe(step("a", "pipe", "{}")) + routed,
			[]string{`8|routes[0].pipeline.steps[0].route|a pipeline cannot call itself`}},
		{"unknown route", pipe(step("a", "nope", "{}")) + routed,
			[]string{`8|routes[0].pipeline.steps[0].route|unknown route "nope"`}},
		{"input not a map", pipe(step("a", "up", "body.image_url + 1"), step("b", "up", "[1]")) + routed,
			[]string{`9|routes[0].pipeline.steps[1].input|has type list(int), want a map`}},
		{"input does not compile", pipe(step("a", "up", "{\"x\": nope}")) + routed,
			[]string{`8|routes[0].pipeline.steps[0].input|undeclared reference to 'nope'`}},
		{"reads a later step", pipe(step("a", "up", "{\"x\": steps.b.y}"), step("b", "up", "{\"x\": steps.a.y}")) + routed,
			[]string{`8|routes[0].pipeline.steps[0].input|reads steps["b"], but no step runs before this one`}},
		{"duplicate step names", pipe(step("a", "up", "{}"), step("a", "up", "{}")) + routed,
			[]string{`9|routes[0].pipeline.steps[1].name|duplicate step name "a"`}},
		{"too many steps", pipe(step("s", "up", "{}")+step("s1", "up", "{}")+step("s2", "up", "{}")+step("s3", "up", "{}")+step("s4", "up", "{}")+step("s5", "up", "{}")+step("s6", "up", "{}")+step("s7", "up", "{}")+step("s8", "up", "{}")) + routed,
			[]string{`8|routes[0].pipeline.steps|at most 8 steps, got 9`}},
		{"rules and a route timeout on a pipeline", "  - name: pipe\n    match: {path: /v1/pipe}\n    timeout: 1m\n    rules: [{pool: gpu}]\n    pipeline:\n      timeout: 2h\n      steps:\n" + step("a", "up", "{}") + routed,
			[]string{`6|routes[0].timeout|set pipeline.timeout`, `7|routes[0].rules|a pipeline route has no rules`, `9|routes[0].pipeline.timeout|at most 1h0m0s`}},
		{"step path taken by an earlier route", "  - {name: all-up, match: {prefix: /v1/u}, rules: [{pool: cpu}]}\n" + pipe(step("a", "up", "{}")) + routed,
			[]string{`9|routes[1].pipeline.steps[0].route|a request for /v1/up on listener "l" goes to route "all-up", not to "up"`}},
		{"no steps, unknown output step", "  - name: pipe\n    match: {path: /v1/pipe}\n    pipeline: {steps: [], output: 'steps.x'}\n" + routed,
			[]string{`6|routes[0].pipeline.output|reads steps["x"]`, `6|routes[0].pipeline.steps|at least one step`}},
		{"unknown key", pipe("        - {name: a, route: up, input: '{}', inptu: x}\n") + routed,
			[]string{`8|routes[0].pipeline.steps[0].inptu|unknown field (did you mean "input"?)`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := config.Parse("p.yaml", []byte(pipelineHead+tt.yaml))
			if err == nil {
				t.Fatalf("valid, want %v", tt.want)
			}
			var got []string
			for _, p := range err.(*config.Error).Problems {
				got = append(got, p.String())
			}
			for _, w := range tt.want {
				parts := strings.SplitN(w, "|", 3)
				prefix := "p.yaml:" + parts[0] + ": " + parts[1] + ": "
				found := false
				for _, g := range got {
					found = found || strings.HasPrefix(g, prefix) && strings.Contains(g, parts[2])
				}
				if !found {
					t.Errorf("want %s%s, got:\n  %s", prefix, parts[2], strings.Join(got, "\n  "))
				}
			}
		})
	}
}
