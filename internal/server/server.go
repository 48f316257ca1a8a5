// Package server is the composition root of `switchyard serve`: it builds
// the object graph of one process (build.go) and runs it (run.go).
//
//	config file ─▶ config ─▶ configwatch (reloads)
//	                 │
//	registry ◀── admin API (runners register, renew, drain)
//	   │
//	   ├─▶ translate ─▶ xds publisher ──(ADS)──▶ Envoy
//	   └─▶ policy (affinity) ◀── extproc ◀──(ext_proc)── Envoy
//
// It owns the wiring and the process's lifetime (listeners, reloads,
// rebuilding and publishing Envoy's resources when the config or the
// runners change, shutdown); every decision and every resource is made by
// the packages it wires.
package server

import (
	"context"
	"log/slog"
	"net"
	"time"
)

// Options for Run.
type Options struct {
	ConfigPath string
	Log        *slog.Logger
	// Started, when set, is called once both ports listen, with their addresses.
	Started func(grpcAddr, adminAddr net.Addr)
}

// grpcHeadroom is what an ext_proc message carries besides the body.
const grpcHeadroom = 1 << 20

// shutdownGrace bounds how long open streams get to finish on shutdown.
const shutdownGrace = 2 * time.Second

// Run builds the process and serves until ctx ends. It refuses to start on
// an invalid config.
func Run(ctx context.Context, o Options) error {
	s, err := New(o)
	if err != nil {
		return err
	}
	return s.Run(ctx)
}
