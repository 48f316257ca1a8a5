package envoy_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/envoy"
)

func TestFindHonoursEnvoyBin(t *testing.T) {
	dir := t.TempDir()
	fake := filepath.Join(dir, "my-envoy")
	if err := os.WriteFile(fake, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv(envoy.EnvVar, fake)
	got, err := envoy.Find()
	if err != nil || got != fake {
		t.Fatalf("Find() = %q, %v; want %q", got, err, fake)
	}

	// A wrong ENVOY_BIN is an error, not a silent fallback.
	t.Setenv(envoy.EnvVar, filepath.Join(dir, "missing"))
	if _, err := envoy.Find(); err == nil || !strings.Contains(err.Error(), "ENVOY_BIN") {
		t.Fatalf("missing ENVOY_BIN: err = %v", err)
	}
	notExec := filepath.Join(dir, "not-exec")
	if err := os.WriteFile(notExec, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv(envoy.EnvVar, notExec)
	if _, err := envoy.Find(); err == nil || !strings.Contains(err.Error(), "not executable") {
		t.Fatalf("non-executable ENVOY_BIN: err = %v", err)
	}
}

func TestFindVenvAndError(t *testing.T) {
	// A fake project: .venv with the wheel's layout, searched from a subdir.
	root := t.TempDir()
	real := filepath.Join(root, ".venv", "lib", "python3.12", "site-packages", "envoy", "_bin", "envoy")
	wrapper := filepath.Join(root, ".venv", "bin", "envoy")
	for _, p := range []string{real, wrapper} {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	sub := filepath.Join(root, "a", "b")
	if err := os.MkdirAll(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Chdir(sub)
	t.Setenv(envoy.EnvVar, "")
	t.Setenv("PATH", t.TempDir())

	if got, err := envoy.Find(); err != nil || got != real {
		t.Fatalf("Find() = %q, %v; want the real binary %q", got, err, real)
	}
	if err := os.Remove(real); err != nil {
		t.Fatal(err)
	}
	if got, err := envoy.Find(); err != nil || got != wrapper {
		t.Fatalf("Find() = %q, %v; want the wrapper %q", got, err, wrapper)
	}
	if err := os.Remove(wrapper); err != nil {
		t.Fatal(err)
	}
	_, err := envoy.Find()
	if err == nil {
		t.Fatal("Find() found an Envoy in an empty environment")
	}
	for _, want := range []string{"make envoy", "ENVOY_BIN", filepath.Join(root, ".venv"), "PATH"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}
