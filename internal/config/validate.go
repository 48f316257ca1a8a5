package config

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/google/cel-go/cel"

	"github.com/switchyard/switchyard/internal/contract"
)

var (
	// Names end up in Envoy resource names and header values.
	namePattern = regexp.MustCompile(`^[a-z0-9]([a-z0-9._-]{0,61}[a-z0-9])?$`)
	// dnsNamePattern is a host name: dot-separated labels of at most 63
	// lower-case letters, digits and inner hyphens.
	dnsNamePattern = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$`)
	headerPattern  = regexp.MustCompile(`^[a-z0-9!#$%&'*+.^_|~-]+$`)
)

// build checks f and turns it into a Config, reporting problems into ps.
func build(name string, f *file, ps *problems) *Config {
	cfg := &Config{File: name}
	root := fieldPath{}
	cfg.Listeners = buildListeners(name, f.Listeners, root.key("listeners"), ps)
	cfg.Server = buildServer(f.Server, root.key("server"), ps)
	cfg.Server.AdminAuth = buildAdminAuth(name, f.Server.AdminAuth, cfg.Server.Admin, root.key("server"), ps)
	if t := f.Server.AdminTLS; t != nil {
		tp := root.key("server").key("admin_tls")
		cfg.Server.AdminTLS = &AdminTLS{
			CertFile: checkFile(name, t.CertFile, tp.key("cert_file"), ps),
			KeyFile:  checkFile(name, t.KeyFile, tp.key("key_file"), ps),
		}
		if t.ClientCAFile != "" {
			cfg.Server.AdminTLS.ClientCAFile = checkFile(name, t.ClientCAFile, tp.key("client_ca_file"), ps)
		}
	}
	if a := cfg.Server.AdminAuth; a != nil && a.ClientCertificates && (cfg.Server.AdminTLS == nil || cfg.Server.AdminTLS.ClientCAFile == "") {
		ps.at(root.key("server").key("admin_auth").key("client_certificates"), "needs server.admin_tls with a client_ca_file")
	}
	if t := f.Server.GRPCTLS; t != nil {
		tp := root.key("server").key("grpc_tls")
		ep := tp.key("envoy")
		cfg.Server.GRPCTLS = &GRPCTLS{
			CertFile:     checkFile(name, t.CertFile, tp.key("cert_file"), ps),
			KeyFile:      checkFile(name, t.KeyFile, tp.key("key_file"), ps),
			ClientCAFile: checkFile(name, t.ClientCAFile, tp.key("client_ca_file"), ps),
			// Envoy opens these; they are not checked here (Envoy may
			// see another filesystem).
			Envoy: EnvoyClientTLS{
				CertFile:   resolvePath(name, t.Envoy.CertFile, ep.key("cert_file"), ps),
				KeyFile:    resolvePath(name, t.Envoy.KeyFile, ep.key("key_file"), ps),
				CAFile:     resolvePath(name, t.Envoy.CAFile, ep.key("ca_file"), ps),
				ServerName: checkServerName(t.Envoy.ServerName, ep.key("server_name"), ps),
			},
		}
	}
	cfg.Hints = buildHints(f.Hints, root.key("hints"), ps)
	cfg.Responses = Responses{DecisionHeaders: f.Responses.DecisionHeaders == nil || *f.Responses.DecisionHeaders, RunnerHints: f.Responses.RunnerHints,
		Explain: f.Responses.Explain}
	cfg.Observe = buildObserve(name, f.Observe, root.key("observe"), ps)
	cfg.Pools = buildPools(f.Pools, root.key("pools"), ps)
	cfg.Routes = buildRoutes(f.Routes, cfg, root.key("routes"), ps)
	if f.Cluster != nil {
		cfg.Cluster = buildCluster(name, *f.Cluster, root.key("cluster"), ps)
	}
	if f.Server.EdgeModule != "" {
		cfg.Server.EdgeModule = checkEdgeModule(name, f.Server.EdgeModule, cfg, root, ps)
	}
	return cfg
}

// checkEdgeModule resolves server.edge_module and refuses what the module
// does not do yet: pipelines, the decision log and spans, state shared
// between edges (each Envoy's module keeps its own).
func checkEdgeModule(file, p string, cfg *Config, root fieldPath, ps *problems) string {
	path := root.key("server").key("edge_module")
	p = resolvePath(file, p, path, ps)
	if _, err := os.Stat(p); err != nil {
		// Envoy opens it and may see another filesystem.
		ps.warn(path, "%s is not here (make build makes bin/libswitchyard.so); the Envoys must find it at that path", p)
	}
	if cfg.Cluster != nil {
		ps.at(path, "cannot be used with cluster: each Envoy's module keeps its own runner state")
	}
	// The decision record goes to the client (explain) on both paths; to
	// Envoy's JSON access log and to spans only on the ext_proc path.
	if cfg.Observe.AccessLog != nil {
		ps.at(root.key("observe").key("access_log"), "needs switchyard's ext_proc path, not server.edge_module")
	}
	if cfg.Observe.Tracing != nil {
		ps.at(root.key("observe").key("tracing"), "needs switchyard's ext_proc path, not server.edge_module")
	}
	for i := range cfg.Routes {
		if r := &cfg.Routes[i]; r.Pipeline != nil {
			ps.at(root.key("routes").idx(i).key("pipeline"), "route %q: pipelines need switchyard's ext_proc path, not server.edge_module", r.Name)
		}
	}
	return p
}

func buildObserve(file string, f observeFile, path fieldPath, ps *problems) Observe {
	o := Observe{Decisions: DefaultDecisions}
	if f.Decisions != nil {
		o.Decisions = *f.Decisions
		if o.Decisions < 0 || o.Decisions > MaxDecisions {
			ps.at(path.key("decisions"), "decisions %d is out of range 0-%d", o.Decisions, MaxDecisions)
		}
	}
	if a := f.AccessLog; a != nil {
		// Envoy opens the file; it may see another filesystem.
		o.AccessLog = &AccessLog{Path: resolvePath(file, a.Path, path.key("access_log").key("path"), ps)}
	}
	if t := f.Tracing; t != nil {
		o.Tracing = buildTracing(*t, path.key("tracing"), ps)
	}
	return o
}

// buildTracing checks observe.tracing. The endpoint may be a host name
// (switchyard resolves it, and Envoy's cluster for it is STRICT_DNS).
func buildTracing(f tracingFile, path fieldPath, ps *problems) *Tracing {
	t := &Tracing{Endpoint: f.Endpoint, SampleRatio: 1, Envoy: f.Envoy, ServiceName: f.ServiceName}
	loopback := false
	if t.Endpoint != "" {
		host, ok := checkCollector(t.Endpoint, path.key("endpoint"), ps)
		if a, err := netip.ParseAddr(host); ok && (host == "localhost" || err == nil && a.IsLoopback()) {
			loopback = true
		}
	}
	t.Insecure = loopback
	if f.Insecure != nil {
		t.Insecure = *f.Insecure
	}
	if f.SampleRatio != nil {
		t.SampleRatio = *f.SampleRatio
		if t.SampleRatio < 0 || t.SampleRatio > 1 {
			ps.at(path.key("sample_ratio"), "sample_ratio %v must be from 0 to 1", t.SampleRatio)
		}
	}
	if t.Envoy {
		switch {
		case t.Endpoint == "":
			ps.at(path.key("envoy"), "Envoy needs tracing.endpoint: it does not read the OTEL_* environment variables")
		case !t.Insecure:
			ps.at(path.key("envoy"), "Envoy exports over plain gRPC only: set insecure: true (a collector or agent on this host or network), or leave Envoy out")
		}
	}
	if n := t.ServiceName; n != "" && (len(n) > 255 || strings.ContainsFunc(n, func(r rune) bool { return r < 0x20 || r == 0x7f })) {
		ps.at(path.key("service_name"), "service_name %q must be at most 255 characters without control characters", n)
	}
	return t
}

// checkCollector accepts host:port, the host an IP address or a DNS name,
// the port 1-65535; it returns the host.
func checkCollector(hp string, path fieldPath, ps *problems) (string, bool) {
	host, port, err := net.SplitHostPort(hp)
	if err != nil {
		ps.at(path, "endpoint %q must be host:port (no scheme): %v", hp, err)
		return "", false
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		ps.at(path, "endpoint %q: port must be 1-65535", hp)
		return "", false
	}
	if a, err := netip.ParseAddr(host); err == nil && a.Zone() == "" {
		return host, true
	}
	if len(host) > 253 || !dnsNamePattern.MatchString(host) {
		ps.at(path, "endpoint %q: %q is not an IP address or a DNS name (lower-case)", hp, host)
		return "", false
	}
	return host, true
}

// checkServerName accepts a DNS name (the name switchyard's certificate
// carries, as Envoy matches it: exactly, lower-case) or an IP address.
func checkServerName(n string, path fieldPath, ps *problems) string {
	if n == "" {
		return ""
	}
	if a, err := netip.ParseAddr(n); err == nil && a.Zone() == "" {
		return n
	}
	if len(n) > 253 || !dnsNamePattern.MatchString(n) {
		ps.at(path, "server_name %q is not a DNS name (lower-case letters, digits, '-' and '.') or an IP address", n)
	}
	return n
}

func checkName(kind, n string, path fieldPath, seen map[string]bool, ps *problems) {
	switch {
	case n == "":
		ps.at(path, "%s name is required", kind)
	case !namePattern.MatchString(n):
		ps.at(path, "%s name %q must be lower-case letters, digits, '.', '_' or '-' (at most 63)", kind, n)
	case seen[n]:
		ps.at(path, "duplicate %s name %q", kind, n)
	}
	seen[n] = true
}

func buildListeners(file string, in []listenerFile, path fieldPath, ps *problems) []Listener {
	if len(in) == 0 {
		ps.at(path, "at least one listener is required")
	}
	names, addrs := map[string]bool{}, map[string]bool{}
	out := make([]Listener, 0, len(in))
	for i, l := range in {
		p := path.idx(i)
		checkName("listener", l.Name, p.key("name"), names, ps)
		if _, err := netip.ParseAddr(l.Address); err != nil {
			ps.at(p.key("address"), "address %q is not an IP address", l.Address)
		}
		if l.Port < 1 || l.Port > 65535 {
			ps.at(p.key("port"), "port %d is out of range 1-65535", l.Port)
		}
		key := net.JoinHostPort(l.Address, strconv.Itoa(l.Port))
		if addrs[key] {
			ps.at(p.key("port"), "another listener already uses %s", key)
		}
		addrs[key] = true
		out = append(out, Listener{Name: l.Name, Address: l.Address, Port: l.Port})
		if l.TLS != nil {
			tls := &TLS{
				CertFile: checkFile(file, l.TLS.CertFile, p.key("tls").key("cert_file"), ps),
				KeyFile:  checkFile(file, l.TLS.KeyFile, p.key("tls").key("key_file"), ps),
			}
			out[len(out)-1].TLS = tls
		}
	}
	return out
}

// checkFile resolves a path relative to the config file and checks it can be read.
func checkFile(configFile, p string, path fieldPath, ps *problems) string {
	p = resolvePath(configFile, p, path, ps)
	if p == "" {
		return ""
	}
	if _, err := os.Stat(p); err != nil {
		ps.at(path, "cannot read %s: %v", p, err)
	}
	return p
}

// resolvePath makes a required path absolute, relative to the config file.
func resolvePath(configFile, p string, path fieldPath, ps *problems) string {
	if p == "" {
		ps.at(path, "a file is required")
		return ""
	}
	if !filepath.IsAbs(p) {
		p = filepath.Join(filepath.Dir(configFile), p)
	}
	return p
}

func buildServer(in serverFile, path fieldPath, ps *problems) Server {
	s := Server{GRPC: in.GRPC, Admin: in.Admin, DrainTimeout: Duration(DefaultDrainTimeout), MaxBodyBytes: DefaultMaxBodyBytes}
	if in.MaxBodyBytes != nil {
		s.MaxBodyBytes = *in.MaxBodyBytes
		if s.MaxBodyBytes < MinMaxBodyBytes || s.MaxBodyBytes > MaxMaxBodyBytes {
			ps.at(path.key("max_body_bytes"), "must be %d to %d bytes, got %d", MinMaxBodyBytes, MaxMaxBodyBytes, s.MaxBodyBytes)
		}
	}
	if s.GRPC == "" {
		s.GRPC = DefaultGRPC
	}
	if s.Admin == "" {
		s.Admin = DefaultAdmin
	}
	s.Pipelines = in.Pipelines
	if s.Pipelines == "" {
		s.Pipelines = DefaultPipelines
	}
	if in.DrainTimeout != nil {
		s.DrainTimeout = *in.DrainTimeout
		if s.DrainTimeout <= 0 {
			ps.at(path.key("drain_timeout"), "must be positive")
		}
	}
	checkHostPort(s.GRPC, path.key("grpc"), ps)
	checkHostPort(s.Admin, path.key("admin"), ps)
	if s.GRPC == s.Admin {
		ps.at(path.key("admin"), "admin and grpc cannot share %s", s.Admin)
	}
	if in.Pipelines != "" {
		checkHostPort(s.Pipelines, path.key("pipelines"), ps)
		if s.Pipelines == s.GRPC || s.Pipelines == s.Admin {
			ps.at(path.key("pipelines"), "pipelines cannot share %s with grpc or admin", s.Pipelines)
		}
	}
	return s
}

// MinTokenLength is the shortest admin token accepted: a guessable token
// protects nothing.
const MinTokenLength = 16

// buildAdminAuth reads the admin API's token files. Without them, a
// non-loopback admin address gets a warning: anyone who reaches it can
// change routing.
func buildAdminAuth(file string, in *adminAuthFile, admin string, server fieldPath, ps *problems) *AdminAuth {
	path := server.key("admin_auth")
	if in == nil {
		if ap, err := ParseHostPort(admin); err == nil && !ap.Addr().IsLoopback() {
			ps.warn(server.key("admin"), "admin %s is not a loopback address and server.admin_auth is not set: anyone who reaches it can register runners (and receive users' requests) or drain them", admin)
		}
		return nil
	}
	a := &AdminAuth{ClientCertificates: in.ClientCertificates}
	if len(in.TokenFiles) == 0 && !in.ClientCertificates {
		ps.at(path.key("token_files"), "at least one token file is required (or client_certificates)")
	}
	read := func(files []string, key string) ([]string, [][]byte) {
		var paths []string
		var tokens [][]byte
		for i, f := range files {
			fp := path.key(key).idx(i)
			p := checkFile(file, f, fp, ps)
			paths = append(paths, p)
			data, err := os.ReadFile(p)
			if err != nil {
				continue // checkFile said so
			}
			tok := bytes.TrimSpace(data)
			switch {
			case len(tok) < MinTokenLength:
				ps.at(fp, "the token in %s is %d characters; at least %d are required", p, len(tok), MinTokenLength)
			case bytes.ContainsAny(tok, " \t\r\n"):
				ps.at(fp, "the token in %s must be one line without spaces", p)
			default:
				tokens = append(tokens, tok)
			}
		}
		return paths, tokens
	}
	a.TokenFiles, a.write = read(in.TokenFiles, "token_files")
	a.ReadTokenFiles, a.read = read(in.ReadTokenFiles, "read_token_files")
	return a
}

// checkHostPort accepts ip:port or localhost:port with a port in 1-65535.
func checkHostPort(hp string, path fieldPath, ps *problems) {
	if _, err := ParseHostPort(hp); err != nil {
		ps.at(path, "%v", err)
	}
}

// ParseHostPort parses ip:port or localhost:port (port 1-65535).
func ParseHostPort(hp string) (netip.AddrPort, error) {
	host, port, err := net.SplitHostPort(hp)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("address %q must be ip:port: %v", hp, err)
	}
	if host == "localhost" {
		host = "127.0.0.1"
	}
	ip, err := netip.ParseAddr(host)
	if err != nil || ip.Zone() != "" {
		return netip.AddrPort{}, fmt.Errorf("address %q: %q is not an IP address", hp, host)
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 {
		return netip.AddrPort{}, fmt.Errorf("address %q: port must be 1-65535", hp)
	}
	return netip.AddrPortFrom(ip.Unmap(), uint16(n)), nil
}

// ParseRunnerAddress checks a runner address: a unicast IP and a port, the
// form Envoy's EDS and override_host need. It returns the canonical form.
func ParseRunnerAddress(s string) (string, error) {
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		return "", fmt.Errorf("runner address %q must be ip:port (IPv6 in brackets): %v", s, err)
	}
	ip := ap.Addr().Unmap()
	if ip.IsUnspecified() || ip.IsMulticast() || ip.Zone() != "" || ap.Port() == 0 {
		return "", fmt.Errorf("runner address %q must be a unicast IP with a port in 1-65535", s)
	}
	return netip.AddrPortFrom(ip, ap.Port()).String(), nil
}

func buildHints(in hintsFile, path fieldPath, ps *problems) Hints {
	h := Hints{RequestHeaders: in.RequestHeaders, ResponseHeader: in.ResponseHeader}
	h.Policy = parseEnum(in.Policy, DefaultHintPolicy, HintPolicies, deprecatedHintPolicies, path.key("policy"), ps)
	if len(h.RequestHeaders) == 0 {
		h.RequestHeaders = []string{DefaultRequestHeader}
	}
	if h.ResponseHeader == "" {
		h.ResponseHeader = DefaultResponseHeader
	}
	for i, name := range h.RequestHeaders {
		checkHeader(name, path.key("request_headers").idx(i), ps)
	}
	checkHeader(h.ResponseHeader, path.key("response_header"), ps)
	return h
}

func checkHeader(name string, path fieldPath, ps *problems) {
	switch {
	case !headerPattern.MatchString(name):
		ps.at(path, "header name %q must be a lower-case HTTP token", name)
	case contract.Reserved(name):
		ps.at(path, "header %q is reserved for switchyard's own decisions", name)
	}
}

func buildPools(in []poolFile, path fieldPath, ps *problems) []Pool {
	if len(in) == 0 {
		ps.at(path, "at least one pool is required")
	}
	names := map[string]bool{}
	out := make([]Pool, 0, len(in))
	for i, p := range in {
		pp := path.idx(i)
		checkName("pool", p.Name, pp.key("name"), names, ps)
		pool := Pool{Name: p.Name, MaxConcurrency: DefaultMaxConcurrency, Runners: []string{}, LoadBalancer: LoadBalancer{Policy: DefaultBalancer}}
		if lb := p.LoadBalancer; lb != nil {
			lp := pp.key("load_balancer")
			pool.LoadBalancer.Policy = parseEnum(lb.Policy, DefaultBalancer, Balancers, deprecatedBalancers, lp.key("policy"), ps)
			pool.LoadBalancer.HashBalanceFactor = lb.HashBalanceFactor
			switch {
			case lb.HashBalanceFactor != 0 && !pool.LoadBalancer.HashesOnHint():
				ps.at(lp.key("hash_balance_factor"), "only applies to %s and %s", LBRingHash, LBMaglev)
			case lb.HashBalanceFactor != 0 && lb.HashBalanceFactor < 100:
				ps.at(lp.key("hash_balance_factor"), "must be at least 100 (percent of the average load), got %d", lb.HashBalanceFactor)
			}
		}
		if p.MaxConcurrency != nil {
			pool.MaxConcurrency = *p.MaxConcurrency
			if pool.MaxConcurrency < 1 {
				ps.at(pp.key("max_concurrency"), "must be at least 1, got %d", pool.MaxConcurrency)
			}
		}
		seen := map[string]bool{}
		for j, r := range p.Runners {
			rp := pp.key("runners").idx(j).key("address")
			addr, err := ParseRunnerAddress(r.Address)
			if err != nil {
				ps.at(rp, "%v", err)
				continue
			}
			if seen[addr] {
				ps.at(rp, "runner %s is listed twice in pool %q", addr, p.Name)
			}
			seen[addr] = true
			pool.Runners = append(pool.Runners, addr)
		}
		out = append(out, pool)
	}
	return out
}

func buildRoutes(in []routeFile, cfg *Config, path fieldPath, ps *problems) []Route {
	if len(in) == 0 {
		ps.at(path, "at least one route is required")
	}
	pools := map[string]bool{}
	for _, p := range cfg.Pools {
		pools[p.Name] = true
	}
	listeners := map[string]bool{}
	for _, l := range cfg.Listeners {
		listeners[l.Name] = true
	}
	names := map[string]bool{}
	out := make([]Route, 0, len(in))
	for i, r := range in {
		rp := path.idx(i)
		checkName("route", r.Name, rp.key("name"), names, ps)
		route := Route{Name: r.Name, Match: Match(r.Match), Listeners: r.Listeners, Timeout: Duration(DefaultRouteTimeout)}
		checkMatch(route.Match, rp.key("match"), ps)
		for j, l := range r.Listeners {
			if !listeners[l] {
				ps.at(rp.key("listeners").idx(j), "unknown listener %q", l)
			}
		}
		if len(route.Listeners) == 0 {
			for _, l := range cfg.Listeners {
				route.Listeners = append(route.Listeners, l.Name)
			}
		}
		if r.Timeout != nil {
			route.Timeout = *r.Timeout
			if route.Timeout <= 0 {
				ps.at(rp.key("timeout"), "must be positive")
			}
		}
		if r.Pipeline != nil {
			route.Pipeline = buildPipeline(r, rp, ps)
			route.Timeout = route.Pipeline.Timeout
			route.OnInvalidBody = InvalidBodyReject // a pipeline needs its JSON body
			route.classifyBody()
			checkShadowed(out, route, rp, ps)
			out = append(out, route)
			continue
		}
		switch r.OnInvalidBody {
		case "", InvalidBodyDefault:
			route.OnInvalidBody = InvalidBodyDefault
		case InvalidBodyReject:
			route.OnInvalidBody = InvalidBodyReject
		default:
			ps.at(rp.key("on_invalid_body"), "must be %q or %q, got %q", InvalidBodyDefault, InvalidBodyReject, r.OnInvalidBody)
		}
		if r.HintFrom != "" {
			route.HintFrom = compileAt(r.HintFrom, rp.key("hint_from"), ps, cel.StringType)
		}
		if r.Cost != "" {
			route.Cost = compileAt(r.Cost, rp.key("cost"), ps, cel.DoubleType, cel.IntType, cel.UintType)
		}
		if len(r.Rules) == 0 {
			ps.at(rp.key("rules"), "at least one rule is required")
		}
		for j, rule := range r.Rules {
			route.Rules = append(route.Rules, buildRule(rule, j == len(r.Rules)-1, pools, rp.key("rules").idx(j), ps))
		}
		checkShadowed(out, route, rp, ps)
		route.classifyBody()
		out = append(out, route)
	}
	checkSteps(out, path, ps)
	return out
}

// checkShadowed reports a route that the routes before it leave no request.
func checkShadowed(before []Route, route Route, rp fieldPath, ps *problems) {
	for _, b := range before {
		if shadows(b, route) {
			ps.at(rp.key("match"), "route %q is never used: route %q before it matches every request it would", route.Name, b.Name)
			return
		}
	}
}

func checkMatch(m Match, path fieldPath, ps *problems) {
	switch {
	case (m.Prefix == "") == (m.Path == ""):
		ps.at(path, "exactly one of prefix or path is required")
	case m.Prefix != "" && !strings.HasPrefix(m.Prefix, "/"):
		ps.at(path.key("prefix"), "%q must start with /", m.Prefix)
	case m.Path != "" && !strings.HasPrefix(m.Path, "/"):
		ps.at(path.key("path"), "%q must start with /", m.Path)
	}
}

// shadows says whether every request that b matches is taken by a first.
func shadows(a, b Route) bool {
	if !covers(a.Listeners, b.Listeners) || a.Match.Prefix == "" && a.Match.Path == "" {
		return false
	}
	if a.Match.Path != "" {
		return b.Match.Path == a.Match.Path
	}
	target := b.Match.Prefix
	if b.Match.Path != "" {
		target = b.Match.Path
	}
	return target != "" && strings.HasPrefix(target, a.Match.Prefix)
}

func covers(a, b []string) bool {
	set := map[string]bool{}
	for _, x := range a {
		set[x] = true
	}
	for _, x := range b {
		if !set[x] {
			return false
		}
	}
	return true
}

func buildRule(in ruleFile, last bool, pools map[string]bool, path fieldPath, ps *problems) Rule {
	rule := Rule{Pool: in.Pool, Fallback: in.Fallback}
	switch {
	case last && in.When != "":
		ps.at(path.key("when"), "the last rule is the route's default and must not have a when")
	case !last && in.When == "":
		ps.at(path, "only the last rule may omit when: the rules after this one are never used")
	}
	if in.When != "" {
		rule.When = compileAt(in.When, path.key("when"), ps, cel.BoolType)
	}
	switch {
	case (in.Pool == "") == (in.Split == nil):
		ps.at(path, "exactly one of pool or split is required")
	case in.Pool != "" && !pools[in.Pool]:
		ps.at(path.key("pool"), "unknown pool %q", in.Pool)
	case in.Split != nil:
		rule.Split = buildSplit(*in.Split, pools, path.key("split"), ps)
	}
	seen := map[string]bool{}
	for i, f := range in.Fallback {
		fp := path.key("fallback").idx(i)
		switch {
		case !pools[f]:
			ps.at(fp, "unknown pool %q", f)
		case f == in.Pool:
			ps.at(fp, "pool %q cannot be its own fallback", f)
		case seen[f]:
			ps.at(fp, "pool %q is listed twice", f)
		}
		seen[f] = true
	}
	return rule
}

func buildSplit(in splitFile, pools map[string]bool, path fieldPath, ps *problems) *Split {
	s := &Split{}
	if in.StickyKey != "" {
		s.StickyKey = compileAt(in.StickyKey, path.key("sticky_key"), ps, cel.StringType, cel.IntType, cel.UintType)
	}
	if len(in.Weights) == 0 {
		ps.at(path.key("weights"), "at least one weighted pool is required")
	}
	for _, pool := range sortedKeys(in.Weights) {
		w := in.Weights[pool]
		wp := path.key("weights").key(pool)
		if !pools[pool] {
			ps.at(wp, "unknown pool %q", pool)
		}
		if w < 1 {
			ps.at(wp, "weight must be a positive integer, got %d", w)
		}
		s.Variants = append(s.Variants, Variant{Pool: pool, Weight: w})
	}
	for _, pool := range sortedKeys(in.Guards) {
		gp := path.key("guards").key(pool)
		i := slices.IndexFunc(s.Variants, func(v Variant) bool { return v.Pool == pool })
		if i < 0 {
			ps.at(gp, "pool %q is not a variant of this split", pool)
			continue
		}
		s.Variants[i].Guard = buildGuard(in.Guards[pool], gp, ps)
	}
	if len(in.Guards) > 0 && len(in.Guards) >= len(s.Variants) {
		ps.at(path.key("guards"), "at least one variant must be unguarded: it serves everyone when the guarded ones leave")
	}
	return s
}

func buildGuard(in guardFile, path fieldPath, ps *problems) *Guard {
	g := &Guard{Window: DefaultGuardWindow, MinRequests: DefaultGuardMinRequests, ProbeWeight: DefaultGuardProbeWeight}
	if in.MaxErrorRate != nil {
		g.MaxErrorRate = *in.MaxErrorRate
		if g.MaxErrorRate <= 0 || g.MaxErrorRate >= 1 {
			ps.at(path.key("max_error_rate"), "must be in (0, 1), got %v", g.MaxErrorRate)
		}
	}
	if in.MaxLatency != nil {
		g.MaxLatency = *in.MaxLatency
		if g.MaxLatency <= 0 {
			ps.at(path.key("max_latency"), "must be positive")
		}
	}
	if in.MaxErrorRate == nil && in.MaxLatency == nil {
		ps.at(path, "a guard needs max_error_rate or max_latency (or both)")
	}
	if in.Window != nil {
		g.Window = *in.Window
		if g.Window < Duration(time.Second) || g.Window > Duration(time.Hour) {
			ps.at(path.key("window"), "must be from 1s to 1h, got %v", g.Window.Std())
		}
	}
	if in.MinRequests != nil {
		g.MinRequests = *in.MinRequests
		if g.MinRequests < 1 || g.MinRequests > MaxGuardSamples {
			ps.at(path.key("min_requests"), "must be from 1 to %d, got %d", MaxGuardSamples, g.MinRequests)
		}
	}
	if in.CoolDown != nil {
		g.CoolDown = *in.CoolDown
		if g.CoolDown <= 0 {
			ps.at(path.key("cool_down"), "must be positive (leave it out for an operator to re-enable the variant)")
		}
	}
	if in.ProbeWeight != nil {
		g.ProbeWeight = *in.ProbeWeight
		if g.ProbeWeight < 1 {
			ps.at(path.key("probe_weight"), "must be a positive integer, got %d", g.ProbeWeight)
		}
	}
	return g
}

func compileAt(src string, path fieldPath, ps *problems, want ...*cel.Type) *Expr {
	e, err := compileExpr(src, want...)
	if err != nil {
		ps.at(path, "%v", err)
	}
	return e
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// parseEnum reads one of the values of a config enum: "" is the default, a
// deprecated name is its new value with a warning, anything else a problem.
func parseEnum[T ~string](in string, def T, values []T, deprecated map[string]T, path fieldPath, ps *problems) T {
	if in == "" {
		return def
	}
	for _, v := range values {
		if string(v) == in {
			return v
		}
	}
	if v, ok := deprecated[in]; ok {
		ps.warn(path, "%q is deprecated and will be refused in the next release: write %q (same behaviour)", in, v)
		return v
	}
	names := make([]string, len(values))
	for i, v := range values {
		names[i] = strconv.Quote(string(v))
	}
	ps.at(path, "must be one of %s; got %q", strings.Join(names, ", "), in)
	return def
}

// clusterName is what bucket prefixes and replica names may hold: they
// become NATS key-value bucket names and keys.
var clusterName = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// ValidClusterName says s may be a bucket prefix or a replica name.
func ValidClusterName(s string) bool { return clusterName.MatchString(s) }

func buildCluster(file string, in clusterFile, path fieldPath, ps *problems) *Cluster {
	c := &Cluster{NATS: in.NATS, Prefix: in.Prefix, Replica: in.Replica}
	if len(in.NATS) == 0 {
		ps.at(path.key("nats"), "at least one NATS server URL is required (nats://host:4222)")
	}
	for i, raw := range in.NATS {
		u, err := url.Parse(raw)
		switch {
		case err != nil:
			ps.at(path.key("nats").idx(i), "%q is not a URL: %v", raw, err)
		case !slices.Contains([]string{"nats", "tls", "ws", "wss"}, u.Scheme) || u.Hostname() == "":
			ps.at(path.key("nats").idx(i), "%q must be nats://host:port (or tls://, ws://, wss://)", raw)
		}
	}
	if c.Prefix == "" {
		c.Prefix = DefaultClusterPrefix
	} else if !clusterName.MatchString(c.Prefix) {
		ps.at(path.key("prefix"), "%q must be 1-64 letters, digits, _ or -", c.Prefix)
	}
	if c.Replica != "" && !clusterName.MatchString(c.Replica) {
		ps.at(path.key("replica"), "%q must be 1-64 letters, digits, _ or -", c.Replica)
	}
	if in.CredentialsFile != "" {
		c.CredentialsFile = checkFile(file, in.CredentialsFile, path.key("credentials_file"), ps)
	}
	if t := in.TLS; t != nil {
		tp := path.key("tls")
		c.TLS = &ClusterTLS{}
		if t.CAFile != "" {
			c.TLS.CAFile = checkFile(file, t.CAFile, tp.key("ca_file"), ps)
		}
		if (t.CertFile == "") != (t.KeyFile == "") {
			ps.at(tp, "cert_file and key_file go together")
		}
		if t.CertFile != "" {
			c.TLS.CertFile = checkFile(file, t.CertFile, tp.key("cert_file"), ps)
		}
		if t.KeyFile != "" {
			c.TLS.KeyFile = checkFile(file, t.KeyFile, tp.key("key_file"), ps)
		}
	}
	return c
}
