package integration

import (
	"context"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/dev/simrunner"
)

// TestRunner is a simulated runner on a loopback port, serving in-process
// so a test reads its counters directly.
type TestRunner struct {
	*simrunner.Runner
	Addr string
	srv  *http.Server
}

// StartRunner serves a simulated runner named name on a free port.
func StartRunner(t *testing.T, name string, o simrunner.Options) *TestRunner {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	o.Name = name
	r := &TestRunner{Runner: simrunner.New(o), Addr: lis.Addr().String()}
	r.srv = &http.Server{Handler: r.Runner, ReadHeaderTimeout: 10 * time.Second}
	go r.srv.Serve(lis)
	t.Cleanup(r.Stop)
	return r
}

// Stop closes the runner's listener and connections at once, like a crash.
func (r *TestRunner) Stop() { _ = r.srv.Close() }

// Shutdown stops accepting and lets in-flight requests finish.
func (r *TestRunner) Shutdown() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = r.srv.Shutdown(ctx)
}

// Requests is how many requests reached the runner.
func (r *TestRunner) Requests() int64 { return r.Stats().Requests }
