// Package natsserver runs a NATS server with JetStream inside the process,
// on a loopback port: the shared state of several local edges (`switchyard
// up --edges N`) and of the tests. Production points at a NATS cluster of
// its own instead.
//
// In the code map (README), dev tooling:
//
//	edge 1, edge 2, … (switchyard) ──▶ natsserver (embedded NATS JetStream)
package natsserver

import (
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// Server is a running embedded NATS server.
type Server struct {
	srv *server.Server
}

// Options configure Start.
type Options struct {
	// StoreDir holds JetStream's files; a server started again on the same
	// directory keeps its buckets.
	StoreDir string
	// Port is the client port on 127.0.0.1; 0 picks a free one.
	Port int
}

// Start runs a server and returns once it accepts clients.
func Start(o Options) (*Server, error) {
	port := o.Port
	if port == 0 {
		port = server.RANDOM_PORT
	}
	srv, err := server.NewServer(&server.Options{
		ServerName: "switchyard-local",
		Host:       "127.0.0.1",
		Port:       port,
		JetStream:  true,
		StoreDir:   o.StoreDir,
		NoSigs:     true,
		NoLog:      true,
	})
	if err != nil {
		return nil, fmt.Errorf("nats: %w", err)
	}
	srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		srv.Shutdown()
		return nil, errors.New("nats: not ready after 10s")
	}
	return &Server{srv: srv}, nil
}

// URL is where clients connect: nats://127.0.0.1:PORT.
func (s *Server) URL() string { return s.srv.ClientURL() }

// Stop shuts the server down and waits until it has.
func (s *Server) Stop() {
	s.srv.Shutdown()
	s.srv.WaitForShutdown()
}
