package integration

import (
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/envoy"
	"github.com/switchyard/switchyard/internal/config"
	"github.com/switchyard/switchyard/internal/dev/simrunner"
	"github.com/switchyard/switchyard/internal/testutil/certs"
)

// tlsRoutes sends small images to a100 by a rule only ext_proc applies;
// without a decision a request falls to the route's default, h100.
const tlsRoutes = `
routes:
  - name: images
    match: {prefix: /}
    rules:
      - when: body.width * body.height <= 1048576
        pool: a100
      - pool: h100
`

// decided asks for a small image and reports whether ext_proc decided it
// (a100 and the decision headers), as opposed to the default route.
func decided(s *Stack) (bool, Reply) {
	r, err := s.Do(http.MethodPost, "/gen", nil, `{"width": 512, "height": 512}`)
	if err != nil {
		return false, r
	}
	return r.Status == http.StatusOK && r.Header.Get("x-switchyard-pool") == "a100" && r.Header.Get("x-switchyard-hint") != "", r
}

// install replaces dst with src's content the way a rotation must: write a
// new file beside it, then rename it into place (Envoy notices a file
// moved into the directory, not one edited in place).
func install(t *testing.T, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(filepath.Dir(dst), "."+filepath.Base(dst)+".new")
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, dst); err != nil {
		t.Fatal(err)
	}
}

// envoyCertSerials are the serial numbers (lower-case hex, no leading
// zeros) of the certificates Envoy holds, from its admin /certs: the
// certificates it presents and the CAs it trusts.
func envoyCertSerials(t *testing.T, adminURL string) (presented, trusted map[string]bool) {
	t.Helper()
	resp, err := http.Get(adminURL + "/certs")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var doc struct {
		Certificates []struct {
			CACert []struct {
				SerialNumber string `json:"serial_number"`
			} `json:"ca_cert"`
			CertChain []struct {
				SerialNumber string `json:"serial_number"`
			} `json:"cert_chain"`
		} `json:"certificates"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
		t.Fatalf("envoy /certs: %v", err)
	}
	norm := func(s string) string { return strings.TrimLeft(strings.ToLower(s), "0") }
	presented, trusted = map[string]bool{}, map[string]bool{}
	for _, c := range doc.Certificates {
		for _, x := range c.CertChain {
			presented[norm(x.SerialNumber)] = true
		}
		for _, x := range c.CACert {
			trusted[norm(x.SerialNumber)] = true
		}
	}
	return presented, trusted
}

func hexSerial(n *big.Int) string { return fmt.Sprintf("%x", n) }

// Envoy re-reads its own certificate, key and CA files when they are
// replaced, without a restart: after a rotation to a new CA on both sides
// (Envoy's certificate, the CA Envoy trusts, switchyard's certificate and
// the client CA switchyard trusts), a restarted switchyard, which accepts
// only the new CA's certificates, is reached again over xDS and ext_proc.
// With the files read only when the clusters were built, Envoy would
// present its old certificate and be refused.
func TestMutualTLSEnvoyRotation(t *testing.T) {
	dir := t.TempDir()
	envoyDir := filepath.Join(dir, "envoy-tls")   // Envoy's files, as a secret volume holds them
	swDir := filepath.Join(dir, "switchyard-tls") // switchyard's
	for _, d := range []string{envoyDir, swDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	oldCA := certs.NewCA(t, filepath.Join(dir), "old-ca")
	server := oldCA.Issue(t, swDir, "switchyard")
	clientCA := filepath.Join(swDir, "clients-ca.crt")
	install(t, oldCA.File, clientCA)
	edge := oldCA.Issue(t, envoyDir, "envoy")
	envoyCA := filepath.Join(envoyDir, "ca.crt")
	install(t, oldCA.File, envoyCA)
	envoyTLS := &config.EnvoyClientTLS{CertFile: edge.CertFile, KeyFile: edge.KeyFile, CAFile: envoyCA, ServerName: "switchyard"}

	small := runnersNamed(t, simrunner.Options{}, "a100-1")
	large := runnersNamed(t, simrunner.Options{}, "h100-1")
	s := NewStack(t, StackConfig{
		Server: "grpc_tls: {cert_file: " + server.CertFile + ", key_file: " + server.KeyFile + ", client_ca_file: " + clientCA +
			", envoy: {cert_file: " + edge.CertFile + ", key_file: " + edge.KeyFile + ", ca_file: " + envoyCA + ", server_name: switchyard}}",
		EnvoyTLS: envoyTLS,
		Body:     poolsYAML(poolSpec{name: "a100", runners: small}, poolSpec{name: "h100", runners: large}) + tlsRoutes,
	})
	if ok, r := decided(s); !ok {
		t.Fatalf("before the rotation: status %d headers %v, want ext_proc's decision for a100", r.Status, r.Header)
	}
	if got := s.EnvoyStats()["control_plane.connected_state"]; got != 1 {
		t.Fatalf("before the rotation: control_plane.connected_state = %d", got)
	}
	presented, _ := envoyCertSerials(t, s.Envoy.AdminURL())
	if !presented[hexSerial(edge.Serial)] {
		t.Fatalf("Envoy does not present its certificate %s: %v", hexSerial(edge.Serial), presented)
	}

	// Rotate every file to a new CA: new files written beside the old,
	// then renamed into place, the key before its certificate.
	newCA := certs.NewCA(t, dir, "new-ca")
	staging := filepath.Join(dir, "staging")
	if err := os.MkdirAll(staging, 0o755); err != nil {
		t.Fatal(err)
	}
	newEdge := newCA.Issue(t, staging, "envoy")
	install(t, newEdge.KeyFile, edge.KeyFile)
	install(t, newEdge.CertFile, edge.CertFile)
	install(t, newCA.File, envoyCA)
	newServer := newCA.Issue(t, staging, "switchyard")
	install(t, newServer.KeyFile, server.KeyFile)
	install(t, newServer.CertFile, server.CertFile)
	install(t, newCA.File, clientCA)

	Eventually(t, 10*time.Second, "Envoy holding the rotated certificate and CA", func() bool {
		presented, trusted := envoyCertSerials(t, s.Envoy.AdminURL())
		return presented[hexSerial(newEdge.Serial)] && !presented[hexSerial(edge.Serial)] && trusted[hexSerial(newCA.Serial())] && !trusted[hexSerial(oldCA.Serial())]
	})

	// A fresh switchyard: every connection to it is a new handshake, and it
	// accepts only the new CA's certificates.
	s.KillSwitchyard()
	Eventually(t, 10*time.Second, "Envoy noticing switchyard gone", func() bool {
		return s.EnvoyStats()["control_plane.connected_state"] == 0
	})
	s.StartSwitchyard()
	Eventually(t, 30*time.Second, "Envoy's xDS stream back, over the rotated certificates", func() bool {
		return s.EnvoyStats()["control_plane.connected_state"] == 1
	})
	Eventually(t, 30*time.Second, "requests decided by ext_proc again", func() bool {
		ok, _ := decided(s)
		return ok
	})
	if n := s.EnvoyStats()["cluster.switchyard_xds.ssl.fail_verify_san"]; n != 0 {
		t.Errorf("cluster.switchyard_xds.ssl.fail_verify_san = %d, want 0", n)
	}
	s.AssertNoneInFlight() // the access log reaches the new switchyard too
}

// With envoy.server_name, Envoy accepts switchyard's certificate only if it
// names that server: on the ext_proc cluster switchyard publishes (a wrong
// name leaves requests undecided, on the route's default pool, until the
// config names the right server) and on the bootstrap's xDS cluster (a
// wrong name and Envoy never connects).
func TestMutualTLSServerName(t *testing.T) {
	dir := t.TempDir()
	ca := certs.NewCA(t, dir, "ca")
	server := ca.Issue(t, dir, "switchyard") // names switchyard, localhost, 127.0.0.1, ::1
	edge := ca.Issue(t, dir, "envoy")
	grpcTLS := func(name string) string {
		return "grpc_tls: {cert_file: " + server.CertFile + ", key_file: " + server.KeyFile + ", client_ca_file: " + ca.File +
			", envoy: {cert_file: " + edge.CertFile + ", key_file: " + edge.KeyFile + ", ca_file: " + ca.File + ", server_name: " + name + "}}"
	}

	small := runnersNamed(t, simrunner.Options{}, "a100-1")
	large := runnersNamed(t, simrunner.Options{}, "h100-1")
	s := NewStack(t, StackConfig{
		Server:   grpcTLS("other.example"),
		EnvoyTLS: &config.EnvoyClientTLS{CertFile: edge.CertFile, KeyFile: edge.KeyFile, CAFile: ca.File, ServerName: "switchyard"},
		Body:     poolsYAML(poolSpec{name: "a100", runners: small}, poolSpec{name: "h100", runners: large}) + tlsRoutes,
	})

	// The ext_proc cluster checks for other.example: refused.
	r := s.MustDo(http.MethodPost, "/gen", nil, `{"width": 512, "height": 512}`)
	if r.Status != http.StatusOK || r.Header.Get("x-switchyard-hint") != "" || r.Runner() != "h100-1" {
		t.Errorf("ext_proc cluster with the wrong server name: status %d runner %q headers %v, want the default pool undecided", r.Status, r.Runner(), r.Header)
	}
	if n := s.EnvoyStats()["cluster.switchyard_extproc.ssl.fail_verify_san"]; n == 0 {
		t.Error("cluster.switchyard_extproc.ssl.fail_verify_san = 0: the wrong name was not what refused the handshake")
	}
	// The right name, by a config reload: decided again.
	s.WriteConfig(strings.Replace(s.ReadConfig(), "server_name: other.example", "server_name: switchyard", 1))
	Eventually(t, 15*time.Second, "ext_proc decisions once the config names switchyard", func() bool {
		ok, _ := decided(s)
		return ok
	})
	if n := s.EnvoyStats()["cluster.switchyard_xds.ssl.fail_verify_san"]; n != 0 {
		t.Errorf("the xDS cluster names switchyard, yet fail_verify_san = %d", n)
	}

	// A second Envoy whose bootstrap expects another name never connects.
	bad := startRawEnvoy(t, envoy.BootstrapOptions{
		XDSAddress: s.GRPCAddr,
		TLS:        &config.EnvoyClientTLS{CertFile: edge.CertFile, KeyFile: edge.KeyFile, CAFile: ca.File, ServerName: "other.example"},
	})
	Eventually(t, 15*time.Second, "the xDS handshake refused for the name", func() bool {
		return bad.stat(t, "cluster.switchyard_xds.ssl.fail_verify_san") >= 2 // the first try and a retry
	})
	if got := bad.stat(t, "control_plane.connected_state"); got != 0 {
		t.Errorf("with the wrong server name, control_plane.connected_state = %d, want 0", got)
	}
	if got := bad.stat(t, "cluster.switchyard_xds.ssl.handshake"); got != 0 {
		t.Errorf("with the wrong server name, %d handshakes completed", got)
	}
}

// rawEnvoy is an Envoy run straight from a rendered bootstrap, for a test
// that expects it never to become ready (which [envoy.Start] waits for).
type rawEnvoy struct{ admin string }

func startRawEnvoy(t *testing.T, opts envoy.BootstrapOptions) *rawEnvoy {
	t.Helper()
	bin, err := envoy.Find()
	if err != nil {
		t.Fatalf("these tests need the real Envoy: %v", err)
	}
	dir := t.TempDir()
	opts.AdminPort = freePort(t)
	opts.SecretsDir = dir
	boot, err := envoy.Bootstrap(opts)
	if err != nil {
		t.Fatal(err)
	}
	secrets, err := envoy.BootstrapSecrets(opts)
	if err != nil {
		t.Fatal(err)
	}
	for p, b := range secrets {
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cfg := filepath.Join(dir, "bootstrap.json")
	if err := os.WriteFile(cfg, boot, 0o644); err != nil {
		t.Fatal(err)
	}
	logFile, err := os.Create(filepath.Join(dir, "envoy.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-c", cfg, "--disable-hot-restart", "--concurrency", "1", "-l", "info")
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		logFile.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logFile.Name())
			t.Logf("==== envoy (wrong server name) log ====\n%s", b)
		}
	})
	return &rawEnvoy{admin: "http://127.0.0.1:" + strconv.Itoa(opts.AdminPort)}
}

// stat reads one counter or gauge from the admin API; 0 while it is not
// up yet.
func (e *rawEnvoy) stat(t *testing.T, name string) uint64 {
	t.Helper()
	resp, err := http.Get(e.admin + "/stats?filter=^" + strings.ReplaceAll(name, ".", `\.`) + "$")
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	v, ok := strings.CutPrefix(strings.TrimSpace(string(b)), name+": ")
	if !ok {
		return 0
	}
	u, _ := strconv.ParseUint(v, 10, 64)
	return u
}
