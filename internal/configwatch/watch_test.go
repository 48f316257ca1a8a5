package configwatch_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/config"
	"github.com/switchyard/switchyard/internal/configwatch"
)

func configWithPool(pool string) string {
	return "listeners: [{name: l, address: 127.0.0.1, port: 10000}]\npools: [{name: " + pool + "}]\nroutes: [{name: r, match: {prefix: /}, rules: [{pool: " + pool + "}]}]\n"
}

// writeAtomic replaces path the way editors and config tools do.
func writeAtomic(t *testing.T, path, content string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func TestWatchSeesEditsRenamesAndSymlinkSwaps(t *testing.T) {
	dir := t.TempDir()
	// The watched path is a symlink to a versioned file, as with a
	// Kubernetes ConfigMap volume.
	path := filepath.Join(dir, "switchyard.yaml")
	if err := os.WriteFile(filepath.Join(dir, "v1.yaml"), []byte(configWithPool("one")), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("v1.yaml", path); err != nil {
		t.Fatal(err)
	}
	loads, errs := make(chan *config.Config, 10), make(chan error, 10)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() {
		done <- configwatch.Watch(ctx, configwatch.Options{
			Path:    path,
			Log:     slog.New(slog.NewTextHandler(io.Discard, nil)),
			OnLoad:  func(c *config.Config) { loads <- c },
			OnError: func(err error) { errs <- err },
		})
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	time.Sleep(50 * time.Millisecond) // let the watch start

	expectPool := func(want string) {
		t.Helper()
		select {
		case c := <-loads:
			if c.Pools[0].Name != want {
				t.Fatalf("loaded pool %q, want %q", c.Pools[0].Name, want)
			}
		case err := <-errs:
			t.Fatalf("unexpected error: %v", err)
		case <-time.After(5 * time.Second):
			t.Fatalf("no reload for pool %q", want)
		}
	}

	// Symlink swap to a new version.
	if err := os.WriteFile(filepath.Join(dir, "v2.yaml"), []byte(configWithPool("two")), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("v2.yaml", filepath.Join(dir, "next")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(dir, "next"), path); err != nil {
		t.Fatal(err)
	}
	expectPool("two")

	// An invalid edit is reported, not loaded.
	writeAtomic(t, path, "pools: [{name: x, colour: red}]\n")
	select {
	case err := <-errs:
		var cerr *config.Error
		if !errors.As(err, &cerr) {
			t.Fatalf("error %v is not a *config.Error", err)
		}
	case c := <-loads:
		t.Fatalf("invalid file loaded: %+v", c)
	case <-time.After(5 * time.Second):
		t.Fatal("invalid edit not reported")
	}

	// An in-place write after that is loaded.
	if err := os.WriteFile(path, []byte(configWithPool("three")), 0o644); err != nil {
		t.Fatal(err)
	}
	expectPool("three")
}
