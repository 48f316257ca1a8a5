// Package mtls owns switchyard's side of mutual TLS on the gRPC port
// (server.grpc_tls): the server's TLS configuration, which requires a
// client certificate that chains to the configured CA, and re-reads the
// certificate, key and CA files whenever they change on disk, so a rotated
// certificate is served from the next connection on without a restart.
// Envoy's side (its client certificate, the CA it trusts) is in the
// generated bootstrap (package envoy) and the ext_proc cluster (package
// translate).
//
// In the code map (README):
//
//	Envoy ──(gRPC over mutual TLS)──▶ server (ADS, ext_proc, access log)
package mtls

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/switchyard/switchyard/internal/config"
)

// Files serves a tls.Config for the gRPC port from files, re-read when any
// of them changes (checked at each new connection; Envoy keeps its
// connections, so that is rare).
type Files struct {
	cert, key, ca string

	mu      sync.Mutex
	stamp   [3]time.Time
	current *tls.Config
	lastErr error
}

// New reads the files once; a problem with them is an error here, and
// later (a bad file written during a rotation) keeps the last good ones.
func New(t *config.GRPCTLS) (*Files, error) {
	f := &Files{cert: t.CertFile, key: t.KeyFile, ca: t.ClientCAFile}
	if _, err := f.config(); err != nil {
		return nil, err
	}
	return f, nil
}

// ServerConfig is the tls.Config to serve with: every connection gets the
// current files' certificate and CA.
func (f *Files) ServerConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			return f.config()
		},
	}
}

// LastError is the last problem re-reading the files (nil when the files
// in use are the ones on disk).
func (f *Files) LastError() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.lastErr
}

func (f *Files) config() (*tls.Config, error) {
	var stamp [3]time.Time
	for i, p := range []string{f.cert, f.key, f.ca} {
		st, err := os.Stat(p)
		if err != nil {
			return f.keep(fmt.Errorf("mtls: %w", err))
		}
		stamp[i] = st.ModTime()
	}
	f.mu.Lock()
	if f.current != nil && stamp == f.stamp {
		c := f.current
		f.mu.Unlock()
		return c, nil
	}
	f.mu.Unlock()

	pair, err := tls.LoadX509KeyPair(f.cert, f.key)
	if err != nil {
		return f.keep(fmt.Errorf("mtls: %s, %s: %w", f.cert, f.key, err))
	}
	pem, err := os.ReadFile(f.ca)
	if err != nil {
		return f.keep(fmt.Errorf("mtls: %w", err))
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return f.keep(fmt.Errorf("mtls: %s: no PEM certificate", f.ca))
	}
	c := &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{pair},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    pool,
		// gRPC runs over HTTP/2.
		NextProtos: []string{"h2"},
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.current, f.stamp, f.lastErr = c, stamp, nil
	return c, nil
}

// keep returns the last good configuration after a failed re-read, or the
// error when there is none.
func (f *Files) keep(err error) (*tls.Config, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lastErr = err
	if f.current != nil {
		return f.current, nil
	}
	return nil, err
}
