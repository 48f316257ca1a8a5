package integration

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"os"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/switchyard/switchyard/internal/config"
	"github.com/switchyard/switchyard/internal/dev/simrunner"
	"github.com/switchyard/switchyard/internal/testutil/certs"
)

// With server.grpc_tls, Envoy and switchyard speak mutual TLS: requests are
// decided and their ends reported as before, and a client without a
// certificate of switchyard's CA (none, plain text, another CA's) can
// neither read the config over ADS nor open an ext_proc stream. A rotated
// server certificate is served from the next connection on.
func TestMutualTLS(t *testing.T) {
	dir := t.TempDir()
	ca := certs.NewCA(t, dir, "ca")
	server := ca.Issue(t, dir, "switchyard")
	edge := ca.Issue(t, dir, "envoy")
	rogue := certs.NewCA(t, dir, "rogue-ca").Issue(t, dir, "rogue")
	envoyTLS := &config.EnvoyClientTLS{CertFile: edge.CertFile, KeyFile: edge.KeyFile, CAFile: ca.File}

	small := runnersNamed(t, simrunner.Options{}, "a100-1")
	large := runnersNamed(t, simrunner.Options{}, "h100-1")
	s := NewStack(t, StackConfig{
		Server: "grpc_tls: {cert_file: " + server.CertFile + ", key_file: " + server.KeyFile + ", client_ca_file: " + ca.File +
			", envoy: {cert_file: " + edge.CertFile + ", key_file: " + edge.KeyFile + ", ca_file: " + ca.File + "}}",
		EnvoyTLS: envoyTLS,
		Body: poolsYAML(poolSpec{name: "a100", runners: small}, poolSpec{name: "h100", runners: large}) + `
routes:
  - name: images
    match: {prefix: /}
    rules:
      - when: body.width * body.height <= 1048576
        pool: a100
      - pool: h100
`})
	for _, tt := range []struct{ body, pool string }{{`{"width": 512, "height": 512}`, "a100"}, {`{"width": 4096, "height": 4096}`, "h100"}} {
		r := s.MustDo(http.MethodPost, "/gen", nil, tt.body)
		if r.Status != http.StatusOK || r.Header.Get("x-switchyard-pool") != tt.pool || r.Header.Get("x-switchyard-hint") == "" {
			t.Fatalf("through Envoy under mTLS: status %d headers %v, want a decision for %s", r.Status, r.Header, tt.pool)
		}
	}
	s.Settle(0) // the access log reaches switchyard too

	pool := x509.NewCertPool()
	pem, _ := os.ReadFile(ca.File)
	pool.AppendCertsFromPEM(pem)
	withCert := func(l certs.Leaf) grpc.DialOption {
		pair, err := tls.LoadX509KeyPair(l.CertFile, l.KeyFile)
		if err != nil {
			t.Fatal(err)
		}
		return grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: pool, Certificates: []tls.Certificate{pair}}))
	}
	clients := []struct {
		name  string
		dial  grpc.DialOption
		allow bool
	}{
		{"plain text", grpc.WithTransportCredentials(insecure.NewCredentials()), false},
		{"TLS without a certificate", grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: pool})), false},
		{"another CA's certificate", withCert(rogue), false},
		{"Envoy's certificate", withCert(edge), true},
	}
	for _, c := range clients {
		conn, err := grpc.NewClient(s.GRPCAddr, c.dial)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		readErr := readListeners(ctx, conn)
		procErr := openExtProc(ctx, conn)
		cancel()
		conn.Close()
		if c.allow && (readErr != nil || procErr != nil) {
			t.Errorf("%s: ADS %v, ext_proc %v: want both to work", c.name, readErr, procErr)
		}
		if !c.allow && (readErr == nil || procErr == nil) {
			t.Errorf("%s: ADS error %v, ext_proc error %v: want both refused", c.name, readErr, procErr)
		}
	}

	// Rotation: a new certificate in the same files.
	before := serverSerial(t, s.GRPCAddr, pool, edge)
	rotated := ca.Issue(t, dir, "switchyard")
	Eventually(t, 5*time.Second, "the rotated certificate served", func() bool {
		return serverSerial(t, s.GRPCAddr, pool, edge) == rotated.Serial.String()
	})
	if before == rotated.Serial.String() {
		t.Fatal("the rotation did not change the certificate")
	}
	if r := s.MustDo(http.MethodPost, "/gen", nil, `{"width": 512, "height": 512}`); r.Status != http.StatusOK || r.Header.Get("x-switchyard-hint") == "" {
		t.Errorf("after the rotation: status %d headers %v", r.Status, r.Header)
	}
}

// readListeners asks for the listeners over ADS and waits for an answer.
func readListeners(ctx context.Context, conn *grpc.ClientConn) error {
	stream, err := discoveryv3.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(ctx)
	if err != nil {
		return err
	}
	if err := stream.Send(&discoveryv3.DiscoveryRequest{
		Node:    &corev3.Node{Id: "switchyard-edge"},
		TypeUrl: "type.googleapis.com/envoy.config.listener.v3.Listener",
	}); err != nil {
		return err
	}
	_, err = stream.Recv()
	return err
}

// openExtProc sends request headers on an ext_proc stream and waits for
// the answer.
func openExtProc(ctx context.Context, conn *grpc.ClientConn) error {
	stream, err := extprocv3.NewExternalProcessorClient(conn).Process(ctx)
	if err != nil {
		return err
	}
	if err := stream.Send(&extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_RequestHeaders{
		RequestHeaders: &extprocv3.HttpHeaders{Headers: &corev3.HeaderMap{}, EndOfStream: true},
	}}); err != nil {
		return err
	}
	_, err = stream.Recv()
	return err
}

// serverSerial is the serial number of the certificate switchyard serves
// to a new connection.
func serverSerial(t *testing.T, addr string, pool *x509.CertPool, client certs.Leaf) string {
	t.Helper()
	pair, err := tls.LoadX509KeyPair(client.CertFile, client.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{pair}, ServerName: "switchyard", NextProtos: []string{"h2"}})
	if err != nil {
		return ""
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].SerialNumber.String()
}
