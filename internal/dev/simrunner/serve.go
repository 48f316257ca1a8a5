package simrunner

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"
)

// ShutdownGrace is how long a served runner lets in-flight requests finish
// once its context ends; then it closes their connections.
const ShutdownGrace = 5 * time.Second

// Server is a runner served on a TCP address by Serve.
type Server struct {
	Addr   net.Addr // where it listens (the real port when asked for port 0)
	Runner *Runner
	// Done receives the outcome once the server has stopped, then is
	// closed: nil after a shutdown asked for by the context.
	Done <-chan error
}

// Serve starts a runner on addr (host:port, port 0 picks one). Its name
// defaults to the address it listens on. It serves until ctx ends, then
// shuts down gracefully (see ShutdownGrace).
func Serve(ctx context.Context, addr string, o Options) (*Server, error) {
	if err := o.Validate(); err != nil {
		return nil, fmt.Errorf("simrunner: %w", err)
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("simrunner: %w", err)
	}
	if o.Name == "" {
		o.Name = ln.Addr().String()
	}
	r := New(o)
	srv := &http.Server{Handler: r, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan error, 1)
	go func() {
		defer close(done)
		served := make(chan error, 1)
		go func() { served <- srv.Serve(ln) }()
		select {
		case err := <-served:
			done <- fmt.Errorf("simrunner: %w", err)
			return
		case <-ctx.Done():
		}
		sctx, cancel := context.WithTimeout(context.Background(), ShutdownGrace)
		defer cancel()
		err := srv.Shutdown(sctx)
		if err != nil {
			_ = srv.Close()
			err = fmt.Errorf("simrunner: requests still in flight after %v, closed: %w", ShutdownGrace, err)
		}
		if serr := <-served; !errors.Is(serr, http.ErrServerClosed) {
			err = errors.Join(err, serr)
		}
		done <- err
	}()
	return &Server{Addr: ln.Addr(), Runner: r, Done: done}, nil
}
