package extproc

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	filterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"

	"github.com/switchyard/switchyard/internal/affinity"
	"github.com/switchyard/switchyard/internal/config"
	"github.com/switchyard/switchyard/internal/policy"
	"github.com/switchyard/switchyard/xds/translate"
)

// Decision headers sent back to clients.
const (
	HeaderPool    = "x-switchyard-pool"
	HeaderRunner  = "x-switchyard-runner"
	HeaderVariant = "x-switchyard-variant"
	HeaderHint    = "x-switchyard-hint"
)

// attribute keys Envoy fills in (see the filter's request_attributes and
// response_attributes in package translate).
const (
	attrRouteName       = translate.RouteNameAttribute
	attrUpstreamAddress = "upstream.address"
	filterName          = "envoy.filters.http.ext_proc"
)

// exchange is the state of one request's stream.
type exchange struct {
	s        *Server
	cfg      *config.Config
	route    *config.Route
	req      policy.Request
	decision *policy.Decision
	job      *affinity.Job // the request on its runner, until finish
	// decidedAt and primaryFree let a response teach the cost estimates:
	// only requests that did not queue at their runner measure its costs.
	decidedAt   time.Time
	primaryFree bool
}

func (x *exchange) handle(req *extprocv3.ProcessingRequest) *extprocv3.ProcessingResponse {
	switch r := req.GetRequest().(type) {
	case *extprocv3.ProcessingRequest_RequestHeaders:
		return x.requestHeaders(req, r.RequestHeaders)
	case *extprocv3.ProcessingRequest_RequestBody:
		return x.requestBody(r.RequestBody)
	case *extprocv3.ProcessingRequest_ResponseHeaders:
		return x.responseHeaders(req, r.ResponseHeaders)
	case *extprocv3.ProcessingRequest_ResponseBody:
		return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ResponseBody{ResponseBody: &extprocv3.BodyResponse{}}}
	case *extprocv3.ProcessingRequest_RequestTrailers:
		return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_RequestTrailers{RequestTrailers: &extprocv3.TrailersResponse{}}}
	case *extprocv3.ProcessingRequest_ResponseTrailers:
		return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ResponseTrailers{ResponseTrailers: &extprocv3.TrailersResponse{}}}
	}
	return nil
}

func (x *exchange) requestHeaders(req *extprocv3.ProcessingRequest, h *extprocv3.HttpHeaders) *extprocv3.ProcessingResponse {
	cont := func() *extprocv3.ProcessingResponse {
		return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_RequestHeaders{RequestHeaders: &extprocv3.HeadersResponse{}}}
	}
	if x.cfg == nil {
		return cont()
	}
	name := attribute(req, attrRouteName)
	route, ok := x.cfg.Route(name)
	if !ok {
		// Not one of ours (or a config change raced the request): Envoy's
		// route decides, as when switchyard is down.
		x.s.o.Metrics.undecided.Inc()
		return cont()
	}
	x.route = route
	x.req = policy.Request{Headers: headerMap(h.GetHeaders())}
	x.req.Method = x.req.Headers[":method"]
	// Rules see the path without its query string, as routes match it.
	x.req.Path, _, _ = strings.Cut(x.req.Headers[":path"], "?")
	needsBody := route.NeedsBody()
	if cl, ok := headerValue(h.GetHeaders(), "content-length"); ok && needsBody && tooLarge(cl, x.cfg.Server.MaxBodyBytes) {
		x.s.o.Metrics.rejected.Inc()
		return immediate(http.StatusRequestEntityTooLarge, "body_too_large",
			"request body over "+strconv.Itoa(x.cfg.Server.MaxBodyBytes)+" bytes (server.max_body_bytes)")
	}
	if needsBody && !h.GetEndOfStream() {
		// Ask for the whole body; the decision is made when it arrives.
		return &extprocv3.ProcessingResponse{
			Response:     &extprocv3.ProcessingResponse_RequestHeaders{RequestHeaders: &extprocv3.HeadersResponse{}},
			ModeOverride: &filterv3.ProcessingMode{RequestBodyMode: filterv3.ProcessingMode_BUFFERED},
		}
	}
	if needsBody {
		x.req.BodyErr = errNoBody
	}
	return x.decide(func(common *extprocv3.CommonResponse) *extprocv3.ProcessingResponse {
		return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_RequestHeaders{RequestHeaders: &extprocv3.HeadersResponse{Response: common}}}
	})
}

var errNoBody = errors.New("request has no body")

func tooLarge(contentLength string, limit int) bool {
	n, err := strconv.ParseInt(strings.TrimSpace(contentLength), 10, 64)
	return err == nil && n > int64(limit)
}

func (x *exchange) requestBody(b *extprocv3.HttpBody) *extprocv3.ProcessingResponse {
	if x.route == nil {
		return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_RequestBody{RequestBody: &extprocv3.BodyResponse{}}}
	}
	x.req.Body, x.req.BodyErr = x.s.fields.get(x.cfg, x.route).Extract(b.GetBody())
	return x.decide(func(common *extprocv3.CommonResponse) *extprocv3.ProcessingResponse {
		return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_RequestBody{RequestBody: &extprocv3.BodyResponse{Response: common}}}
	})
}

// decide runs the policy and turns the decision into the routing header,
// a route cache refresh and the runner list for override_host.
func (x *exchange) decide(wrap func(*extprocv3.CommonResponse) *extprocv3.ProcessingResponse) *extprocv3.ProcessingResponse {
	d, err := x.s.o.Decider.Decide(x.cfg, x.route, x.req)
	if err != nil {
		x.s.o.Metrics.rejected.Inc()
		return immediate(http.StatusBadRequest, "invalid_body", err.Error()+": this route reads fields of a JSON object body")
	}
	x.decision = &d
	x.s.o.Metrics.decisions.WithLabelValues(string(d.Outcome)).Inc()
	if d.Queued {
		x.s.o.Metrics.queued.Inc()
	}
	if len(d.Runners) > 0 {
		if p, ok := x.cfg.Pool(d.Target.Pool); ok {
			x.primaryFree = d.Runners[0].InFlight() < int64(p.MaxConcurrency)
		}
		x.job = d.Begin()
		x.decidedAt = time.Now()
	}
	resp := wrap(&extprocv3.CommonResponse{
		HeaderMutation: &extprocv3.HeaderMutation{SetHeaders: []*corev3.HeaderValueOption{
			setHeader(translate.PoolHeader, d.Target.Name()),
		}},
		ClearRouteCache: true,
	})
	list := endpointList(d)
	if list != "" {
		resp.DynamicMetadata = endpointMetadata(list)
	}
	x.s.o.Log.Debug("decision", "route", d.Route, "target", d.Target.Name(), "variant", d.Variant,
		"hint", d.Hint, "outcome", d.Outcome, "runners", list)
	return resp
}

// endpointList is the runner list for override_host. Envoy reads it with
// one cursor across attempts, each attempt taking the next entry that is
// in its cluster; so with fallback pools it holds exactly one entry per
// attempt of the target's composite cluster: the pool's first
// translate.PrimaryAttempts runners (repeated when the pool has fewer),
// then one runner per fallback pool.
func endpointList(d policy.Decision) string {
	var addrs []string
	if len(d.Target.Fallback) == 0 {
		for _, r := range d.Runners {
			addrs = append(addrs, r.Address)
		}
		return strings.Join(addrs, ",")
	}
	if len(d.Runners) > 0 {
		for i := range translate.PrimaryAttempts {
			addrs = append(addrs, d.Runners[min(i, len(d.Runners)-1)].Address)
		}
	}
	for _, r := range d.Fallbacks {
		if r == nil {
			break // an empty pool: Envoy's least_request picks from here on
		}
		addrs = append(addrs, r.Address)
	}
	return strings.Join(addrs, ",")
}

// responseHeaders learns the serving runner's hints and tells the client
// what was decided.
func (x *exchange) responseHeaders(req *extprocv3.ProcessingRequest, h *extprocv3.HttpHeaders) *extprocv3.ProcessingResponse {
	mut := &extprocv3.HeaderMutation{}
	resp := &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ResponseHeaders{ResponseHeaders: &extprocv3.HeadersResponse{
		Response: &extprocv3.CommonResponse{HeaderMutation: mut},
	}}}
	if x.cfg == nil {
		return resp
	}
	served := attribute(req, attrUpstreamAddress)
	x.observeCost(served, h.GetHeaders())
	hintsHeader := x.cfg.Hints.ResponseHeader
	value, present := headerValue(h.GetHeaders(), hintsHeader)
	if served != "" {
		x.s.o.Hints.Report(served, value, present)
	}
	// A response with a known length (or none) ends with its headers as far
	// as the runner's work goes: free its slot now, before the client can
	// send its next request. A streamed response keeps it until the end.
	// The runner's report comes first: a pick between the two would see
	// neither the request's model on its way nor the runner holding it.
	if h.GetEndOfStream() || hasHeader(h.GetHeaders(), "content-length") {
		x.finish()
	}
	if present && !x.cfg.Responses.RunnerHints {
		mut.RemoveHeaders = append(mut.RemoveHeaders, hintsHeader)
	}
	if x.decision == nil || !x.cfg.Responses.DecisionHeaders {
		return resp
	}
	d := x.decision
	// Only an answer from a runner names the pool and runner that served it;
	// Envoy's own replies (no runner reachable) carry no upstream timing.
	if served != "" && hasHeader(h.GetHeaders(), "x-envoy-upstream-service-time") {
		mut.SetHeaders = append(mut.SetHeaders, setHeader(HeaderPool, x.servingPool(served)), setHeader(HeaderRunner, served))
	}
	mut.SetHeaders = append(mut.SetHeaders, setHeader(HeaderHint, string(d.Outcome)))
	if d.Variant != "" {
		mut.SetHeaders = append(mut.SetHeaders, setHeader(HeaderVariant, d.Variant))
	}
	return resp
}

// observeCost feeds the pool's cost estimate with this request, when it
// went to the runner chosen for it, which was free, and succeeded.
func (x *exchange) observeCost(served string, hm *corev3.HeaderMap) {
	d := x.decision
	if x.s.o.Costs == nil || d == nil || d.Hint == "" || !x.primaryFree || len(d.Runners) == 0 || served != d.Runners[0].Address {
		return
	}
	if status, _ := headerValue(hm, ":status"); !strings.HasPrefix(status, "2") {
		return
	}
	x.s.o.Costs.Observe(d.Target.Pool, d.Outcome == affinity.OutcomeHit, time.Since(x.decidedAt))
}

// servingPool is the pool of the target whose runner served the request:
// the chosen pool, or a fallback.
func (x *exchange) servingPool(addr string) string {
	t := x.decision.Target
	for _, p := range append([]string{t.Pool}, t.Fallback...) {
		if _, ok := x.s.o.Runners.Runner(p, addr); ok {
			return p
		}
	}
	return t.Pool
}

// finish gives back the in-flight count, however the stream ended.
func (x *exchange) finish() {
	x.job.Done()
	x.job = nil
}
