package pipeline

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/cel-go/common/types/ref"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/switchyard/switchyard/internal/bodyfields"
	"github.com/switchyard/switchyard/internal/config"
	"github.com/switchyard/switchyard/internal/contract"
)

// Options configure an Executor.
type Options struct {
	// Config is the current config (hot-reloaded).
	Config func() *config.Config
	// Client sends the steps; nil builds one (no proxy, no redirects).
	Client  *http.Client
	Log     *slog.Logger
	Metrics *Metrics // nil counts nothing
}

// Executor runs pipelines: an http.Handler for Envoy's pipeline routes.
type Executor struct {
	o Options
}

// New returns an Executor.
func New(o Options) *Executor {
	if o.Client == nil {
		o.Client = NewClient()
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	return &Executor{o: o}
}

// NewClient is the client steps are sent with: straight to the edge (no
// proxy from the environment), never following a redirect (a step's 3xx is
// its answer, and a failure; a redirect could send the step's input
// anywhere). The edge's TLS certificate is not checked: the address is the
// one Envoy said the client reached, in a header only Envoy can set.
func NewClient() *http.Client {
	return &http.Client{
		Transport: &http.Transport{
			Proxy:                 nil,
			DialContext:           (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
			MaxIdleConns:          256,
			MaxIdleConnsPerHost:   64,
			IdleConnTimeout:       90 * time.Second,
			TLSHandshakeTimeout:   5 * time.Second,
			TLSClientConfig:       &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // see above
			ExpectContinueTimeout: time.Second,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// Failure is the JSON error of a pipeline that did not finish.
type Failure struct {
	Error   string `json:"error"`
	Step    string `json:"step,omitempty"`
	Status  int    `json:"status,omitempty"` // the step's status, when it answered
	Message string `json:"message"`

	code int // the pipeline's own status
}

// Errors a pipeline answers with.
const (
	ErrStepFailed   = "step_failed"      // 502: a step answered non-2xx, not a JSON object, too much, or not at all
	ErrTimeout      = "pipeline_timeout" // 504: over pipeline.timeout
	ErrInputFailed  = "input_failed"     // 400 (from the request) or 502 (from a step's output): an input could not be built
	ErrOutputFailed = "output_failed"    // 502: the output could not be built
	ErrInvalidBody  = "invalid_body"     // 400: the request body is not JSON
	ErrBodyTooLarge = "body_too_large"   // 413
	ErrLoop         = "pipeline_loop"    // 508: a step's request reached a pipeline
	ErrUnknown      = "unknown_pipeline" // 404: no such pipeline route (a config change raced the request)
	ErrBadEdge      = "bad_edge"         // 400: not sent by one of the config's listeners
)

// stepRecord is where a step went, for the x-switchyard-pipeline header.
type stepRecord struct{ name, pool, runner string }

func (s stepRecord) String() string {
	if s.pool == "" && s.runner == "" {
		return s.name + "=-"
	}
	return s.name + "=" + s.pool + "@" + s.runner
}

// run is one pipeline request in progress.
type run struct {
	e      *Executor
	cfg    *config.Config
	route  *config.Route
	edge   string
	header http.Header // forwarded to every step
	act    map[string]any
	steps  map[string]any
	done   []stepRecord
}

func (e *Executor) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	cfg := e.o.Config()
	routeName := r.Header.Get(contract.HeaderPipelineRoute)
	out, recs, f := e.serve(r, cfg, routeName)
	if f != nil && f.code == 0 {
		return // the client went away: nobody to answer
	}
	if cfg.Responses.DecisionHeaders && len(recs) > 0 {
		parts := make([]string, len(recs))
		for i, s := range recs {
			parts[i] = s.String()
		}
		w.Header().Set(contract.HeaderPipeline, strings.Join(parts, ","))
	}
	w.Header().Set("Content-Type", "application/json")
	outcome := "ok"
	if f != nil {
		outcome = f.Error
		out, _ = json.Marshal(f)
		w.WriteHeader(f.code)
		e.o.Log.Warn("pipeline failed", "route", routeName, "error", f.Error, "step", f.Step, "status", f.Status, "message", f.Message)
	}
	_, _ = w.Write(out)
	if m := e.o.Metrics; m != nil {
		if _, ok := cfg.Route(routeName); !ok {
			routeName = "" // label values come from the config only
		}
		m.runs.WithLabelValues(routeName, outcome).Inc()
		if f == nil {
			m.duration.WithLabelValues(routeName).Observe(time.Since(start).Seconds())
		}
	}
}

func fail(code int, kind, step, format string, args ...any) *Failure {
	return &Failure{Error: kind, Step: step, Message: fmt.Sprintf(format, args...), code: code}
}

// serve runs the pipeline; a nil Failure is success (out is the answer).
func (e *Executor) serve(r *http.Request, cfg *config.Config, routeName string) ([]byte, []stepRecord, *Failure) {
	if v := r.Header.Get(contract.HeaderPipelineStep); v != "" {
		return nil, nil, fail(http.StatusLoopDetected, ErrLoop, "", "a pipeline step (%s) reached a pipeline route: steps never run pipelines", v)
	}
	route, ok := cfg.Route(routeName)
	if !ok || route.Pipeline == nil {
		return nil, nil, fail(http.StatusNotFound, ErrUnknown, "", "no pipeline route %q", routeName)
	}
	edge, err := checkEdge(cfg, route, r.Header.Get(contract.HeaderPipelineEdge))
	if err != nil {
		return nil, nil, fail(http.StatusBadRequest, ErrBadEdge, "", "%v", err)
	}
	p := route.Pipeline
	ctx, cancel := context.WithTimeout(r.Context(), p.Timeout.Std())
	defer cancel()

	raw, err := io.ReadAll(io.LimitReader(r.Body, int64(cfg.Server.MaxBodyBytes)+1))
	switch {
	case err != nil:
		return nil, nil, e.cut(r, ctx, p, "", err)
	case len(raw) > cfg.Server.MaxBodyBytes:
		return nil, nil, fail(http.StatusRequestEntityTooLarge, ErrBodyTooLarge, "", "%s", bodyfields.TooLargeMessage(cfg.Server.MaxBodyBytes))
	}
	body, err := decodeJSON(raw)
	if err != nil {
		return nil, nil, fail(http.StatusBadRequest, ErrInvalidBody, "", "the request body must be JSON: %v", err)
	}
	x := &run{e: e, cfg: cfg, route: route, edge: edge, header: forwarded(cfg, r.Header), steps: map[string]any{}}
	x.act = map[string]any{
		config.VarBody:    body,
		config.VarHeaders: headerMap(r.Header),
		config.VarPath:    r.URL.Path,
		config.VarMethod:  r.Method,
		config.VarSteps:   x.steps,
	}
	var last map[string]any
	for _, s := range p.Steps {
		out, f := x.step(ctx, r, s)
		if f != nil {
			return nil, x.done, f
		}
		x.steps[s.Name] = out
		last = out
	}
	if p.Output == nil {
		b, err := json.Marshal(last)
		if err != nil {
			return nil, x.done, fail(http.StatusBadGateway, ErrOutputFailed, "", "%v", err)
		}
		return b, x.done, nil
	}
	v, err := evalJSON(p.Output, x.act, false)
	if err != nil {
		return nil, x.done, fail(http.StatusBadGateway, ErrOutputFailed, "", "output %s: %v", p.Output.Source, err)
	}
	return v, x.done, nil
}

// step sends one step through the edge and reads its JSON answer.
func (x *run) step(ctx context.Context, client *http.Request, s config.Step) (map[string]any, *Failure) {
	maxBody := x.cfg.Server.MaxBodyBytes
	// An input built from the request alone fails on the client's body
	// (400); one that reads earlier outputs fails on what a step answered.
	inputCode := http.StatusBadRequest
	if s.Input.UsesSteps {
		inputCode = http.StatusBadGateway
	}
	in, err := evalJSON(s.Input, x.act, true)
	if err != nil {
		return nil, fail(inputCode, ErrInputFailed, s.Name, "input %s: %v", s.Input.Source, err)
	}
	if len(in) > maxBody {
		return nil, fail(inputCode, ErrInputFailed, s.Name, "input is %d bytes, over server.max_body_bytes (%d)", len(in), maxBody)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, x.edge+s.Path, bytes.NewReader(in))
	if err != nil {
		return nil, fail(http.StatusBadGateway, ErrStepFailed, s.Name, "%v", err)
	}
	for k, vs := range x.header {
		req.Header[k] = vs
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(contract.HeaderPipelineStep, x.route.Name+"/"+s.Name)
	resp, err := x.e.o.Client.Do(req)
	if err != nil {
		return nil, x.e.cut(client, ctx, x.route.Pipeline, s.Name, err)
	}
	defer resp.Body.Close()
	rec := stepRecord{name: s.Name, pool: resp.Header.Get(contract.HeaderPool), runner: resp.Header.Get(contract.HeaderRunner)}
	x.done = append(x.done, rec)
	raw, err := io.ReadAll(io.LimitReader(resp.Body, int64(maxBody)+1))
	if err != nil {
		return nil, x.e.cut(client, ctx, x.route.Pipeline, s.Name, err)
	}
	stepFail := func(format string, args ...any) *Failure {
		f := fail(http.StatusBadGateway, ErrStepFailed, s.Name, format, args...)
		f.Status = resp.StatusCode
		return f
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil, stepFail("%s", answerMessage(raw))
	}
	if len(raw) > maxBody {
		return nil, stepFail("answer over %d bytes (server.max_body_bytes)", maxBody)
	}
	v, err := decodeJSON(raw)
	out, ok := v.(map[string]any)
	if err != nil || !ok {
		return nil, stepFail("the answer is not a JSON object: %.200q", raw)
	}
	return out, nil
}

// cut explains a request or step that ended early: the pipeline's time ran
// out (504), the client went away (no answer: code 0), or the step could
// not be sent or read (502).
func (e *Executor) cut(client *http.Request, ctx context.Context, p *config.Pipeline, step string, err error) *Failure {
	switch {
	case client.Context().Err() != nil:
		return &Failure{Error: "client_gone", Step: step}
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		msg := "the pipeline took longer than its timeout (%v)"
		if step != "" {
			msg += " during step " + step
		}
		return fail(http.StatusGatewayTimeout, ErrTimeout, step, msg, p.Timeout.Std())
	}
	return fail(http.StatusBadGateway, ErrStepFailed, step, "%v", err)
}

// answerMessage is what a failed step said: its JSON error and message,
// or the start of its text.
func answerMessage(raw []byte) string {
	var m struct {
		Error   any    `json:"error"`
		Message string `json:"message"`
	}
	if json.Unmarshal(raw, &m) == nil && m.Error != nil {
		s := fmt.Sprint(m.Error)
		if m.Message != "" {
			s += ": " + m.Message
		}
		return s
	}
	s := strings.TrimSpace(string(raw))
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}

// checkEdge accepts the listener URL Envoy sent only if it is one of the
// route's listeners (by port, and by address unless the listener is bound
// to every address): a caller of the pipelines port cannot point the
// steps elsewhere.
func checkEdge(cfg *config.Config, route *config.Route, edge string) (string, error) {
	u, err := url.Parse(edge)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Path != "" {
		return "", fmt.Errorf("%s %q is not a listener URL", contract.HeaderPipelineEdge, edge)
	}
	ap, err := netip.ParseAddrPort(u.Host)
	if err != nil {
		return "", fmt.Errorf("%s %q: %v", contract.HeaderPipelineEdge, edge, err)
	}
	for _, l := range cfg.Listeners {
		if !slices.Contains(route.Listeners, l.Name) || l.Port != int(ap.Port()) || (l.TLS != nil) != (u.Scheme == "https") {
			continue
		}
		la, err := netip.ParseAddr(l.Address)
		if err == nil && (la.IsUnspecified() || la.Unmap() == ap.Addr().Unmap()) {
			return u.Scheme + "://" + u.Host, nil
		}
	}
	return "", fmt.Errorf("%s %q is not a listener of route %q", contract.HeaderPipelineEdge, edge, route.Name)
}

// notForwarded are request headers a step does not inherit: hop-by-hop and
// body headers, Envoy's own (a step gets fresh ones), the reserved ones
// (stripped anyway), and the hint headers: a hint names a model a runner
// holds, and a pipeline's steps run different models; a step's route
// derives its own hint (hint_from) from the step's input.
func forwarded(cfg *config.Config, in http.Header) http.Header {
	skip := map[string]bool{"connection": true, "keep-alive": true, "proxy-connection": true, "te": true, "trailer": true,
		"transfer-encoding": true, "upgrade": true, "host": true, "content-length": true, "content-type": true,
		"content-encoding": true, "accept-encoding": true, "expect": true, "x-request-id": true}
	for _, h := range cfg.Hints.RequestHeaders {
		skip[strings.ToLower(h)] = true
	}
	out := http.Header{}
	for k, vs := range in {
		lk := strings.ToLower(k)
		if skip[lk] || contract.Reserved(lk) || strings.HasPrefix(lk, "x-envoy-") || strings.HasPrefix(lk, "x-forwarded-") {
			continue
		}
		out[k] = vs
	}
	return out
}

// headerMap is the request's headers as rules see them: lower-case names,
// the first value; switchyard's own are left out.
func headerMap(h http.Header) map[string]string {
	out := make(map[string]string, len(h))
	for k, vs := range h {
		lk := strings.ToLower(k)
		if len(vs) > 0 && !contract.Reserved(lk) {
			out[lk] = vs[0]
		}
	}
	return out
}

// decodeJSON decodes one JSON value as rules see bodies: integers are
// int64 (CEL int), other numbers float64 (CEL double).
func decodeJSON(raw []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("trailing data after the JSON value")
	}
	return numbers(v), nil
}

func numbers(v any) any {
	switch t := v.(type) {
	case json.Number:
		if i, err := strconv.ParseInt(string(t), 10, 64); err == nil {
			return i
		}
		f, _ := t.Float64()
		return f
	case map[string]any:
		for k, x := range t {
			t[k] = numbers(x)
		}
	case []any:
		for i, x := range t {
			t[i] = numbers(x)
		}
	}
	return v
}

var (
	structType = reflect.TypeFor[*structpb.Struct]()
	valueType  = reflect.TypeFor[*structpb.Value]()
)

// evalJSON evaluates e and encodes its result as JSON; object requires a
// JSON object (a step's input).
func evalJSON(e *config.Expr, act map[string]any, object bool) ([]byte, error) {
	v, _, err := e.Program.Eval(act)
	if err != nil {
		return nil, err
	}
	return toJSON(v, object)
}

func toJSON(v ref.Val, object bool) ([]byte, error) {
	if object {
		s, err := v.ConvertToNative(structType)
		if err != nil {
			return nil, fmt.Errorf("the result is not a JSON object (%s): %v", v.Type().TypeName(), err)
		}
		return protojson.Marshal(s.(*structpb.Struct))
	}
	s, err := v.ConvertToNative(valueType)
	if err != nil {
		return nil, fmt.Errorf("the result cannot be JSON (%s): %v", v.Type().TypeName(), err)
	}
	return protojson.Marshal(s.(*structpb.Value))
}

// Metrics count pipeline runs.
type Metrics struct {
	runs     *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

// NewMetrics registers the pipeline metrics on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchyard_pipeline_runs_total",
			Help: "Pipeline requests run, by route and outcome (ok, or the JSON error: step_failed, pipeline_timeout, input_failed, output_failed, invalid_body, body_too_large, pipeline_loop, unknown_pipeline, bad_edge).",
		}, []string{"route", "outcome"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "switchyard_pipeline_duration_seconds",
			Help:    "Time to run a pipeline that succeeded, every step included, by route.",
			Buckets: prometheus.ExponentialBuckets(0.05, 2, 14),
		}, []string{"route"}),
	}
	reg.MustRegister(m.runs, m.duration)
	return m
}
