// Package contract holds everything the Envoy configuration that package
// translate generates and the ext_proc server in package extproc must agree
// on: header names, the dynamic-metadata namespace and key of the runner
// list, the attributes Envoy sends with ext_proc messages, the filter name,
// the header prefixes reserved for switchyard, and the attempt budget of a
// request (runner alternatives = route retries).
//
// Where it sits:
//
//	config ─▶ translate ──(xDS)──▶ Envoy ──(ext_proc)──▶ extproc ─▶ policy ─▶ affinity
//	               └──────────── contract ────────────────┘        (and config validation)
//
// It is a leaf: it imports nothing of the project, so every side can import
// it and nothing agrees "by comment". A value changed here changes both ends
// of the wire at once.
package contract

import (
	"encoding/json"
	"strconv"
	"strings"
)

// Headers switchyard sets. HeaderPool carries ext_proc's pool decision to
// Envoy's route matching (and is removed before the request is forwarded);
// all four are sent back to clients as the decision.
const (
	HeaderPool    = "x-switchyard-pool"
	HeaderRunner  = "x-switchyard-runner"
	HeaderVariant = "x-switchyard-variant"
	HeaderHint    = "x-switchyard-hint"
	// HeaderExplain asks for (on a request: any non-empty value) and
	// carries (on the response) the request's decision record, when the
	// config allows it (responses.explain).
	HeaderExplain = "x-switchyard-explain"
)

// Pipelines. Envoy sends a pipeline route's requests to switchyard's
// pipeline executor with HeaderPipelineRoute (the config route) and
// HeaderPipelineEdge (the URL of the listener the request came in on,
// where the steps go); both carry the reserved prefix, so a client cannot
// set them. The executor answers with HeaderPipeline: each step's pool and
// runner. Every step's request carries HeaderPipelineStep
// (pipeline/step): it is not reserved, so it survives the edge, and the
// executor refuses a request that has it (a step never runs a pipeline).
const (
	HeaderPipelineRoute = "x-switchyard-pipeline-route"
	HeaderPipelineEdge  = "x-switchyard-edge"
	HeaderPipeline      = "x-switchyard-pipeline"
	HeaderPipelineStep  = "switchyard-pipeline-step"
)

// The runner list for Envoy's override_host load balancer: an ordered
// "ip:port,ip:port" string in dynamic metadata namespace LBNamespace, key
// EndpointKey (the names of the Gateway API Inference Extension's endpoint
// picker protocol).
const (
	LBNamespace = "envoy.lb"
	EndpointKey = "x-gateway-destination-endpoint"
)

// ExtProcFilterName names the ext_proc filter in the HTTP filter chain, in
// per-route configuration, and as the key of the attributes Envoy sends with
// each ext_proc message.
const ExtProcFilterName = "envoy.filters.http.ext_proc"

// With server.edge_module, switchyard's Envoy dynamic module decides in
// ext_proc's place: ModuleFilterName names it in the HTTP filter chain,
// ModuleFilterConfigName is the filter the module registers, and its
// filter config is a ModuleConfig, JSON-encoded in a StringValue.
const (
	ModuleFilterName       = "switchyard.decide"
	ModuleFilterConfigName = "switchyard"
)

// ErrorBody is the JSON body of switchyard's own answers to a client (a
// 400 for a body a route cannot read, a 413): {"error": code, "message": msg}.
func ErrorBody(code, msg string) []byte {
	b, _ := json.Marshal(map[string]string{"error": code, "message": msg})
	return b
}

// ModuleConfig is what the module is handed: the config file's name (its
// relative paths resolve from there), its text, and each pool's runners
// that take new requests (the static ones and those registered through
// the admin API), sorted.
type ModuleConfig struct {
	File    string              `json:"file"`
	Source  string              `json:"source"`
	Runners map[string][]string `json:"runners"`
}

// Attributes the ext_proc filter is configured to send, and the server reads.
const (
	// AttrRouteName is sent with the request headers: the name of the route
	// Envoy matched, which is the config route's name.
	AttrRouteName = "xds.route_name"
)

// Switchyard's dynamic-metadata namespace on a request. The decision puts
// MetaFlight (the key its flight awaits the end report under), MetaOutcome
// and MetaVariant there for the route's response headers and the access
// log; Envoy's header_to_metadata filter copies the runner's hints header
// into MetaRunnerHints on the way back; the access-log entry of the
// finished request carries all of it back to switchyard.
const (
	MetadataNamespace = "switchyard"
	MetaFlight        = "flight"
	MetaOutcome       = "hint"
	MetaVariant       = "variant"
	MetaRunnerHints   = "runner_hints"
	// MetaExplain holds the decision record for the explain header, when
	// the client asked for it; MetaDecision the record for the access log.
	MetaExplain  = "explain"
	MetaDecision = "decision"
)

// The body fields Envoy's json_to_metadata filter extracts for a route
// whose rules read fixed fields of a JSON body: field i of the route's
// config.Route.BodyFields under key BodyFieldKey(i) in BodyNamespace, sent
// to ext_proc with the request headers. BodyIncomplete is set instead when
// Envoy could not extract a field as it is (missing, null, an array or an
// object, too long) or could not read the body (not JSON, another content
// type): switchyard then asks for the whole body.
const (
	BodyNamespace  = "switchyard.body"
	BodyIncomplete = "incomplete"
)

// BodyFieldKey is the metadata key of a route's body field i.
func BodyFieldKey(i int) string { return strconv.Itoa(i) }

// EndpointPoolKey is the key, in MetadataNamespace of each runner's
// endpoint metadata, of the pool the runner serves: the response header
// HeaderPool is built from it, so it names the pool that served even after a
// fallback.
const EndpointPoolKey = "pool"

// AccessLogName is the log name of the access-log stream Envoy opens to
// switchyard; the stream carries one entry per finished request.
const AccessLogName = "switchyard"

// ReservedHeaderPrefixes are switchyard's: Envoy strips client copies of
// them before any filter or route sees a request, so a client cannot forge
// a decision, and config may not use them as hint or sticky-key headers.
var ReservedHeaderPrefixes = []string{"x-switchyard-", EndpointKey}

// Reserved reports whether the lower-case header name starts with one of
// ReservedHeaderPrefixes.
func Reserved(name string) bool {
	for _, p := range ReservedHeaderPrefixes {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

// The attempt budget of one request.
const (
	// RunnerAlternatives is how many runners of a pool follow the chosen
	// one in the runner list, and equally how many times Envoy retries a
	// request on a pool without fallbacks: each retry takes the next runner
	// of the list.
	RunnerAlternatives = 2
	// RouteRetries is the retry count of a route without fallback pools.
	RouteRetries = RunnerAlternatives
	// PrimaryAttempts is how many runners of the chosen pool a request with
	// fallback pools tries before its first fallback pool: the composite
	// cluster has this many entries for the pool, and the runner list this
	// many runners of it, before one entry per fallback pool.
	PrimaryAttempts = 2
)
