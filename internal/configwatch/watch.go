// Package configwatch reloads the config file when it changes on disk. It
// watches the file's directory, not the file, so an editor's atomic rename
// or a Kubernetes-style symlink swap is seen too. A file that fails to load
// is reported and skipped: the caller keeps serving its last good config.
//
// In the code map (README):
//
//	config file changes ─▶ configwatch ─▶ server (swaps the config, republishes)
package configwatch

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/switchyard/switchyard/internal/config"
)

// Settle is how long the directory must be quiet before the file is read,
// so that an editor's write-then-rename is read once, complete.
const Settle = 100 * time.Millisecond

// Options configure Watch.
type Options struct {
	Path string
	Log  *slog.Logger
	// OnLoad is called with each new valid config, in order.
	OnLoad func(*config.Config)
	// OnError is called when a changed file does not load; the error is an
	// *config.Error for an invalid file.
	OnError func(error)
}

// Watch blocks until ctx ends, calling OnLoad for each valid change of the
// file's content and OnError for each invalid one.
func Watch(ctx context.Context, o Options) error {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return err
	}
	defer w.Close()
	dir := filepath.Dir(o.Path)
	if err := w.Add(dir); err != nil {
		return fmt.Errorf("watch %s: %w", dir, err)
	}
	last, _ := os.ReadFile(o.Path)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case err, ok := <-w.Errors:
			if !ok {
				return errors.New("config watcher closed")
			}
			o.Log.Warn("config watch error", "error", err)
		case _, ok := <-w.Events:
			if !ok {
				return errors.New("config watcher closed")
			}
			// Any event in the directory may be ours (a symlink swap changes
			// a sibling); the content comparison below filters the rest.
			timer.Reset(Settle)
		case <-timer.C:
			data, err := os.ReadFile(o.Path)
			if err != nil {
				if !errors.Is(err, os.ErrNotExist) || last != nil {
					o.OnError(err)
				}
				last = nil
				continue
			}
			if bytes.Equal(data, last) {
				continue
			}
			last = data
			cfg, err := config.Parse(o.Path, data)
			if err != nil {
				o.OnError(err)
				continue
			}
			o.OnLoad(cfg)
		}
	}
}
