package extproc

import (
	"strings"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/switchyard/switchyard/internal/contract"
	"github.com/switchyard/switchyard/internal/decisions"
	"github.com/switchyard/switchyard/internal/policy"
)

// attribute reads an attribute Envoy sent with the message.
func attribute(req *extprocv3.ProcessingRequest, key string) string {
	s := req.GetAttributes()[contract.ExtProcFilterName]
	if s == nil {
		return ""
	}
	return s.GetFields()[key].GetStringValue()
}

// headerMap turns Envoy's header list into lower-case name → first value.
// Envoy sends values as raw bytes.
func headerMap(hm *corev3.HeaderMap) map[string]string {
	out := make(map[string]string, len(hm.GetHeaders()))
	for _, h := range hm.GetHeaders() {
		k := strings.ToLower(h.GetKey())
		if _, dup := out[k]; !dup {
			out[k] = value(h)
		}
	}
	return out
}

func headerValue(hm *corev3.HeaderMap, name string) (string, bool) {
	for _, h := range hm.GetHeaders() {
		if strings.EqualFold(h.GetKey(), name) {
			return value(h), true
		}
	}
	return "", false
}

func value(h *corev3.HeaderValue) string {
	if raw := h.GetRawValue(); len(raw) > 0 {
		return string(raw)
	}
	return h.GetValue()
}

func setHeader(k, v string) *corev3.HeaderValueOption {
	return &corev3.HeaderValueOption{
		Header:       &corev3.HeaderValue{Key: k, RawValue: []byte(v)},
		AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
	}
}

// decisionMetadata is the decision's dynamic metadata: the runner list for
// override_host (when there is one), in the endpoint picker protocol's
// namespace and key; and, in switchyard's namespace, the key the request's
// flight awaits its end report under and what the response headers tell
// the client.
func decisionMetadata(d policy.Decision, awaits, list string, rec recordOut) *structpb.Struct {
	own := map[string]*structpb.Value{
		contract.MetaFlight:  structpb.NewStringValue(awaits),
		contract.MetaOutcome: structpb.NewStringValue(string(d.Outcome)),
	}
	if d.Variant != "" {
		own[contract.MetaVariant] = structpb.NewStringValue(d.Variant)
	}
	if rec.explain != "" {
		own[contract.MetaExplain] = structpb.NewStringValue(rec.explain)
	}
	if rec.log != nil {
		own[contract.MetaDecision] = recordValue(rec.log)
	}
	md := &structpb.Struct{Fields: map[string]*structpb.Value{
		contract.MetadataNamespace: structpb.NewStructValue(&structpb.Struct{Fields: own}),
	}}
	if list != "" {
		md.Fields[contract.LBNamespace] = structpb.NewStructValue(&structpb.Struct{Fields: map[string]*structpb.Value{
			contract.EndpointKey: structpb.NewStringValue(list),
		}})
	}
	return md
}

// recordOut is what of a decision record goes to Envoy: the explain
// header's value, and the record for the access log.
type recordOut struct {
	explain string
	log     *decisions.Record
}

// recordValue is r (but its end: Envoy's own fields of the line say how
// the request ended) as a metadata value, which Envoy's JSON access log
// writes as a nested object with the record's JSON names. Built field by
// field: a JSON round trip costs twice the whole decision.
func recordValue(r *decisions.Record) *structpb.Value {
	f := map[string]*structpb.Value{
		"id":        structpb.NewNumberValue(float64(r.ID)),
		"time":      structpb.NewStringValue(r.Time.UTC().Format(time.RFC3339Nano)),
		"route":     structpb.NewStringValue(r.Route),
		"rule":      structpb.NewNumberValue(float64(r.Rule)),
		"pool":      structpb.NewStringValue(r.Pool),
		"outcome":   structpb.NewStringValue(r.Outcome),
		"policy":    structpb.NewStringValue(r.Policy),
		"body":      structpb.NewStringValue(r.Body),
		"decide_ms": millis(r.Decide),
	}
	str := func(k, v string) {
		if v != "" {
			f[k] = structpb.NewStringValue(v)
		}
	}
	str("when", r.When)
	str("variant", r.Variant)
	str("hint", r.Hint)
	str("hint_source", r.HintSource)
	if len(r.Fallback) > 0 {
		l := make([]*structpb.Value, len(r.Fallback))
		for i, p := range r.Fallback {
			l[i] = structpb.NewStringValue(p)
		}
		f["fallback"] = structpb.NewListValue(&structpb.ListValue{Values: l})
	}
	if r.Queued {
		f["queued"] = structpb.NewBoolValue(true)
	}
	if r.Cost != 0 {
		f["cost"] = structpb.NewNumberValue(r.Cost)
	}
	if r.HintAge != 0 {
		f["hint_age_ms"] = millis(r.HintAge)
	}
	if r.Chosen != nil {
		f["chosen"] = candidateValue(r.Chosen)
	}
	if r.RunnerUp != nil {
		f["runner_up"] = candidateValue(r.RunnerUp)
	}
	return structpb.NewStructValue(&structpb.Struct{Fields: f})
}

func candidateValue(c *decisions.Candidate) *structpb.Value {
	f := map[string]*structpb.Value{
		"runner":    structpb.NewStringValue(c.Runner),
		"in_flight": structpb.NewNumberValue(float64(c.InFlight)),
		"warm":      structpb.NewBoolValue(c.Warm),
		"busy":      structpb.NewBoolValue(c.Busy),
		"why":       structpb.NewStringValue(c.Why),
	}
	if c.Wait != 0 {
		f["wait_ms"] = millis(c.Wait)
	}
	if c.Predicted != 0 {
		f["predicted_ms"] = millis(c.Predicted)
	}
	return structpb.NewStructValue(&structpb.Struct{Fields: f})
}

// millis is a duration as the record's JSON writes it.
func millis(m decisions.Millis) *structpb.Value {
	return structpb.NewNumberValue(float64(m.Std().Microseconds()) / 1000)
}

// immediate answers the client directly with a JSON error.
func immediate(status int, code, msg string) *extprocv3.ProcessingResponse {
	body := contract.ErrorBody(code, msg)
	return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ImmediateResponse{ImmediateResponse: &extprocv3.ImmediateResponse{
		Status: &typev3.HttpStatus{Code: typev3.StatusCode(status)},
		Headers: &extprocv3.HeaderMutation{SetHeaders: []*corev3.HeaderValueOption{
			setHeader("content-type", "application/json"),
		}},
		Body:    body,
		Details: "switchyard_" + code,
	}}}
}
