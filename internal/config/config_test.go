package config_test

import (
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/switchyard/switchyard/internal/config"
)

func TestLoadDesignExample(t *testing.T) {
	cfg, err := config.Load("testdata/design.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := len(cfg.Pools), 5; got != want {
		t.Fatalf("pools = %d, want %d", got, want)
	}
	a6000, _ := cfg.Pool("a6000")
	if a6000.MaxConcurrency != config.DefaultMaxConcurrency {
		t.Errorf("a6000 max_concurrency = %d, want default %d", a6000.MaxConcurrency, config.DefaultMaxConcurrency)
	}
	ab, images := cfg.Routes[0], cfg.Routes[1]
	if got := ab.DefaultPool(); got != "model-v1" {
		t.Errorf("ab default pool = %q, want the heaviest variant model-v1", got)
	}
	wantTargets := []config.Target{{Pool: "a100", Fallback: []string{"a6000"}}, {Pool: "h100", Fallback: []string{"a6000"}}}
	if diff := cmp.Diff(wantTargets, images.Targets()); diff != "" {
		t.Errorf("images targets (-want +got):\n%s", diff)
	}
	if got := images.DefaultTarget().Name(); got != "h100+a6000" {
		t.Errorf("images default target = %q", got)
	}
	if !images.NeedsBody() || ab.NeedsBody() {
		t.Errorf("NeedsBody: images %v (want true), ab %v (want false)", images.NeedsBody(), ab.NeedsBody())
	}
	if got := images.DefaultPool(); got != "h100" {
		t.Errorf("images default pool = %q, want h100", got)
	}
	if !images.Rules[0].When.UsesBody || !images.HintFrom.UsesBody {
		t.Error("expressions over body must say they use the body")
	}
	if ab.Rules[0].Split.StickyKey.UsesBody {
		t.Error("a header expression must not ask for the body")
	}
	if diff := cmp.Diff([]string{"public"}, images.Listeners); diff != "" {
		t.Errorf("route listeners default to all (-want +got):\n%s", diff)
	}
	if images.Timeout.Std() != config.DefaultRouteTimeout || images.OnInvalidBody != config.InvalidBodyDefault {
		t.Errorf("route defaults not filled: timeout %v, on_invalid_body %q", images.Timeout, images.OnInvalidBody)
	}
	if cfg.Server.DrainTimeout.Std() != config.DefaultDrainTimeout {
		t.Errorf("drain timeout = %v", cfg.Server.DrainTimeout)
	}
}

func TestDefaultsForMinimalFile(t *testing.T) {
	cfg, err := config.Parse("min.yaml", []byte(`
listeners: [{name: l, address: 127.0.0.1, port: 10000}]
pools: [{name: p}]
routes: [{name: r, match: {prefix: /}, timeout: 90s, rules: [{pool: p}]}]
`))
	if err != nil {
		t.Fatal(err)
	}
	want := config.Server{GRPC: config.DefaultGRPC, Admin: config.DefaultAdmin, DrainTimeout: config.Duration(config.DefaultDrainTimeout), MaxBodyBytes: config.DefaultMaxBodyBytes, Pipelines: config.DefaultPipelines}
	if diff := cmp.Diff(want, cfg.Server); diff != "" {
		t.Errorf("server (-want +got):\n%s", diff)
	}
	if !cfg.Responses.DecisionHeaders || cfg.Responses.RunnerHints {
		t.Errorf("responses defaults: %+v", cfg.Responses)
	}
	if diff := cmp.Diff(config.Hints{RequestHeaders: []string{"x-fal-runner-hint"}, ResponseHeader: "x-fal-runner-hints", Policy: "soonest"}, cfg.Hints); diff != "" {
		t.Errorf("hints (-want +got):\n%s", diff)
	}
	if cfg.Routes[0].Timeout.Std() != 90*time.Second {
		t.Errorf("timeout = %v", cfg.Routes[0].Timeout)
	}
	if cfg.Pools[0].LoadBalancer.Policy != config.LBHintAffinity || len(cfg.Warnings) != 0 {
		t.Errorf("load balancer %q, warnings %v", cfg.Pools[0].LoadBalancer.Policy, cfg.Warnings)
	}
}

// A cluster section names NATS servers; the bucket prefix has a default,
// and without the section the instance is alone.
func TestCluster(t *testing.T) {
	const head = "listeners: [{name: l, address: 127.0.0.1, port: 10000}]\npools: [{name: p}]\nroutes: [{name: r, match: {prefix: /}, rules: [{pool: p}]}]\n"
	cfg, err := config.Parse("c.yaml", []byte(head+"cluster: {nats: ['nats://10.0.0.1:4222', 'tls://nats.example:4222'], replica: edge-a}\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := &config.Cluster{NATS: []string{"nats://10.0.0.1:4222", "tls://nats.example:4222"}, Prefix: config.DefaultClusterPrefix, Replica: "edge-a"}
	if diff := cmp.Diff(want, cfg.Cluster); diff != "" {
		t.Errorf("cluster (-want +got):\n%s", diff)
	}
	if cfg, err = config.Parse("c.yaml", []byte(head)); err != nil || cfg.Cluster != nil {
		t.Errorf("no cluster section: %+v, %v", cfg.Cluster, err)
	}
}

// The old name of both policies, "switchyard", still works for one release:
// the same behaviour under the new name, and a warning at its line.
func TestDeprecatedPolicyNames(t *testing.T) {
	cfg, err := config.Parse("old.yaml", []byte(`
listeners: [{name: l, address: 127.0.0.1, port: 10000}]
hints: {policy: switchyard}
pools:
  - {name: p, load_balancer: {policy: switchyard}}
  - {name: q, load_balancer: {policy: hint_affinity}}
routes: [{name: r, match: {prefix: /}, rules: [{pool: p}]}]
`))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Hints.Policy != config.HintLoadingMarks || cfg.Pools[0].LoadBalancer.Policy != config.LBHintAffinity {
		t.Errorf("hint policy %q, balancer %q: want the new names", cfg.Hints.Policy, cfg.Pools[0].LoadBalancer.Policy)
	}
	var got []string
	for _, w := range cfg.Warnings {
		got = append(got, w.String())
	}
	want := []string{
		`old.yaml:3: hints.policy: "switchyard" is deprecated and will be refused in the next release: write "loading_marks" (same behaviour)`,
		`old.yaml:5: pools[0].load_balancer.policy: "switchyard" is deprecated and will be refused in the next release: write "hint_affinity" (same behaviour)`,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("warnings (-want +got):\n%s", diff)
	}
}

// The problems a file has, as "line: field: message substring".
func TestProblems(t *testing.T) {
	const head = "listeners: [{name: l, address: 127.0.0.1, port: 10000}]\npools: [{name: p}, {name: q}]\n"
	tests := []struct {
		name string
		yaml string
		want []string // each "line|field|substring"
	}{
		{"unknown key with suggestion", head + "routes:\n  - name: r\n    match: {prefix: /}\n    rules:\n      - pool: p\n        falback: [q]\n",
			[]string{`8|routes[0].rules[0].falback|unknown field (did you mean "fallback"?)`}},
		{"cluster without servers", head + "routes: [{name: r, match: {prefix: /}, rules: [{pool: p}]}]\ncluster: {prefix: sy}\n",
			[]string{`4|cluster.nats|at least one NATS server URL`}},
		{"cluster fields", head + "routes: [{name: r, match: {prefix: /}, rules: [{pool: p}]}]\ncluster:\n  nats: [http://x:4222, 'nats://:4222']\n  prefix: a.b\n  replica: 'edge a'\n  credentials_file: missing.creds\n  tls: {cert_file: missing.crt}\n",
			[]string{`5|cluster.nats[0]|must be nats://host:port`, `5|cluster.nats[1]|must be nats://host:port`, `6|cluster.prefix|"a.b" must be`,
				`7|cluster.replica|"edge a" must be`, `8|cluster.credentials_file|cannot read`, `9|cluster.tls|cert_file and key_file go together`, `9|cluster.tls.cert_file|cannot read`}},
		{"unknown pool", head + "routes: [{name: r, match: {prefix: /}, rules: [{pool: nope}]}]\n",
			[]string{`3|routes[0].rules[0].pool|unknown pool "nope"`}},
		{"last rule with when", head + "routes: [{name: r, match: {prefix: /}, rules: [{when: 'true', pool: p}]}]\n",
			[]string{`3|routes[0].rules[0].when|must not have a when`}},
		{"rule without when before the last", head + "routes: [{name: r, match: {prefix: /}, rules: [{pool: p}, {pool: q}]}]\n",
			[]string{`3|routes[0].rules[0]|only the last rule may omit when`}},
		{"split weights", head + "routes:\n- name: r\n  match: {prefix: /}\n  rules:\n  - split: {weights: {p: 0, zz: 5}}\n",
			[]string{`7|routes[0].rules[0].split.weights.p|weight must be a positive integer, got 0`, `7|routes[0].rules[0].split.weights.zz|unknown pool "zz"`}},
		{"duplicate names", "listeners: [{name: l, address: 127.0.0.1, port: 10000}]\npools: [{name: p}, {name: p}]\nroutes: [{name: r, match: {prefix: /}, rules: [{pool: p}]}, {name: r, match: {prefix: /x}, rules: [{pool: p}]}]\n",
			[]string{`2|pools[1].name|duplicate pool name "p"`, `3|routes[1].name|duplicate route name "r"`, `3|routes[1].match|never used`}},
		{"ports and addresses", "listeners: [{name: l, address: nowhere, port: 70000}]\nserver: {grpc: '127.0.0.1:0', admin: 'x:1'}\npools: [{name: p, max_concurrency: 0, runners: [{address: 'localhost:1'}, {address: '10.0.0.1:80'}, {address: '10.0.0.1:80'}]}]\nroutes: [{name: r, match: {prefix: /}, rules: [{pool: p}]}]\n",
			[]string{`1|listeners[0].address|not an IP address`, `1|listeners[0].port|out of range`, `2|server.grpc|port must be 1-65535`, `2|server.admin|not an IP address`,
				`3|pools[0].max_concurrency|must be at least 1`, `3|pools[0].runners[0].address|must be ip:port`, `3|pools[0].runners[2].address|listed twice`}},
		{"CEL compile and type", head + "routes:\n- name: r\n  match: {prefix: /}\n  hint_from: 'size(path) > 1'\n  rules:\n  - when: 'body.width *'\n    pool: p\n  - when: 'path + \"x\"'\n    pool: q\n  - pool: p\n",
			[]string{`6|routes[0].hint_from|has type bool, want string`, `8|routes[0].rules[0].when|invalid expression`, `10|routes[0].rules[1].when|has type string, want bool`}},
		{"type errors keep going", head + "routes: [{name: r, match: {prefix: /}, timeout: soon, rules: [{pool: p}]}]\nhints: {request_headers: X-Bad}\n",
			[]string{`3|routes[0].timeout|invalid duration "soon"`, `4|hints.request_headers|cannot unmarshal`}},
		{"reserved and invalid header names", head + "hints: {request_headers: [x-switchyard-pool, 'Bad Header']}\nroutes: [{name: r, match: {prefix: /}, rules: [{pool: p}]}]\n",
			[]string{`3|hints.request_headers[0]|reserved`, `3|hints.request_headers[1]|lower-case HTTP token`}},
		{"fallback checks", head + "routes: [{name: r, match: {prefix: /}, rules: [{pool: p, fallback: [p, zz, q, q]}]}]\n",
			[]string{`3|routes[0].rules[0].fallback[0]|its own fallback`, `3|routes[0].rules[0].fallback[1]|unknown pool`, `3|routes[0].rules[0].fallback[3]|listed twice`}},
		{"route match and listeners", head + "routes: [{name: r, match: {prefix: x}, listeners: [nope], rules: [{pool: p}]}, {name: s, match: {}, rules: [{pool: p}]}]\n",
			[]string{`3|routes[0].match.prefix|must start with /`, `3|routes[0].listeners[0]|unknown listener`, `3|routes[1].match|exactly one of prefix or path`}},
		{"limits and policy", head + "server: {max_body_bytes: 10}\nhints: {policy: fastest}\nroutes: [{name: r, match: {prefix: /}, rules: [{pool: p}]}]\n",
			[]string{`3|server.max_body_bytes|must be 1024 to 67108864 bytes`, `4|hints.policy|must be one of "soonest", "fal", "loading_marks"`}},
		{"load balancers", "listeners: [{name: l, address: 127.0.0.1, port: 10000}]\npools: [{name: p, load_balancer: {policy: random}}, {name: q, load_balancer: {policy: least_request, hash_balance_factor: 150}}, {name: r, load_balancer: {policy: maglev, hash_balance_factor: 50}}]\nroutes: [{name: r, match: {prefix: /}, rules: [{pool: p}]}]\n",
			[]string{`2|pools[0].load_balancer.policy|must be one of`, `2|pools[1].load_balancer.hash_balance_factor|only applies to`, `2|pools[2].load_balancer.hash_balance_factor|at least 100`}},
		{"empty file", "", []string{`0||empty file`}},
		{"syntax error", "pools: [\n", []string{`1||did not find expected node content`}},
		{"unknown key beside missing sections", "pools: [{name: a, colr: x}]\n",
			[]string{`1|pools[0].colr|unknown field`, `1|listeners|at least one listener`, `1|routes|at least one route`}},
		{"nothing defined", "server: {}\n", []string{`1|listeners|at least one listener`, `1|pools|at least one pool`, `1|routes|at least one route`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := config.Parse("sy.yaml", []byte(tt.yaml))
			var cerr *config.Error
			if !errors.As(err, &cerr) {
				t.Fatalf("Parse error = %v, want *config.Error", err)
			}
			var got []string
			for _, p := range cerr.Problems {
				if p.File != "sy.yaml" {
					t.Errorf("problem %v does not name the file", p)
				}
				got = append(got, p.String())
			}
			if len(cerr.Problems) != len(tt.want) {
				t.Errorf("got %d problems, want %d:\n%s", len(cerr.Problems), len(tt.want), strings.Join(got, "\n"))
			}
			for _, w := range tt.want {
				parts := strings.SplitN(w, "|", 3)
				found := false
				for _, p := range cerr.Problems {
					if strconv.Itoa(p.Line) == parts[0] && p.Field == parts[1] && strings.Contains(p.Msg, parts[2]) {
						found = true
					}
				}
				if !found {
					t.Errorf("missing problem %q in:\n%s", w, strings.Join(got, "\n"))
				}
			}
		})
	}
}

func TestTLSFilesResolvedAgainstConfigDir(t *testing.T) {
	_, err := config.Parse("testdata/tls.yaml", []byte(`
listeners: [{name: l, address: 127.0.0.1, port: 10000, tls: {cert_file: design.yaml, key_file: missing.key}}]
pools: [{name: p}]
routes: [{name: r, match: {prefix: /}, rules: [{pool: p}]}]
`))
	var cerr *config.Error
	if !errors.As(err, &cerr) || len(cerr.Problems) != 1 || cerr.Problems[0].Field != "listeners[0].tls.key_file" {
		t.Fatalf("want one problem for the missing key file, got %v", err)
	}
}

func TestBodyPaths(t *testing.T) {
	tests := []struct {
		expr  string
		paths string // paths joined with ";", fields with "."
		whole bool
	}{
		{`body.width * body.height <= 1048576`, "height;width", false},
		{`body.input.image_url.startsWith("data:") && has(body.input.seed)`, "input.image_url;input.seed", false},
		{`body["model-name"] == "x" || body.model == "y"`, "model;model-name", false},
		{`size(body) > 2`, "", true},
		{`body[headers["x-field"]] == 1`, "", true},
		{`body.loras.exists(l, l.scale > 0.5)`, "loras", false},
		{`[1, 2].exists(body, body > 1)`, "", false},
		{`body.sizes.exists(body, body > 1)`, "sizes", false},
		{`headers["x-tier"] == "big"`, "", false},
	}
	for _, tt := range tests {
		cfg, err := config.Parse("t.yaml", []byte(`
listeners: [{name: l, address: 127.0.0.1, port: 10000}]
pools: [{name: p}]
routes: [{name: r, match: {prefix: /}, rules: [{when: '`+tt.expr+`', pool: p}, {pool: p}]}]
`))
		if err != nil {
			t.Fatalf("%s: %v", tt.expr, err)
		}
		e := cfg.Routes[0].Rules[0].When
		var got []string
		for _, p := range e.BodyPaths {
			got = append(got, strings.Join(p, "."))
		}
		if strings.Join(got, ";") != tt.paths || e.WholeBody != tt.whole {
			t.Errorf("%s: paths %q whole %v, want %q whole %v", tt.expr, strings.Join(got, ";"), e.WholeBody, tt.paths, tt.whole)
		}
		if want := tt.paths != "" || tt.whole; e.UsesBody != want {
			t.Errorf("%s: UsesBody = %v, want %v", tt.expr, e.UsesBody, want)
		}
	}
}
