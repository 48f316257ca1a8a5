package cli

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/testutil/certs"
	"github.com/switchyard/switchyard/internal/testutil/syncio"
)

// simAdminCall is one request the fake admin API received.
type simAdminCall struct {
	method, path string
	ttl          float64
}

// simFakeAdmin answers registrations with status and reports each one.
func simFakeAdmin(t *testing.T, status int) (*httptest.Server, <-chan simAdminCall) {
	calls := make(chan simAdminCall, 100)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := simAdminCall{method: r.Method, path: r.URL.Path}
		if r.Method == http.MethodPut {
			var body struct {
				TTLSeconds float64 `json:"ttl_seconds"`
			}
			if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
				t.Errorf("PUT body: %v", err)
			}
			c.ttl = body.TTLSeconds
		}
		w.WriteHeader(status)
		io.WriteString(w, `{"error":"unknown pool \"nope\""}`)
		calls <- c
	}))
	t.Cleanup(srv.Close)
	return srv, calls
}

func simNext[T any](t *testing.T, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(3 * time.Second):
		t.Fatal("timed out")
		panic("unreachable")
	}
}

// runSimRunner starts simRunner and returns the address it prints and the
// channel its result arrives on.
func runSimRunner(t *testing.T, ctx context.Context, args ...string) (string, <-chan error) {
	t.Helper()
	addr, done, _ := runSimRunnerLog(t, ctx, args...)
	return addr, done
}

// runSimRunnerLog is runSimRunner that also returns the runner's stderr,
// to be read once the runner has returned.
func runSimRunnerLog(t *testing.T, ctx context.Context, args ...string) (string, <-chan error, *strings.Builder) {
	t.Helper()
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	stderr := &strings.Builder{}
	go func() {
		err := simRunner(ctx, args, pw, &syncio.Writer{W: stderr})
		pw.CloseWithError(io.EOF)
		done <- err
	}()
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		t.Fatalf("no address line: %v (%v)", err, simNext(t, done))
	}
	go io.Copy(io.Discard, pr)
	addr, ok := strings.CutPrefix(strings.TrimSpace(line), "sim-runner listening on ")
	if !ok {
		t.Fatalf("first line %q", line)
	}
	return addr, done, stderr
}

func TestSimRunnerRegisters(t *testing.T) {
	admin, calls := simFakeAdmin(t, http.StatusOK)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	addr, done := runSimRunner(t, ctx, "--listen", "127.0.0.1:0", "--name", "sim-a", "--slots", "1",
		"--load-time", "0s", "--infer-time", "0s", "--register", admin.URL+"/", "--pool", "a100", "--ttl", "150ms")

	wantPath := "/v1/pools/a100/runners/" + addr
	for range 2 { // the first registration and one renewal
		if c := simNext(t, calls); c != (simAdminCall{http.MethodPut, wantPath, 0.15}) {
			t.Errorf("admin got %+v, want PUT %s ttl 0.15", c, wantPath)
		}
	}

	resp, err := http.Post("http://"+addr+"/", "application/json", strings.NewReader(`{"model":"flux"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := resp.Header.Get("X-Sim-Runner"); got != "sim-a" {
		t.Errorf("X-Sim-Runner %q, want sim-a", got)
	}
	if got := resp.Header.Get("X-Fal-Runner-Hints"); got != "flux" {
		t.Errorf("X-Fal-Runner-Hints %q, want flux", got)
	}

	cancel()
	if err := simNext(t, done); err != nil {
		t.Fatalf("simRunner: %v", err)
	}
	// A renewal canceled by the shutdown may still reach the fake admin, so
	// look for the DELETE among what is left rather than last.
	var deletes []simAdminCall
	for len(calls) > 0 {
		if c := <-calls; c.method == http.MethodDelete {
			deletes = append(deletes, c)
		}
	}
	if want := (simAdminCall{method: http.MethodDelete, path: wantPath}); len(deletes) != 1 || deletes[0] != want {
		t.Errorf("deregistrations %+v, want one %+v", deletes, want)
	}
	if _, err := http.Get("http://" + addr + "/"); err == nil {
		t.Error("still serving after shutdown")
	}
}

func TestSimRunnerWithoutRegistration(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	addr, done := runSimRunner(t, ctx, "--listen", "127.0.0.1:0", "--no-hints", "--infer-time", "0s")
	resp, err := http.Get("http://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if v, ok := resp.Header["X-Fal-Runner-Hints"]; ok {
		t.Errorf("--no-hints, but X-Fal-Runner-Hints %q", v)
	}
	if got := resp.Header.Get("X-Sim-Runner"); got != addr {
		t.Errorf("name %q, want the listen address %s", got, addr)
	}
	cancel()
	if err := simNext(t, done); err != nil {
		t.Fatalf("simRunner: %v", err)
	}
}

// An admin API that is down is retried and does not stop the runner.
func TestSimRunnerAdminDown(t *testing.T) {
	admin, _ := simFakeAdmin(t, http.StatusOK)
	admin.Close()
	ctx, cancel := context.WithCancel(t.Context())
	addr, done, stderr := runSimRunnerLog(t, ctx, "--listen", "127.0.0.1:0", "--infer-time", "0s",
		"--register", admin.URL, "--pool", "a100", "--ttl", "30ms")
	resp, err := http.Get("http://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	cancel()
	if err := simNext(t, done); err != nil {
		t.Fatalf("simRunner: %v", err)
	}
	for _, want := range []string{"msg=registering", "msg=deregistering"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, stderr)
		}
	}
}

func TestSimRunnerRefusedRegistration(t *testing.T) {
	admin, _ := simFakeAdmin(t, http.StatusBadRequest)
	pr, pw := io.Pipe()
	go io.Copy(io.Discard, pr)
	defer pw.Close()
	err := simRunner(t.Context(), []string{"--listen", "127.0.0.1:0", "--register", admin.URL, "--pool", "nope"}, pw, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "unknown pool") {
		t.Errorf("simRunner: %v, want the admin API's refusal", err)
	}
}

func TestSimRunnerBadFlags(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string // in stderr
	}{
		{"bad overload", []string{"--overload", "drop"}, `overload "drop"`},
		{"negative slots", []string{"--slots", "-1"}, "slots -1"},
		{"unknown flag", []string{"--gpu", "h100"}, "flag provided but not defined"},
		{"argument", []string{"extra"}, "unexpected arguments"},
		{"register without pool", []string{"--register", "http://127.0.0.1:1"}, "--register needs --pool"},
		{"pool without register", []string{"--pool", "a100"}, "--pool and --token-file need --register"},
		{"token without register", []string{"--token-file", "x"}, "--pool and --token-file need --register"},
		{"token file missing", []string{"--register", "http://127.0.0.1:1", "--pool", "p", "--token-file", "/nonexistent/token"}, "--token-file: open /nonexistent/token"},
		{"register a host name", []string{"--register", "http://127.0.0.1:1", "--pool", "p", "--listen", "localhost:9001"}, "reachable ip:port"},
		{"register 0.0.0.0", []string{"--register", "http://127.0.0.1:1", "--pool", "p", "--listen", "0.0.0.0:9001"}, "reachable ip:port"},
		{"register zero ttl", []string{"--register", "http://127.0.0.1:1", "--pool", "p", "--ttl", "0s"}, "--ttl 0s"},
		{"register not a URL", []string{"--register", "127.0.0.1:18001", "--pool", "p"}, "want an admin URL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr strings.Builder
			err := simRunner(t.Context(), tt.args, &stdout, &stderr)
			if !errors.Is(err, ErrUsage) {
				t.Errorf("err %v, want ErrUsage", err)
			}
			if !strings.Contains(stderr.String(), tt.want) {
				t.Errorf("stderr lacks %q:\n%s", tt.want, stderr.String())
			}
			if stdout.Len() != 0 {
				t.Errorf("stdout %q, want nothing", stdout.String())
			}
		})
	}
}

// Over HTTPS the sim-runner checks the admin's certificate against
// --tls-ca-file and presents its client certificate and its token.
func TestSimRunnerRegistersOverTLS(t *testing.T) {
	dir := t.TempDir()
	ca := certs.NewCA(t, dir, "ca")
	server := ca.Issue(t, dir, "admin")
	client := ca.Issue(t, dir, "runner")
	token := filepath.Join(dir, "runner.token")
	os.WriteFile(token, []byte("runner-token-0123456789"), 0o600)
	seen := make(chan string, 10)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cn := ""
		if r.TLS != nil && len(r.TLS.VerifiedChains) > 0 {
			cn = r.TLS.VerifiedChains[0][0].Subject.CommonName
		}
		seen <- r.Method + " " + cn + " " + r.Header.Get("Authorization")
		w.Write([]byte("{}"))
	}))
	pair, err := tls.LoadX509KeyPair(server.CertFile, server.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pem, _ := os.ReadFile(ca.File)
	pool.AppendCertsFromPEM(pem)
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{pair}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool}
	srv.StartTLS()
	defer srv.Close()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	_, done := runSimRunner(t, ctx, "--listen", "127.0.0.1:0", "--register", srv.URL, "--pool", "a", "--ttl", "30s",
		"--tls-ca-file", ca.File, "--tls-cert-file", client.CertFile, "--tls-key-file", client.KeyFile, "--token-file", token)
	if got := simNext(t, seen); got != "PUT runner Bearer runner-token-0123456789" {
		t.Errorf("the admin saw %q, want a PUT from the runner's certificate with its token", got)
	}
	cancel()
	if err := simNext(t, done); err != nil {
		t.Fatal(err)
	}
}
