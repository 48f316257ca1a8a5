package deploy

// The build context: what .dockerignore leaves of the checkout, matched by
// the library Docker uses, must hold everything the Dockerfile's go build
// reads. integration/deploy itself stays in the context: it is a module of
// its own, which `go build ./cmd/switchyard` ignores, as
// TestDockerBuildContextBuilds shows by running that build on the context.

import (
	"bytes"
	"context"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
)

// loadDockerignore reads .dockerignore as `docker build` does.
func loadDockerignore(t *testing.T) *patternmatcher.PatternMatcher {
	t.Helper()
	patterns, err := ignorefile.ReadAll(bytes.NewReader(readRepoFile(t, ".dockerignore")))
	if err != nil {
		t.Fatalf(".dockerignore: %v", err)
	}
	pm, err := patternmatcher.New(patterns)
	if err != nil {
		t.Fatalf(".dockerignore: %v", err)
	}
	return pm
}

// excludes says whether the file p (slash-separated, from the context
// root) is left out of the build context.
func excludes(t *testing.T, pm *patternmatcher.PatternMatcher, p string) bool {
	t.Helper()
	out, err := pm.MatchesOrParentMatches(p)
	if err != nil {
		t.Fatalf(".dockerignore against %s: %v", p, err)
	}
	return out
}

// buildEnv is the environment of the Dockerfile's go build: this one's,
// without settings the golang image does not have, and the RUN line's
// assignments.
func buildEnv(b goBuild) []string {
	return append(os.Environ(), append([]string{"GOFLAGS=", "GOWORK="}, b.env...)...)
}

func TestDockerignoreExcludesLocalState(t *testing.T) {
	pm := loadDockerignore(t)
	for _, p := range []string{".git/config", ".venv/bin/envoy", "bin/switchyard"} {
		if !excludes(t, pm, p) {
			t.Errorf(".dockerignore does not exclude %s", p)
		}
	}
}

func TestDockerignoreKeepsBuildInputs(t *testing.T) {
	// Every file the build reads must reach the build context: go.mod,
	// go.sum, what the build stage copies by name, and each Go and
	// embedded file of this module that the binary is built from (for the
	// platform and cgo setting of the Dockerfile's go build).
	pm := loadDockerignore(t)
	d := loadDockerfile(t)
	_, builder, _ := d.finalStage(t)
	need := []string{"go.mod", "go.sum"}
	for _, c := range builder.Commands {
		if c, ok := c.(*instructions.CopyCommand); ok && c.From == "" {
			for _, src := range c.SourcePaths {
				if src != "." {
					need = append(need, src)
				}
			}
		}
	}
	cmd := exec.Command("go", "list", "-deps", "-f",
		`{{if .Module}}{{if .Module.Main}}{{range .GoFiles}}{{$.Dir}}/{{.}}`+"\n"+`{{end}}{{range .EmbedFiles}}{{$.Dir}}/{{.}}`+"\n"+`{{end}}{{end}}{{end}}`,
		"./cmd/switchyard")
	cmd.Dir = repoRoot
	cmd.Env = buildEnv(d.goBuild(t, builder))
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
	slices.Sort(need)
	for _, p := range slices.Compact(need) {
		if excludes(t, pm, p) {
			t.Errorf(".dockerignore excludes %s, which the build needs", p)
		}
	}
}

func TestDockerBuildContextBuilds(t *testing.T) {
	// The build stage's `COPY . .` and go build, without Docker: the files
	// .dockerignore leaves, copied to a fresh directory, and the
	// Dockerfile's own go build command run there.
	d := loadDockerfile(t)
	_, builder, _ := d.finalStage(t)
	b := d.goBuild(t, builder)
	copiesAll := false
	for _, c := range builder.Commands {
		if c == b.run {
			break
		}
		if c, ok := c.(*instructions.CopyCommand); ok && c.From == "" && slices.Equal(c.SourcePaths, []string{"."}) {
			copiesAll = true
		}
	}
	if !copiesAll {
		t.Fatalf("the build stage does not COPY . before its go build; this check builds the whole context")
	}

	pm := loadDockerignore(t)
	src := filepath.Join(t.TempDir(), "src")
	n := 0
	err := filepath.WalkDir(repoRoot, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(repoRoot, p)
		if err != nil || rel == "." {
			return err
		}
		if excludes(t, pm, filepath.ToSlash(rel)) {
			if e.IsDir() && !pm.Exclusions() {
				return filepath.SkipDir
			}
			return nil
		}
		dst := filepath.Join(src, rel)
		switch {
		case e.IsDir():
			return os.MkdirAll(dst, 0o755)
		case e.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			return os.Symlink(target, dst)
		case e.Type().IsRegular():
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			info, err := e.Info()
			if err != nil {
				return err
			}
			if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
				return err
			}
			n++
			return os.WriteFile(dst, data, info.Mode().Perm())
		}
		return nil
	})
	if err != nil {
		t.Fatalf("copying the build context: %v", err)
	}
	t.Logf("build context: %d files", n)

	bin := filepath.Join(t.TempDir(), "switchyard")
	args := slices.Clone(b.args)
	for i, a := range args {
		if a == "-o" && i+1 < len(args) {
			args[i+1] = bin
		} else if strings.HasPrefix(a, "-o=") {
			args[i] = "-o=" + bin
		}
	}
	// The first run compiles the standard library for the Dockerfile's
	// flags; later ones find it in the build cache.
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", append([]string{"build"}, args...)...)
	cmd.Dir = src
	cmd.Env = buildEnv(b)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %q in the build context: %v\n%s", args, err, out)
	}
	// The image's CMD ["help"].
	if out, err := exec.Command(bin, "help").CombinedOutput(); err != nil {
		t.Errorf("the built binary's help: %v\n%s", err, out)
	}
}
