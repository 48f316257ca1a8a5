package extproc

import (
	"net/http"
	"strings"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	filterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"

	"github.com/switchyard/switchyard/internal/bodyfields"
	"github.com/switchyard/switchyard/internal/config"
	"github.com/switchyard/switchyard/internal/contract"
	"github.com/switchyard/switchyard/internal/decisions"
	"github.com/switchyard/switchyard/internal/policy"
)

// exchange is the state of one request's stream.
type exchange struct {
	s     *Server
	cfg   *config.Config
	route *config.Route
	req   policy.Request
	// awaits is the key the decided request's flight awaits its end
	// report under, once the decision is made; the exchange is over then.
	awaits string
	// start is when the message being handled arrived; spent is the time
	// the exchange's earlier messages took (the headers, on the buffered
	// path): the decision record's time spent deciding.
	start time.Time
	spent time.Duration
	// explain says the client asked for the decision record and the
	// config allows it.
	explain bool
	// bodyPath is how the body's fields were read, for the record.
	bodyPath string
	// begun is when the request's headers arrived, and rec its decision
	// record (nil when nothing asks for one): the decision's span.
	begun time.Time
	rec   *decisions.Record
}

func (x *exchange) handle(req *extprocv3.ProcessingRequest) *extprocv3.ProcessingResponse {
	x.start = time.Now()
	switch r := req.GetRequest().(type) {
	case *extprocv3.ProcessingRequest_RequestHeaders:
		return x.requestHeaders(req, r.RequestHeaders)
	case *extprocv3.ProcessingRequest_RequestBody:
		return x.requestBody(r.RequestBody)
	case *extprocv3.ProcessingRequest_ResponseHeaders:
		// Not asked for: a request's end and its runner's report come
		// through the access log, off the request path.
		return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ResponseHeaders{ResponseHeaders: &extprocv3.HeadersResponse{}}}
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
	name := attribute(req, contract.AttrRouteName)
	route, ok := x.cfg.Route(name)
	if !ok {
		// Not one of ours (or a config change raced the request): Envoy's
		// route decides, as when switchyard is down.
		x.s.o.Metrics.undecided.Inc()
		return cont()
	}
	x.route = route
	x.begun = x.start
	x.req = policy.Request{Headers: headerMap(h.GetHeaders())}
	x.req.Method = x.req.Headers[":method"]
	// Rules see the path without its query string, as routes match it.
	x.req.Path, _, _ = strings.Cut(x.req.Headers[":path"], "?")
	x.explain = x.cfg.Responses.Explain && x.req.Headers[contract.HeaderExplain] != ""
	x.bodyPath = decisions.BodyNone
	needsBody := route.NeedsBody()
	if cl, ok := headerValue(h.GetHeaders(), "content-length"); ok && needsBody && bodyfields.OverLimit(cl, x.cfg.Server.MaxBodyBytes) {
		x.s.o.Metrics.rejected.Inc()
		return immediate(http.StatusRequestEntityTooLarge, "body_too_large",
			bodyfields.TooLargeMessage(x.cfg.Server.MaxBodyBytes))
	}
	if needsBody && !h.GetEndOfStream() && route.BodyPath() == config.BodyMetadata {
		// Envoy read the fields the rules need from the body, which it
		// holds: decide on them now. When it could not, fall through and
		// read the body here, as the buffered path does.
		if body, ok := bodyFromMetadata(req.GetMetadataContext(), route.BodyFields()); ok {
			x.req.Body = body
			x.bodyPath = decisions.BodyFields
			x.s.o.Metrics.bodyPath.WithLabelValues(decisions.BodyFields).Inc()
			return x.decide(func(common *extprocv3.CommonResponse) *extprocv3.ProcessingResponse {
				return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_RequestHeaders{RequestHeaders: &extprocv3.HeadersResponse{Response: common}}}
			})
		}
	}
	if needsBody && !h.GetEndOfStream() {
		// Ask for the whole body; the decision is made when it arrives.
		x.bodyPath = decisions.BodyWhole
		x.s.o.Metrics.bodyPath.WithLabelValues(decisions.BodyWhole).Inc()
		x.spent = time.Since(x.start)
		x.s.o.Metrics.phase(phaseHeaders, x.spent)
		return &extprocv3.ProcessingResponse{
			Response:     &extprocv3.ProcessingResponse_RequestHeaders{RequestHeaders: &extprocv3.HeadersResponse{}},
			ModeOverride: &filterv3.ProcessingMode{RequestBodyMode: filterv3.ProcessingMode_BUFFERED},
		}
	}
	if needsBody {
		x.req.BodyErr = bodyfields.ErrNoBody
	}
	return x.decide(func(common *extprocv3.CommonResponse) *extprocv3.ProcessingResponse {
		return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_RequestHeaders{RequestHeaders: &extprocv3.HeadersResponse{Response: common}}}
	})
}

// AwaitGrace is how long past its route's timeout a decided request waits
// for the access-log report of its end before it is taken as ended: the
// report may queue in Envoy's log buffer for a moment after the request
// ends, and a report lost for good must not hold a runner's slot for ever.
const AwaitGrace = 30 * time.Second

func (x *exchange) requestBody(b *extprocv3.HttpBody) *extprocv3.ProcessingResponse {
	if x.route == nil {
		return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_RequestBody{RequestBody: &extprocv3.BodyResponse{}}}
	}
	x.req.Body, x.req.BodyErr = x.route.Fields().Extract(b.GetBody())
	return x.decide(func(common *extprocv3.CommonResponse) *extprocv3.ProcessingResponse {
		return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_RequestBody{RequestBody: &extprocv3.BodyResponse{Response: common}}}
	})
}

// decide runs the policy and turns the decision into the routing header,
// a route cache refresh and the runner list for override_host.
func (x *exchange) decide(wrap func(*extprocv3.CommonResponse) *extprocv3.ProcessingResponse) *extprocv3.ProcessingResponse {
	m := x.s.o.Metrics
	policyStart := time.Now()
	d, err := x.s.o.Policy.Decide(x.cfg, x.route, x.req)
	if err != nil {
		m.rejected.Inc()
		return immediate(http.StatusBadRequest, "invalid_body", err.Error()+": this route reads fields of a JSON object body")
	}
	m.decided(d)
	// From here the request counts on its runner until Envoy's access log
	// reports its end (or the wait for it runs out).
	f := x.s.o.Policy.Dispatch(x.cfg, d)
	var rec *decisions.Record
	if x.s.o.Decisions.Len() > 0 || x.explain || x.cfg.Observe.AccessLog != nil || x.s.o.Tracer.Enabled() {
		rec = d.Record(policyStart)
		x.rec = rec
		rec.Body = x.bodyPath
		f.Keep(x.s.o.Decisions, rec)
	}
	x.awaits = x.s.o.Policy.Await(f, x.route.Timeout.Std()+AwaitGrace)
	m.phase(phasePolicy, time.Since(policyStart))
	resp := wrap(&extprocv3.CommonResponse{
		HeaderMutation: &extprocv3.HeaderMutation{SetHeaders: []*corev3.HeaderValueOption{
			setHeader(contract.HeaderPool, d.Target.Name()),
		}},
		ClearRouteCache: true,
	})
	list := d.Endpoints()
	took := time.Since(x.start)
	if rec != nil {
		rec.Decide = decisions.Millis(x.spent + took)
		// The record is complete but for its end: kept from here on,
		// and what Envoy logs or tells the client.
		x.s.o.Decisions.Add(rec)
	}
	resp.DynamicMetadata = decisionMetadata(d, x.awaits, list, x.recordFor(rec))
	m.phase(x.phaseName(), time.Since(x.start))
	x.s.o.Log.Debug("decision", "route", d.Route, "target", d.Target.Name(), "variant", d.Variant,
		"hint", d.Hint, "outcome", d.Outcome, "runners", list)
	return resp
}

// recordFor is what of rec Envoy is handed: the record for its access log
// and, when the client asked, the explain header.
func (x *exchange) recordFor(rec *decisions.Record) recordOut {
	if rec == nil {
		return recordOut{}
	}
	var out recordOut
	if x.explain {
		out.explain = decisions.Header(rec)
	}
	if x.cfg.Observe.AccessLog != nil {
		out.log = rec
	}
	return out
}

// phaseName is the phase the decision was made in.
func (x *exchange) phaseName() string {
	if x.bodyPath == decisions.BodyWhole {
		return phaseBody
	}
	return phaseHeaders
}
