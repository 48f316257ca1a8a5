package edgemodule

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
)

// Package is the module's main package, which `make build` builds into
// bin/libswitchyard.so.
const Package = "github.com/switchyard/switchyard/cmd/switchyard-module"

// Build builds the module from the source tree the go command runs in into
// dir/libswitchyard.so and returns its path: for tests and benchmarks,
// which must run the code they measure (the Go build cache makes a rebuild
// cheap).
func Build(ctx context.Context, dir string) (string, error) {
	out := filepath.Join(dir, "libswitchyard.so")
	cmd := exec.CommandContext(ctx, "go", "build", "-buildmode=c-shared", "-o", out, Package)
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building the Envoy module: %w\n%s", err, b)
	}
	return out, nil
}
