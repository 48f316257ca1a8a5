package admin_test

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchyard/switchyard/internal/admin"
	"github.com/switchyard/switchyard/internal/config"
	"github.com/switchyard/switchyard/internal/mtls"
	"github.com/switchyard/switchyard/internal/registry"
	"github.com/switchyard/switchyard/internal/testutil/certs"
)

// Over HTTPS (server.admin_tls) with admin_auth.client_certificates, a
// client certificate of the configured CA changes routing without a token;
// no certificate needs a token as before; another CA's certificate gets
// nothing.
func TestAdminClientCertificates(t *testing.T) {
	dir := t.TempDir()
	ca := certs.NewCA(t, dir, "clients-ca")
	ca.Issue(t, dir, "switchyard-admin") // the admin port's certificate
	runnerCert := ca.Issue(t, dir, "runner")
	rogue := certs.NewCA(t, dir, "rogue-ca").Issue(t, dir, "rogue")
	os.WriteFile(filepath.Join(dir, "runner.token"), []byte(writeToken), 0o600)
	cfg, err := config.Parse(filepath.Join(dir, "switchyard.yaml"), []byte(`
listeners: [{name: l, address: 127.0.0.1, port: 10000}]
server:
  admin_tls: {cert_file: switchyard-admin.crt, key_file: switchyard-admin.key, client_ca_file: clients-ca.crt}
  admin_auth: {token_files: [runner.token], client_certificates: true}
pools: [{name: a}]
routes: [{name: r, match: {prefix: /}, rules: [{pool: a}]}]
`))
	if err != nil {
		t.Fatal(err)
	}
	runners := registry.New(registry.Options{})
	runners.ApplyConfig(cfg)
	reg := prometheus.NewRegistry()
	srv := httptest.NewUnstartedServer(admin.Handler(admin.Options{
		Runners: runners, Config: func() *config.Config { return cfg }, Ready: func() bool { return true },
		XDS: func() any { return nil }, Gatherer: reg, Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Metrics: admin.NewMetrics(reg),
	}))
	files, err := mtls.NewAdmin(cfg.Server.AdminTLS)
	if err != nil {
		t.Fatal(err)
	}
	srv.TLS = files.ServerConfig()
	srv.StartTLS()
	defer srv.Close()

	pool := x509.NewCertPool()
	pem, _ := os.ReadFile(ca.File)
	pool.AppendCertsFromPEM(pem)
	client := func(cert *certs.Leaf) *http.Client {
		c := &tls.Config{RootCAs: pool}
		if cert != nil {
			pair, err := tls.LoadX509KeyPair(cert.CertFile, cert.KeyFile)
			if err != nil {
				t.Fatal(err)
			}
			c.Certificates = []tls.Certificate{pair}
		}
		return &http.Client{Transport: &http.Transport{TLSClientConfig: c}}
	}
	put := func(c *http.Client, token string) (int, error) {
		req, _ := http.NewRequest(http.MethodPut, srv.URL+"/v1/pools/a/runners/127.0.0.1:9001", nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := c.Do(req)
		if err != nil {
			return 0, err
		}
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	if got, err := put(client(nil), ""); err != nil || got != http.StatusUnauthorized {
		t.Errorf("no certificate, no token: %d %v, want 401", got, err)
	}
	if got, err := put(client(nil), writeToken); err != nil || got != http.StatusOK {
		t.Errorf("no certificate, the token: %d %v, want 200", got, err)
	}
	if got, err := put(client(&runnerCert), ""); err != nil || got != http.StatusOK {
		t.Errorf("the CA's client certificate: %d %v, want 200", got, err)
	}
	// Go's client offers no certificate the server's CA list does not name;
	// either way, another CA's certificate changes nothing.
	if got, err := put(client(&rogue), ""); err == nil && got != http.StatusUnauthorized {
		t.Errorf("another CA's certificate: %d, want 401 or the handshake refused", got)
	}
	resp, err := client(nil).Get(srv.URL + "/healthz")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("healthz over HTTPS: %v %v", resp, err)
	}
	resp.Body.Close()
}
