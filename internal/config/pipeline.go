package config

import (
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/types"
)

// Pipeline is a route's declared chain of steps (routes[].pipeline):
// switchyard runs them in order, each as a request through the edge to
// the step's route, and answers with Output (or the last step's answer).
type Pipeline struct {
	// Timeout bounds the whole pipeline, every step included.
	Timeout Duration `json:"timeout"`
	Steps   []Step   `json:"steps"`
	// Output, when set, builds the answer from body, headers and steps;
	// nil answers with the last step's output.
	Output *Expr `json:"output,omitempty"`
}

// Step is one request of a pipeline.
type Step struct {
	Name  string `json:"name"`
	Route string `json:"route"`
	// Input builds the step's JSON request body (an object) from the
	// pipeline's request and the earlier steps' outputs.
	Input *Expr `json:"input"`
	// Path is where the step's request goes: its route's exact path, or
	// its prefix.
	Path string `json:"path"`
}

// Bounds and defaults of pipelines.
const (
	// DefaultPipelines is where switchyard runs pipelines for Envoy (when
	// a route declares one).
	DefaultPipelines = "127.0.0.1:18002"

	MaxPipelineSteps       = 8
	DefaultPipelineTimeout = Duration(5 * time.Minute)
	MaxPipelineTimeout     = Duration(time.Hour)
)

// VarSteps is the variable of pipeline expressions that holds the outputs
// of the steps run so far, by step name.
const VarSteps = "steps"

// HasPipelines says a route declares a pipeline, so switchyard must run
// its pipeline executor (on server.pipelines).
func (c *Config) HasPipelines() bool {
	for i := range c.Routes {
		if c.Routes[i].Pipeline != nil {
			return true
		}
	}
	return false
}

// StepPath is the path a step's request is sent to on the edge, so that
// Envoy matches it to route r: the exact path, or the prefix.
func StepPath(r *Route) string {
	if r.Match.Path != "" {
		return r.Match.Path
	}
	return r.Match.Prefix
}

// RouteFor is the route Envoy gives a request for path on the listener:
// the first, in file order, whose match fits, as Envoy matches them.
func (c *Config) RouteFor(listener, path string) (*Route, bool) {
	for i := range c.Routes {
		r := &c.Routes[i]
		if !slices.Contains(r.Listeners, listener) {
			continue
		}
		if r.Match.Path != "" && r.Match.Path == path || r.Match.Prefix != "" && len(path) >= len(r.Match.Prefix) && path[:len(r.Match.Prefix)] == r.Match.Prefix {
			return r, true
		}
	}
	return nil, false
}

func buildPipeline(r routeFile, rp fieldPath, ps *problems) *Pipeline {
	path := rp.key("pipeline")
	in := r.Pipeline
	// A pipeline route is answered by switchyard: nothing of a routed
	// route applies to it.
	for _, f := range []struct {
		key string
		set bool
	}{{"rules", len(r.Rules) > 0}, {"hint_from", r.HintFrom != ""}, {"cost", r.Cost != ""}, {"on_invalid_body", r.OnInvalidBody != ""}, {"timeout", r.Timeout != nil}} {
		if f.set {
			msg := "a pipeline route has no %s: its steps' routes decide each step"
			if f.key == "timeout" {
				msg = "a pipeline route has no %s: set pipeline.timeout"
			}
			ps.at(rp.key(f.key), msg, f.key)
		}
	}
	p := &Pipeline{Timeout: DefaultPipelineTimeout}
	if in.Timeout != nil {
		p.Timeout = *in.Timeout
		if p.Timeout <= 0 || p.Timeout > MaxPipelineTimeout {
			ps.at(path.key("timeout"), "must be positive and at most %v, got %v", MaxPipelineTimeout.Std(), p.Timeout.Std())
		}
	}
	switch n := len(in.Steps); {
	case n == 0:
		ps.at(path.key("steps"), "at least one step is required")
	case n > MaxPipelineSteps:
		ps.at(path.key("steps"), "at most %d steps, got %d", MaxPipelineSteps, n)
	}
	names := map[string]bool{}
	for i, s := range in.Steps {
		sp := path.key("steps").idx(i)
		checkName("step", s.Name, sp.key("name"), names, ps)
		step := Step{Name: s.Name, Route: s.Route}
		if s.Route == "" {
			ps.at(sp.key("route"), "the route that serves the step is required")
		}
		if s.Input == "" {
			ps.at(sp.key("input"), "an input expression is required (a JSON object, e.g. '{\"image_url\": body.image_url}')")
		} else {
			step.Input = compilePipelineAt(s.Input, sp.key("input"), in.Steps[:i], ps)
		}
		p.Steps = append(p.Steps, step)
	}
	if in.Output != "" {
		p.Output = compilePipelineAt(in.Output, path.key("output"), in.Steps, ps)
	}
	return p
}

// checkSteps checks, once every route is built, that each step names a
// routed route (no pipeline: a pipeline never calls a pipeline, so there
// are no loops) served on every listener of its pipeline, where Envoy
// gives the step's path to that route.
func checkSteps(routes []Route, path fieldPath, ps *problems) {
	for i := range routes {
		r := &routes[i]
		if r.Pipeline == nil {
			continue
		}
		for j := range r.Pipeline.Steps {
			s := &r.Pipeline.Steps[j]
			sp := path.idx(i).key("pipeline").key("steps").idx(j).key("route")
			if s.Route == "" {
				continue
			}
			target := (*Route)(nil)
			for k := range routes {
				if routes[k].Name == s.Route {
					target = &routes[k]
				}
			}
			switch {
			case target == nil:
				ps.at(sp, "unknown route %q", s.Route)
				continue
			case target.Name == r.Name:
				ps.at(sp, "a pipeline cannot call itself")
				continue
			case target.Pipeline != nil:
				ps.at(sp, "route %q is a pipeline: a step must name a routed route (pipelines do not call pipelines)", s.Route)
				continue
			}
			s.Path = StepPath(target)
			cfg := &Config{Routes: routes}
			for _, l := range r.Listeners {
				got, ok := cfg.RouteFor(l, s.Path)
				switch {
				case !slices.Contains(target.Listeners, l):
					ps.at(sp, "route %q is not served on listener %q, where pipeline %q is", s.Route, l, r.Name)
				case !ok || got.Name != target.Name:
					other := "no route"
					if ok {
						other = fmt.Sprintf("route %q", got.Name)
					}
					ps.at(sp, "a request for %s on listener %q goes to %s, not to %q: order the routes so that it reaches the step's route", s.Path, l, other, s.Route)
				}
			}
		}
	}
}

var (
	pipelineEnvOnce sync.Once
	pipelineEnv     *cel.Env
	pipelineEnvErr  error
)

// pipelineCELEnv is the request's variables plus the steps' outputs.
func pipelineCELEnv() (*cel.Env, error) {
	pipelineEnvOnce.Do(func() {
		base, err := celEnv()
		if err != nil {
			pipelineEnvErr = err
			return
		}
		pipelineEnv, pipelineEnvErr = base.Extend(cel.Variable(VarSteps, cel.MapType(cel.StringType, cel.DynType)))
	})
	return pipelineEnv, pipelineEnvErr
}

// compilePipelineAt compiles a step's input or the pipeline's output: a
// map (a JSON object) over body, headers, path, method and the outputs of
// the steps before (earlier, by name).
func compilePipelineAt(src string, path fieldPath, earlier []stepFile, ps *problems) *Expr {
	e, err := compilePipelineExpr(src)
	if err != nil {
		ps.at(path, "%v", err)
		return nil
	}
	known := map[string]bool{}
	for _, s := range earlier {
		known[s.Name] = true
	}
	for _, name := range e.StepsRead {
		if !known[name] {
			if len(earlier) == 0 {
				ps.at(path, "reads steps[%q], but no step runs before this one", name)
			} else {
				ps.at(path, "reads steps[%q], which is not a step before this one", name)
			}
		}
	}
	return e
}

func compilePipelineExpr(src string) (*Expr, error) {
	env, err := pipelineCELEnv()
	if err != nil {
		return nil, err
	}
	ast, iss := env.Compile(src)
	if iss.Err() != nil {
		return nil, fmt.Errorf("invalid expression %q: %v", src, iss.Err())
	}
	out := ast.OutputType()
	if !out.IsExactType(cel.DynType) && out.Kind() != types.MapKind {
		return nil, fmt.Errorf("expression %q has type %s, want a map (a JSON object such as {\"image_url\": body.image_url})", src, out)
	}
	prg, err := env.Program(ast, cel.EvalOptions(cel.OptOptimize))
	if err != nil {
		return nil, fmt.Errorf("expression %q: %v", src, err)
	}
	e := &Expr{Source: src, Program: prg}
	e.BodyPaths, e.WholeBody, e.UsesBody = fieldPaths(ast.NativeRep(), VarBody)
	steps, _, usesSteps := fieldPaths(ast.NativeRep(), VarSteps)
	e.UsesSteps = usesSteps
	seen := map[string]bool{}
	for _, p := range steps {
		if !seen[p[0]] {
			seen[p[0]] = true
			e.StepsRead = append(e.StepsRead, p[0])
		}
	}
	return e, nil
}
