package deploy

// The Dockerfile, read by BuildKit's own parser: a pinned Go release
// matching go.mod builds a static binary, and the final image holds only
// that binary, run as a numeric non-root user.

import (
	"bytes"
	"fmt"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/distribution/reference"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/linter"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/buildkit/frontend/dockerfile/shell"
)

// dockerfile is the parsed Dockerfile.
type dockerfile struct {
	stages   []instructions.Stage
	escape   rune     // the escape token, for splitting RUN lines into words
	warnings []string // the parser's and BuildKit's build checks'
}

// loadDockerfile parses the Dockerfile into stages of typed instructions,
// as `docker build` does, running the build checks the parser runs.
func loadDockerfile(t *testing.T) dockerfile {
	t.Helper()
	res, err := parser.Parse(bytes.NewReader(readRepoFile(t, "Dockerfile")))
	if err != nil {
		t.Fatalf("Dockerfile: %v", err)
	}
	d := dockerfile{escape: res.EscapeToken}
	for _, w := range res.Warnings {
		d.warnings = append(d.warnings, w.Short)
	}
	lint := linter.New(&linter.Config{Warn: func(rule, _, _, msg string, loc []parser.Range) {
		d.warnings = append(d.warnings, fmt.Sprintf("line %d: %s: %s", line(loc), rule, msg))
	}})
	if d.stages, _, err = instructions.Parse(res.AST, lint); err != nil {
		t.Fatalf("Dockerfile: %v", err)
	}
	return d
}

// line is the first line of a location, for messages.
func line(loc []parser.Range) int {
	if len(loc) == 0 {
		return 0
	}
	return loc[0].Start.Line
}

// finalStage is the last stage and the earlier one it copies the binary
// from, with that COPY.
func (d dockerfile) finalStage(t *testing.T) (final, builder *instructions.Stage, copyBin *instructions.CopyCommand) {
	t.Helper()
	if len(d.stages) < 2 {
		t.Fatalf("%d stages, want a build stage and a final one", len(d.stages))
	}
	final = &d.stages[len(d.stages)-1]
	var copies []*instructions.CopyCommand
	for _, c := range final.Commands {
		if c, ok := c.(*instructions.CopyCommand); ok {
			copies = append(copies, c)
		}
	}
	if len(copies) != 1 {
		t.Fatalf("final stage has %d COPY instructions, want 1 (the binary)", len(copies))
	}
	copyBin = copies[0]
	if copyBin.From == "" || len(copyBin.SourcePaths) != 1 || len(copyBin.SourceContents) != 0 {
		t.Fatalf("line %d: %s: want COPY --from=STAGE SRC DST", line(copyBin.Location()), copyBin)
	}
	for i := range d.stages[:len(d.stages)-1] {
		if d.stages[i].Name != "" && strings.EqualFold(d.stages[i].Name, copyBin.From) {
			builder = &d.stages[i]
		}
	}
	if builder == nil {
		t.Fatalf("final stage copies from %q, which is no earlier stage", copyBin.From)
	}
	return final, builder, copyBin
}

// goBuild is the builder stage's `RUN … go build …`, split into words as
// the shell would: the environment assignments before `go` and the
// arguments after `go build`, with the stage's ARGs expanded (the
// platform ones set to this machine's, as BuildKit sets them for a native
// build).
type goBuild struct {
	run  *instructions.RunCommand
	env  []string // NAME=VALUE
	args []string
}

// assignment is a shell word that sets a variable for the command after it.
var assignment = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*=`)

func (d dockerfile) goBuild(t *testing.T, builder *instructions.Stage) goBuild {
	t.Helper()
	platform := map[string]string{
		"TARGETOS": runtime.GOOS, "TARGETARCH": runtime.GOARCH, "TARGETPLATFORM": runtime.GOOS + "/" + runtime.GOARCH,
		"BUILDOS": runtime.GOOS, "BUILDARCH": runtime.GOARCH, "BUILDPLATFORM": runtime.GOOS + "/" + runtime.GOARCH,
	}
	var args []string // the stage's ARGs so far, NAME=VALUE
	lex := shell.NewLex(d.escape)
	var found []goBuild
	for _, c := range builder.Commands {
		switch c := c.(type) {
		case *instructions.ArgCommand:
			for _, kv := range c.Args {
				v, ok := platform[kv.Key]
				if !ok && kv.Value != nil {
					v = *kv.Value
				}
				args = append(args, kv.Key+"="+v)
			}
		case *instructions.RunCommand:
			words, err := lex.ProcessWords(strings.Join(c.CmdLine, " "), shell.EnvsFromSlice(args))
			if err != nil {
				t.Fatalf("line %d: RUN %s: %v", line(c.Location()), c.CmdLine, err)
			}
			i := slices.Index(words, "go")
			if i < 0 || i+1 >= len(words) || words[i+1] != "build" {
				continue
			}
			b := goBuild{run: c}
			for j := i - 1; j >= 0 && assignment.MatchString(words[j]); j-- {
				b.env = append([]string{words[j]}, b.env...)
			}
			for _, w := range words[i+2:] {
				if slices.Contains([]string{"&&", "||", ";", "|"}, w) {
					break
				}
				b.args = append(b.args, w)
			}
			found = append(found, b)
		}
	}
	if len(found) != 1 {
		t.Fatalf("stage %s has %d RUN … go build, want 1", builder.Name, len(found))
	}
	return found[0]
}

// flag returns the value of a go build flag (-name v or -name=v).
func (b goBuild) flag(name string) (string, bool) {
	for i, a := range b.args {
		if a == "-"+name && i+1 < len(b.args) {
			return b.args[i+1], true
		}
		if v, ok := strings.CutPrefix(a, "-"+name+"="); ok {
			return v, true
		}
	}
	return "", false
}

func TestDockerfileStages(t *testing.T) {
	d := loadDockerfile(t)
	for _, w := range d.warnings {
		t.Errorf("Dockerfile: %s", w)
	}
	if len(d.stages) < 2 {
		t.Fatalf("%d stages, want a build stage and a final one", len(d.stages))
	}
	for _, s := range d.stages {
		host, err := registryHost(s.BaseName)
		if err != nil {
			t.Errorf("line %d: FROM %s: %v", line(s.Location), s.BaseName, err)
		} else if host != "" {
			t.Errorf("line %d: FROM %s names a registry host %q", line(s.Location), s.BaseName, host)
		}
	}
}

func TestDockerfileFinalStageHoldsOnlyTheBinary(t *testing.T) {
	// The final stage: only the binary, as a numeric non-root user.
	d := loadDockerfile(t)
	final, _, copyBin := d.finalStage(t)
	if final.BaseName != "scratch" {
		t.Errorf("final stage FROM %s, want scratch (just the static binary)", final.BaseName)
	}
	var users []*instructions.UserCommand
	var entrypoints []*instructions.EntrypointCommand
	for _, c := range final.Commands {
		switch c := c.(type) {
		case *instructions.UserCommand:
			users = append(users, c)
		case *instructions.EntrypointCommand:
			entrypoints = append(entrypoints, c)
		case *instructions.AddCommand, *instructions.RunCommand:
			t.Errorf("line %d: %s in the final stage; it holds only the binary", line(c.Location()), strings.ToUpper(c.Name()))
		}
	}
	dst := copyBin.DestPath
	if dst != "/switchyard" {
		t.Errorf("the binary is copied to %s, want /switchyard", dst)
	}
	if len(users) != 1 {
		t.Errorf("final stage has %d USER instructions, want 1", len(users))
	} else if m := regexp.MustCompile(`^(\d+)(?::(\d+))?$`).FindStringSubmatch(users[0].User); m == nil || m[1] == "0" || m[2] == "0" {
		t.Errorf("USER %s, want a numeric non-root uid[:gid] (scratch has no /etc/passwd)", users[0].User)
	}
	if len(entrypoints) != 1 {
		t.Errorf("final stage has %d ENTRYPOINTs, want 1", len(entrypoints))
	} else if ep := entrypoints[0]; ep.PrependShell || !slices.Equal(ep.CmdLine, []string{dst}) {
		t.Errorf(`%s, want ENTRYPOINT ["%s"] (exec form: scratch has no shell)`, ep, dst)
	}
}

func TestDockerfileGoVersionMatchesGoMod(t *testing.T) {
	// The build stage: the official golang image pinned to the release of
	// go.mod's go directive.
	d := loadDockerfile(t)
	_, builder, _ := d.finalStage(t)
	named, err := reference.ParseNormalizedNamed(builder.BaseName)
	if err != nil {
		t.Fatalf("build stage FROM %s: %v", builder.BaseName, err)
	}
	tag := ""
	if tagged, ok := named.(reference.Tagged); ok {
		tag = tagged.Tag()
	}
	m := regexp.MustCompile(`^(\d+)\.(\d+)\.(\d+)(?:-[a-z0-9.]+)?$`).FindStringSubmatch(tag)
	if reference.FamiliarName(named) != "golang" || m == nil {
		t.Fatalf("build stage FROM %s, want the official golang image pinned to a release, golang:X.Y.Z[-variant]", builder.BaseName)
	}
	if goMod := goDirective(t); m[1]+"."+m[2] != goMod {
		t.Errorf("build stage uses Go %s.%s, go.mod says go %s", m[1], m[2], goMod)
	}
}

func TestDockerfileBuildsAStaticBinary(t *testing.T) {
	d := loadDockerfile(t)
	_, builder, copyBin := d.finalStage(t)
	b := d.goBuild(t, builder)
	at := fmt.Sprintf("line %d: the go build", line(b.run.Location()))
	if !slices.Contains(b.env, "CGO_ENABLED=0") {
		t.Errorf("%s does not set CGO_ENABLED=0: %s", at, b.run)
	}
	if !slices.Contains(b.args, "-trimpath") {
		t.Errorf("%s lacks -trimpath: %s", at, b.run)
	}
	if v, _ := b.flag("ldflags"); v != "-s -w" {
		t.Errorf(`%s has -ldflags %q, want "-s -w": %s`, at, v, b.run)
	}
	if v, _ := b.flag("o"); v != copyBin.SourcePaths[0] {
		t.Errorf("%s writes -o %q, but the final stage copies %s: %s", at, v, copyBin.SourcePaths[0], b.run)
	}
	if !slices.Contains(b.args, "./cmd/switchyard") {
		t.Errorf("%s does not build ./cmd/switchyard: %s", at, b.run)
	}
}
