package contract_test

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/switchyard/switchyard"

// deps lists the project's packages that pkg depends on, itself included.
func deps(t *testing.T, pkg string) []string {
	t.Helper()
	out, err := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}}", module+"/"+pkg).CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps %s: %v\n%s", pkg, err, out)
	}
	var own []string
	for _, p := range strings.Fields(string(out)) {
		if p == module || strings.HasPrefix(p, module+"/") {
			own = append(own, strings.TrimPrefix(p, module+"/"))
		}
	}
	return own
}

// The seams the layout is for: both ends of the Envoy wire import the
// contract, not each other, and the translator is pure over plain input.
func TestLayering(t *testing.T) {
	tests := []struct {
		pkg       string
		forbidden []string // prefixes of packages it must not depend on
	}{
		{"internal/contract", []string{""}}, // a leaf: nothing of the project
		{"extproc", []string{"xds", "internal/registry", "internal/server"}},
		{"xds/translate", []string{"internal/registry", "internal/policy", "internal/affinity", "extproc"}},
		{"internal/policy", []string{"xds", "extproc", "internal/registry"}},
		{"internal/affinity", []string{"xds", "extproc", "internal/registry", "internal/config"}},
	}
	for _, tt := range tests {
		for _, d := range deps(t, tt.pkg) {
			if d == tt.pkg {
				continue
			}
			if slices.ContainsFunc(tt.forbidden, func(f string) bool { return f == "" || d == f || strings.HasPrefix(d, f+"/") }) {
				t.Errorf("%s depends on %s", tt.pkg, d)
			}
		}
	}
}
