// Package mtls owns switchyard's side of TLS on its ports: on the gRPC port
// (server.grpc_tls) mutual TLS that requires a client certificate of the
// configured CA; on the admin port (server.admin_tls) HTTPS that verifies a
// client certificate when one is given. Either way the certificate, key and
// CA files are re-read whenever they change on disk, so a rotated
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

// Files serves a tls.Config from files, re-read when any of them changes
// (checked at each new connection).
type Files struct {
	cert, key, ca string
	auth          tls.ClientAuthType

	mu      sync.Mutex
	stamp   [3]time.Time
	current *tls.Config
	lastErr error
}

// New is the gRPC port's mutual TLS: a client certificate of the CA is
// required. It reads the files once; a problem with them is an error here,
// and later (a bad file written during a rotation) keeps the last good ones.
func New(t *config.GRPCTLS) (*Files, error) {
	return load(&Files{cert: t.CertFile, key: t.KeyFile, ca: t.ClientCAFile, auth: tls.RequireAndVerifyClientCert})
}

// NewAdmin is the admin port's HTTPS: with a client CA, a client
// certificate is verified when the client gives one (and then may stand
// for a write token: server.admin_auth.client_certificates).
func NewAdmin(t *config.AdminTLS) (*Files, error) {
	f := &Files{cert: t.CertFile, key: t.KeyFile, ca: t.ClientCAFile, auth: tls.NoClientCert}
	if f.ca != "" {
		f.auth = tls.VerifyClientCertIfGiven
	}
	return load(f)
}

func load(f *Files) (*Files, error) {
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
		if p == "" {
			continue
		}
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
	c := &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{pair},
		ClientAuth:   f.auth,
		// gRPC runs over HTTP/2; the admin API over either.
		NextProtos: []string{"h2", "http/1.1"},
	}
	if f.ca != "" {
		pem, err := os.ReadFile(f.ca)
		if err != nil {
			return f.keep(fmt.Errorf("mtls: %w", err))
		}
		c.ClientCAs = x509.NewCertPool()
		if !c.ClientCAs.AppendCertsFromPEM(pem) {
			return f.keep(fmt.Errorf("mtls: %s: no PEM certificate", f.ca))
		}
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
