package config

import (
	"crypto/subtle"
	"github.com/switchyard/switchyard/internal/bodyfields"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/switchyard/switchyard/internal/contract"
)

// Defaults applied when the file leaves a field out.
const (
	DefaultGRPC           = "127.0.0.1:18000"
	DefaultAdmin          = "127.0.0.1:18001"
	DefaultRequestHeader  = "x-fal-runner-hint"
	DefaultResponseHeader = "x-fal-runner-hints"
	DefaultMaxConcurrency = 1
	// DefaultRouteTimeout is long because a cold model load plus inference
	// can take minutes; Envoy's own default of 15 s would cut them off.
	DefaultRouteTimeout = 5 * time.Minute
	// DefaultDrainTimeout bounds how long a deregistered runner is kept for
	// its in-flight requests before it is removed anyway.
	DefaultDrainTimeout = 30 * time.Second
	// DefaultMaxBodyBytes bounds a request body buffered for rules that
	// read it. Envoy's buffer limit and switchyard's gRPC message limit
	// both derive from it; a larger body gets 413 from Envoy.
	DefaultMaxBodyBytes = 8 << 20
	MinMaxBodyBytes     = 1 << 10
	MaxMaxBodyBytes     = 64 << 20
)

// HintPolicy says how a pool's runners are ranked for a request with a hint
// (hints.policy).
type HintPolicy string

// Hint policies.
const (
	HintSoonest      HintPolicy = "soonest"       // the runner expected to finish the request first, from the work switchyard has sent each runner
	HintFal          HintPolicy = "fal"           // fal's rule as written: a non-busy runner with the hint, else any non-busy runner
	HintLoadingMarks HintPolicy = "loading_marks" // fal's rule, plus remembering which runner is loading which hint

	// DefaultHintPolicy is the one default: in the routing-quality
	// benchmark soonest has the highest hit rate at every load
	// (BENCHMARKS.md).
	DefaultHintPolicy = HintSoonest
)

// HintPolicies lists every hint policy, the default first.
var HintPolicies = []HintPolicy{HintSoonest, HintFal, HintLoadingMarks}

// OnInvalidBody values.
const (
	InvalidBodyDefault = "default" // evaluate without the body: rules over body do not match
	InvalidBodyReject  = "reject"  // answer 400 with a JSON reason
)

// Config is a validated configuration: every reference resolves, defaults
// are filled in and expressions are compiled. It is immutable once loaded;
// a reload makes a new one.
type Config struct {
	File      string     `json:"file"`
	Listeners []Listener `json:"listeners"`
	Server    Server     `json:"server"`
	Hints     Hints      `json:"hints"`
	Responses Responses  `json:"responses"`
	Observe   Observe    `json:"observe"`
	Pools     []Pool     `json:"pools"`
	Routes    []Route    `json:"routes"`
	// Cluster, when set, shares runner state with the other replicas
	// through NATS JetStream; nil is a single instance.
	Cluster *Cluster `json:"cluster,omitempty"`
	// Warnings are what validate and the server's log report of a valid
	// file: deprecated names.
	Warnings []Problem `json:"-"`
	// Source is the file's text, kept when server.edge_module is set: the
	// module in each Envoy parses the same file.
	Source []byte `json:"-"`
}

// Responses says what switchyard adds to or keeps from responses.
type Responses struct {
	DecisionHeaders bool `json:"decision_headers"` // x-switchyard-pool, -runner, -variant, -hint
	RunnerHints     bool `json:"runner_hints"`     // pass the runners' hint header on to clients
	// Explain lets a request ask for its decision record in the
	// x-switchyard-explain response header (request header
	// x-switchyard-explain: 1).
	Explain bool `json:"explain"`
}

// Observe is what switchyard tells operators about its decisions.
type Observe struct {
	// Decisions is how many decision records are kept for GET
	// /debug/decisions and the status page (0 keeps none).
	Decisions int `json:"decisions"`
	// AccessLog, when set, has Envoy write one JSON line per request with
	// its decision record.
	AccessLog *AccessLog `json:"access_log,omitempty"`
	// Tracing, when set, exports a span per decision over OTLP, and
	// optionally Envoy's spans of the same requests.
	Tracing *Tracing `json:"tracing,omitempty"`
}

// Tracing is OpenTelemetry tracing of decisions (observe.tracing).
type Tracing struct {
	// Endpoint is the OTLP/gRPC collector's host:port. Empty: switchyard's
	// exporter reads OTEL_EXPORTER_OTLP_TRACES_ENDPOINT or
	// OTEL_EXPORTER_OTLP_ENDPOINT, as the OpenTelemetry SDK does.
	Endpoint string `json:"endpoint,omitempty"`
	// Insecure is plain gRPC (no TLS) to the collector. Unset in the file,
	// it is true for a loopback endpoint and false otherwise (false leaves
	// an endpoint from the environment to its own OTEL_* settings).
	Insecure bool `json:"insecure"`
	// SampleRatio is the share of requests traced among those that arrive
	// without a parent trace; a request whose parent was sampled (or not)
	// follows its parent.
	SampleRatio float64 `json:"sample_ratio"`
	// Envoy has Envoy trace the same requests, to the same collector.
	Envoy bool `json:"envoy"`
	// ServiceName is the service.name of switchyard's spans as written
	// ("" when the file leaves it out: OTEL_SERVICE_NAME, else
	// DefaultServiceName); Envoy's spans carry ServiceName() + "-envoy".
	ServiceName string `json:"service_name,omitempty"`
}

// DefaultServiceName is the service.name of switchyard's spans unless the
// file or OTEL_SERVICE_NAME says otherwise.
const DefaultServiceName = "switchyard"

// Service is the service name the file gives, or the default.
func (t *Tracing) Service() string {
	if t.ServiceName != "" {
		return t.ServiceName
	}
	return DefaultServiceName
}

// TraceHeaders are the W3C trace context request headers: switchyard reads
// them, when tracing is on, to parent its decision span.
var TraceHeaders = []string{"traceparent", "tracestate"}

// AccessLog is Envoy's JSON access log of requests and their decisions.
type AccessLog struct {
	// Path is the file Envoy appends to, as Envoy sees it (/dev/stdout
	// for its standard output).
	Path string `json:"path"`
}

// DefaultDecisions is how many decision records are kept by default.
const DefaultDecisions = 1000

// MaxDecisions bounds observe.decisions.
const MaxDecisions = 100_000

// Records says decisions carry their full record in Envoy's metadata: the
// access log or the explain header can show it.
func (c *Config) Records() bool { return c.Observe.AccessLog != nil || c.Responses.Explain }

type Listener struct {
	Name    string `json:"name"`
	Address string `json:"address"`
	Port    int    `json:"port"`
	TLS     *TLS   `json:"tls,omitempty"`
}

type TLS struct {
	CertFile string `json:"cert_file"`
	KeyFile  string `json:"key_file"`
}

type Server struct {
	GRPC         string   `json:"grpc"`
	Admin        string   `json:"admin"`
	DrainTimeout Duration `json:"drain_timeout"`
	MaxBodyBytes int      `json:"max_body_bytes"`
	// AdminAuth, when set, is who may use the admin API.
	AdminAuth *AdminAuth `json:"admin_auth,omitempty"`
	// GRPCTLS, when set, puts the gRPC port (ADS, ext_proc, access log)
	// under mutual TLS.
	GRPCTLS *GRPCTLS `json:"grpc_tls,omitempty"`
	// AdminTLS, when set, serves the admin API over HTTPS.
	AdminTLS *AdminTLS `json:"admin_tls,omitempty"`
	// Pipelines is the address switchyard runs pipeline routes' requests
	// on, for Envoy only; it listens there only while a route declares a
	// pipeline.
	Pipelines string `json:"pipelines"`
	// EdgeModule, when set, is the path (as Envoy sees it) of switchyard's
	// Envoy dynamic module: Envoy then decides each request itself, in
	// process, instead of asking switchyard over ext_proc (a prototype: no
	// pipelines, decision log or spans, and each Envoy keeps its own runner
	// state).
	EdgeModule string `json:"edge_module,omitempty"`
}

// AdminTLS is HTTPS on the admin port (server.admin_tls). With
// ClientCAFile, a client certificate of that CA is verified when given;
// with admin_auth.client_certificates it may change routing, as a write
// token may.
type AdminTLS struct {
	CertFile     string `json:"cert_file"`
	KeyFile      string `json:"key_file"`
	ClientCAFile string `json:"client_ca_file,omitempty"`
}

// GRPCTLS is mutual TLS on the gRPC port (server.grpc_tls): switchyard
// presents CertFile/KeyFile and accepts only clients whose certificate
// chains to ClientCAFile; Envoy presents Envoy.CertFile/KeyFile and checks
// switchyard's certificate against Envoy.CAFile. Paths are absolute
// (relative ones are resolved against the config file); Envoy's are as
// Envoy sees them, and are not opened by switchyard.
type GRPCTLS struct {
	CertFile     string         `json:"cert_file"`
	KeyFile      string         `json:"key_file"`
	ClientCAFile string         `json:"client_ca_file"`
	Envoy        EnvoyClientTLS `json:"envoy"`
}

// EnvoyClientTLS is what Envoy uses to reach switchyard under mutual TLS.
// Envoy re-reads the files when one is replaced by a rename into its
// directory.
type EnvoyClientTLS struct {
	CertFile string `json:"cert_file"`
	KeyFile  string `json:"key_file"`
	CAFile   string `json:"ca_file"`
	// ServerName, when set, is a DNS name (or IP address) that switchyard's
	// certificate must carry as a subject alternative name; Envoy also
	// sends a DNS name as SNI. Empty: the CA alone is checked.
	ServerName string `json:"server_name,omitempty"`
}

// AdminAuth protects the admin API with bearer tokens read from files
// (server.admin_auth). A token of TokenFiles may register, renew and drain
// runners, and read; with ReadTokenFiles set, the debug and list endpoints
// need a token too, of either list. Health, readiness and metrics stay
// open. The files are read at every (re)load, so listing a new file beside
// the old one and reloading rotates a token.
type AdminAuth struct {
	TokenFiles     []string `json:"token_files"`
	ReadTokenFiles []string `json:"read_token_files,omitempty"`
	// ClientCertificates lets a verified client certificate of
	// server.admin_tls.client_ca_file do what a write token does.
	ClientCertificates bool `json:"client_certificates,omitempty"`
	// The tokens themselves; never printed (debug/config shows the files).
	write, read [][]byte
}

// Access is what a bearer token may do.
type Access int

const (
	AccessNone  Access = iota // not a token of the config
	AccessRead                // a read token: debug and list endpoints
	AccessWrite               // a write token: everything
)

// Grants says what token may do, comparing in constant time.
func (a *AdminAuth) Grants(token []byte) Access {
	write, read := 0, 0
	for _, t := range a.write {
		write |= subtle.ConstantTimeCompare(t, token)
	}
	for _, t := range a.read {
		read |= subtle.ConstantTimeCompare(t, token)
	}
	switch {
	case write == 1:
		return AccessWrite
	case read == 1:
		return AccessRead
	}
	return AccessNone
}

// ProtectsReads says the debug and list endpoints need a token.
func (a *AdminAuth) ProtectsReads() bool { return len(a.read) > 0 }

// Cluster is where replicas share runner state (the cluster section).
type Cluster struct {
	NATS    []string `json:"nats"`    // server URLs
	Prefix  string   `json:"prefix"`  // of the key-value bucket names
	Replica string   `json:"replica"` // this replica's name, unique among the replicas
	// CredentialsFile is a NATS credentials file (JWT and seed); optional.
	CredentialsFile string      `json:"credentials_file,omitempty"`
	TLS             *ClusterTLS `json:"tls,omitempty"`
}

// ClusterTLS is the TLS of the connection to NATS: the CA that signs the
// servers' certificates, and optionally this replica's client certificate.
type ClusterTLS struct {
	CAFile   string `json:"ca_file,omitempty"`
	CertFile string `json:"cert_file,omitempty"`
	KeyFile  string `json:"key_file,omitempty"`
}

// DefaultClusterPrefix prefixes the bucket names when cluster.prefix is unset.
const DefaultClusterPrefix = "switchyard"

type Hints struct {
	RequestHeaders []string   `json:"request_headers"`
	ResponseHeader string     `json:"response_header"`
	Policy         HintPolicy `json:"policy"`
}

type Pool struct {
	Name           string       `json:"name"`
	MaxConcurrency int          `json:"max_concurrency"`
	Runners        []string     `json:"runners"` // static runner addresses, ip:port
	LoadBalancer   LoadBalancer `json:"load_balancer"`
}

// LoadBalancer says who picks a pool's runner: switchyard (hint affinity,
// busy runners avoided) or one of Envoy's own balancers.
type LoadBalancer struct {
	Policy Balancer `json:"policy"`
	// HashBalanceFactor bounds the load of consistent hashing (maglev,
	// ring_hash): no runner gets more than factor/100 of the average.
	// 0 means unbounded.
	HashBalanceFactor int `json:"hash_balance_factor,omitempty"`
}

// Balancer names who picks a pool's runner (load_balancer.policy).
type Balancer string

// Load balancer policies.
const (
	// LBHintAffinity is switchyard's own pick (hints.policy, busy runners
	// avoided), handed to Envoy's override_host balancer. The default.
	LBHintAffinity Balancer = "hint_affinity"
	LBRoundRobin   Balancer = "round_robin"
	LBLeastRequest Balancer = "least_request"
	LBRingHash     Balancer = "ring_hash" // on the hint request headers
	LBMaglev       Balancer = "maglev"    // on the hint request headers

	// DefaultBalancer is the one default.
	DefaultBalancer = LBHintAffinity
)

// Balancers lists every load balancer policy, the default first.
var Balancers = []Balancer{LBHintAffinity, LBRoundRobin, LBLeastRequest, LBRingHash, LBMaglev}

// deprecatedNames are the names a release still accepts for one more, with
// a warning: both policies were once called "switchyard", which named the
// product, not what they do.
var (
	deprecatedHintPolicies = map[string]HintPolicy{"switchyard": HintLoadingMarks}
	deprecatedBalancers    = map[string]Balancer{"switchyard": LBHintAffinity}
)

// HashesOnHint says Envoy picks the pool's runner by hashing the hint header.
func (lb LoadBalancer) HashesOnHint() bool { return lb.Policy == LBRingHash || lb.Policy == LBMaglev }

type Route struct {
	Name      string   `json:"name"`
	Match     Match    `json:"match"`
	Listeners []string `json:"listeners"` // every listener when the file names none
	HintFrom  *Expr    `json:"hint_from,omitempty"`
	// Cost, when set, gives each request a relative size (a number): the
	// soonest policy learns each pool's time per unit of it.
	Cost          *Expr    `json:"cost,omitempty"`
	OnInvalidBody string   `json:"on_invalid_body"`
	Timeout       Duration `json:"timeout"`
	Rules         []Rule   `json:"rules"`
	// Pipeline, when set, makes the route a pipeline: switchyard runs its
	// steps, each a request through the edge, and the route has no rules.
	Pipeline *Pipeline `json:"pipeline,omitempty"`

	needsBody  bool
	bodyFields [][]string
	wholeBody  bool
	bodyPath   BodyPath
	fields     *bodyfields.Fields
}

type Match struct {
	Prefix string `json:"prefix,omitempty"`
	Path   string `json:"path,omitempty"`
}

// Rule sends a request to Pool, or to one of Split's variants, when When
// matches. The last rule of a route has no When.
type Rule struct {
	When     *Expr    `json:"when,omitempty"`
	Pool     string   `json:"pool,omitempty"`
	Split    *Split   `json:"split,omitempty"`
	Fallback []string `json:"fallback,omitempty"`
}

type Split struct {
	StickyKey *Expr     `json:"sticky_key,omitempty"`
	Variants  []Variant `json:"variants"` // sorted by pool name
}

type Variant struct {
	Pool   string `json:"pool"`
	Weight int    `json:"weight"`
	// Guard, when set, takes the variant out of the split when it breaches
	// its limits.
	Guard *Guard `json:"guard,omitempty"`
}

// Guard is a split variant's limits over a sliding window of its
// requests' ends: past either (with at least MinRequests in the window)
// the variant leaves the split, its users going to the other variants. It
// comes back when an operator enables it, or after CoolDown (when set) at
// ProbeWeight until a whole window passes within the limits.
type Guard struct {
	// MaxErrorRate is the largest share of requests answered 5xx (or not
	// at all); 0 means no error-rate limit.
	MaxErrorRate float64 `json:"max_error_rate,omitempty"`
	// MaxLatency bounds the 95th percentile of the time to the response
	// headers; 0 means no latency limit.
	MaxLatency  Duration `json:"max_latency,omitempty"`
	Window      Duration `json:"window"`
	MinRequests int      `json:"min_requests"`
	CoolDown    Duration `json:"cool_down,omitempty"`
	ProbeWeight int      `json:"probe_weight"`
}

// Guarded says a variant of the split has a guard.
func (s *Split) Guarded() bool {
	for _, v := range s.Variants {
		if v.Guard != nil {
			return true
		}
	}
	return false
}

// Defaults and bounds of a split guard.
const (
	MaxGuardSamples         = 4096 // the requests a guard's window holds at most
	DefaultGuardWindow      = Duration(time.Minute)
	DefaultGuardMinRequests = 20
	DefaultGuardProbeWeight = 1
)

// Pool returns the named pool.
func (c *Config) Pool(name string) (Pool, bool) {
	for _, p := range c.Pools {
		if p.Name == name {
			return p, true
		}
	}
	return Pool{}, false
}

// DefaultPool is where the route sends a request when no decision is made
// (switchyard unreachable): the last rule's pool, or its heaviest variant.
func (r *Route) DefaultPool() string {
	last := r.Rules[len(r.Rules)-1]
	if last.Split == nil {
		return last.Pool
	}
	best := last.Split.Variants[0]
	for _, v := range last.Split.Variants[1:] {
		if v.Weight > best.Weight {
			best = v
		}
	}
	return best.Pool
}

// Target is where a decision sends a request: a pool and, in order, the
// pools that serve the same request when that pool fails.
type Target struct {
	Pool     string
	Fallback []string
}

// Name identifies the target in the routing header and in Envoy's route
// and cluster names: "a100", or "a100+a6000" with a fallback. Pool names
// cannot contain '+', so names never collide.
func (t Target) Name() string {
	if len(t.Fallback) == 0 {
		return t.Pool
	}
	return t.Pool + "+" + strings.Join(t.Fallback, "+")
}

// Target is the target of this rule for pool (the rule's pool or one of
// its split variants).
func (r Rule) Target(pool string) Target { return Target{Pool: pool, Fallback: r.Fallback} }

// DefaultTarget is where the route sends a request when no decision is
// made: its default pool, with the last rule's fallbacks.
func (r *Route) DefaultTarget() Target {
	return r.Rules[len(r.Rules)-1].Target(r.DefaultPool())
}

// Targets lists, sorted by name and without repeats, every target the
// route's rules can choose.
func (r *Route) Targets() []Target {
	set := map[string]Target{}
	for _, rule := range r.Rules {
		if rule.Pool != "" {
			t := rule.Target(rule.Pool)
			set[t.Name()] = t
		}
		if rule.Split != nil {
			for _, v := range rule.Split.Variants {
				t := rule.Target(v.Pool)
				set[t.Name()] = t
			}
		}
	}
	out := make([]Target, 0, len(set))
	for _, name := range sortedKeys(set) {
		out = append(out, set[name])
	}
	return out
}

// NeedsBody says whether any expression of the route reads the body. It is
// worked out once, when the config is loaded: the request path asks it.
func (r *Route) NeedsBody() bool { return r.needsBody }

// BodyFields are the body fields the route's expressions read, each a
// chain of object keys, sorted and without repeats; WholeBody says an
// expression reads the body in a way that names no fixed field.
func (r *Route) BodyFields() [][]string { return r.bodyFields }
func (r *Route) WholeBody() bool        { return r.wholeBody }

// BodyPath says how the route's body fields reach switchyard.
type BodyPath string

const (
	// BodyNone: the route's rules read no body.
	BodyNone BodyPath = "none"
	// BodyMetadata: Envoy extracts the named fields itself
	// (json_to_metadata) and sends only them, with the request headers;
	// the body goes over gRPC only when Envoy cannot (a field missing,
	// null, an array or object, a string over 8 KiB; a body that is not
	// JSON or not sent as application/json).
	BodyMetadata BodyPath = "fields extracted by Envoy"
	// BodyBuffered: the whole body goes to switchyard over gRPC, because
	// an expression reads it as a whole.
	BodyBuffered BodyPath = "whole body sent to switchyard"
)

// BodyPath says which path the route's body takes (worked out at load:
// the request path asks it).
func (r *Route) BodyPath() BodyPath { return r.bodyPath }

// classifyBody works out, once at load, what of the body the route reads.
func (r *Route) classifyBody() {
	seen := map[string]bool{}
	for _, e := range r.Exprs() {
		r.needsBody = r.needsBody || e.UsesBody
		r.wholeBody = r.wholeBody || e.WholeBody
		for _, p := range e.BodyPaths {
			if k := strings.Join(p, "\x00"); !seen[k] {
				seen[k] = true
				r.bodyFields = append(r.bodyFields, p)
			}
		}
	}
	sort.Slice(r.bodyFields, func(i, j int) bool {
		return strings.Join(r.bodyFields[i], "\x00") < strings.Join(r.bodyFields[j], "\x00")
	})
	r.bodyPath = BodyMetadata
	switch {
	case !r.needsBody:
		r.bodyPath = BodyNone
	case r.wholeBody || len(r.bodyFields) == 0:
		r.bodyPath = BodyBuffered
	}
	for _, p := range r.bodyFields {
		if r.bodyPath == BodyMetadata && slices.Contains(p, "") {
			r.bodyPath = BodyBuffered // Envoy's selectors cannot name an empty key
		}
	}
	if r.needsBody {
		r.fields = bodyfields.Compile(r.bodyFields, r.wholeBody)
	}
}

// Fields is the compiled extraction of what the route reads of a body (nil
// when it reads none).
func (r *Route) Fields() *bodyfields.Fields { return r.fields }

// RequestHeadersRead lists the request headers switchyard reads to decide
// the listener's requests, sorted: the pseudo-headers and content-length it
// always reads, the hint headers, the trace context headers when tracing
// is on, and every header the expressions of the listener's routes name.
// ok is false when an expression reads the headers in a way that names no
// fixed header: then every header is needed.
func (c *Config) RequestHeadersRead(listener string) (names []string, ok bool) {
	set := map[string]bool{":method": true, ":path": true, "content-length": true}
	for _, h := range c.Hints.RequestHeaders {
		set[strings.ToLower(h)] = true
	}
	if c.Responses.Explain {
		set[contract.HeaderExplain] = true
	}
	if c.Observe.Tracing != nil {
		for _, h := range TraceHeaders {
			set[h] = true
		}
	}
	for i := range c.Routes {
		r := &c.Routes[i]
		if !slices.Contains(r.Listeners, listener) || !c.Decides(r) {
			continue
		}
		for _, e := range r.Exprs() {
			if e.AllHeaders {
				return nil, false
			}
			for _, h := range e.HeaderNames {
				set[strings.ToLower(h)] = true
			}
		}
	}
	return sortedKeys(set), true
}

// Decides says whether switchyard has anything to decide for the route's
// requests: a choice between rules or split variants, a pool whose runner
// switchyard picks, or a body to check (on_invalid_body: reject). A route that always ends in one pool that
// Envoy balances by itself is left to Envoy: no exchange at all.
func (c *Config) Decides(r *Route) bool {
	if r.Pipeline != nil {
		return false // switchyard's pipeline executor answers; its steps are decided as requests of their own
	}
	ts := r.Targets()
	if len(ts) != 1 || (r.needsBody && r.OnInvalidBody == InvalidBodyReject) {
		return true
	}
	for _, rule := range r.Rules {
		if rule.Split != nil {
			return true
		}
	}
	for _, pool := range append([]string{ts[0].Pool}, ts[0].Fallback...) {
		if p, ok := c.Pool(pool); !ok || p.LoadBalancer.Policy == LBHintAffinity {
			return true
		}
	}
	return false
}

// Exprs lists the route's expressions: hint_from, cost, the rules' when,
// the splits' sticky keys.
func (r *Route) Exprs() []*Expr {
	var out []*Expr
	add := func(e *Expr) {
		if e != nil {
			out = append(out, e)
		}
	}
	add(r.HintFrom)
	add(r.Cost)
	for _, rule := range r.Rules {
		add(rule.When)
		if rule.Split != nil {
			add(rule.Split.StickyKey)
		}
	}
	return out
}

// Route returns the named route.
func (c *Config) Route(name string) (*Route, bool) {
	for i := range c.Routes {
		if c.Routes[i].Name == name {
			return &c.Routes[i], true
		}
	}
	return nil, false
}
