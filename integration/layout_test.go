package integration

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// checkout is the repository; go test runs in integration/.
const checkout = ".."

// topLevel is what the project keeps at its top level; everything else that
// is not a public API lives under internal/.
var topLevel = []string{"bench", "cmd", "deploy", "docs", "envoy", "examples", "extproc", "integration", "internal", "xds"}

// codeMapRow is a row of the README's code map: | `folder/` | ... |
var codeMapRow = regexp.MustCompile("(?m)^\\| `([a-z0-9_/.-]+)/` \\|")

// The README's code map matches the tree: every folder it names exists,
// every Go package is under a folder it names, and the top level holds only
// what the project promises there.
func TestCodeMap(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join(checkout, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	sec := string(readme)
	start := strings.Index(sec, "\n## Code map\n")
	if start < 0 {
		t.Fatal("README.md has no Code map section")
	}
	sec = sec[start+1:]
	if end := strings.Index(sec[3:], "\n## "); end >= 0 {
		sec = sec[:end+3]
	}
	var mapped []string
	for _, m := range codeMapRow.FindAllStringSubmatch(sec, -1) {
		mapped = append(mapped, m[1])
		if fi, err := os.Stat(filepath.Join(checkout, m[1])); err != nil || !fi.IsDir() {
			t.Errorf("the code map names %s/, which is not a folder", m[1])
		}
	}
	if len(mapped) == 0 {
		t.Fatal("the code map has no rows")
	}
	covered := func(dir string) bool {
		return slices.ContainsFunc(mapped, func(m string) bool { return dir == m || strings.HasPrefix(dir, m+"/") })
	}

	out, err := exec.Command("go", "list", "-f", "{{.Dir}}", "github.com/switchyard/switchyard/...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	root, err := filepath.Abs(checkout)
	if err != nil {
		t.Fatal(err)
	}
	for _, dir := range strings.Fields(string(out)) {
		rel, err := filepath.Rel(root, dir)
		if err != nil {
			t.Fatal(err)
		}
		if !covered(filepath.ToSlash(rel)) {
			t.Errorf("package folder %s is not in the README's code map", rel)
		}
	}

	files, err := exec.Command("git", "-C", checkout, "ls-files").Output()
	if err != nil {
		t.Fatalf("git ls-files: %v", err)
	}
	seen := map[string]bool{}
	for _, f := range strings.Fields(string(files)) {
		top, _, isDir := strings.Cut(f, "/")
		if !isDir || strings.HasPrefix(top, ".") || seen[top] {
			continue
		}
		seen[top] = true
		if !slices.Contains(topLevel, top) {
			t.Errorf("top-level folder %s/ is not one the project keeps there (%v): move it under internal/", top, topLevel)
		}
		if !covered(top) && !slices.ContainsFunc(mapped, func(m string) bool { return strings.HasPrefix(m, top+"/") }) {
			t.Errorf("top-level folder %s/ is not in the README's code map", top)
		}
	}
}
