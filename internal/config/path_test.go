package config_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/switchyard/switchyard/internal/config"
)

const pathsConfig = `
listeners: [{name: l, address: 127.0.0.1, port: 10000}]
pools:
  - {name: gpu, runners: [{address: 127.0.0.1:9001}]}
  - {name: big, runners: [{address: 127.0.0.1:9002}]}
  - {name: rr, load_balancer: {policy: round_robin}, runners: [{address: 127.0.0.1:9003}]}
  - {name: rr2, load_balancer: {policy: least_request}, runners: [{address: 127.0.0.1:9004}]}
routes:
  - name: fields
    match: {prefix: /fields}
    hint_from: body.model
    rules: [{when: 'body.size.w * body.size.h > 10 && body["model"] != ""', pool: big}, {pool: gpu}]
  - name: whole
    match: {prefix: /whole}
    rules: [{when: 'size(body) > 2', pool: big}, {pool: gpu}]
  - name: emptykey
    match: {prefix: /emptykey}
    rules: [{when: 'body[""] == 1', pool: big}, {pool: gpu}]
  - name: headers
    match: {prefix: /headers}
    rules: [{when: 'headers["x-tier"] == "big"', pool: big}, {pool: gpu}]
  - name: envoy-only
    match: {prefix: /plain}
    rules: [{when: 'headers["x-a"] == "1"', pool: rr}, {pool: rr}]
  - name: envoy-fallback
    match: {prefix: /fallback}
    rules: [{pool: rr, fallback: [rr2]}]
  - name: picked
    match: {prefix: /picked}
    rules: [{pool: gpu}]
  - name: split
    match: {prefix: /split}
    rules: [{split: {weights: {rr: 80, rr2: 20}}}]
  - name: strict
    match: {prefix: /strict}
    on_invalid_body: reject
    rules: [{when: 'body.x == 1', pool: rr}, {pool: rr}]
`

func TestBodyPathAndDecides(t *testing.T) {
	cfg, err := config.Parse("paths.yaml", []byte(pathsConfig))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]struct {
		path    config.BodyPath
		decides bool
	}{
		"fields":         {config.BodyMetadata, true},
		"whole":          {config.BodyBuffered, true},
		"emptykey":       {config.BodyBuffered, true},
		"headers":        {config.BodyNone, true},
		"envoy-only":     {config.BodyNone, false},
		"envoy-fallback": {config.BodyNone, false},
		"picked":         {config.BodyNone, true},
		"split":          {config.BodyNone, true},
		"strict":         {config.BodyMetadata, true},
	}
	for i := range cfg.Routes {
		r := &cfg.Routes[i]
		w := want[r.Name]
		if got := r.BodyPath(); got != w.path {
			t.Errorf("route %s: body path %q, want %q", r.Name, got, w.path)
		}
		if got := cfg.Decides(r); got != w.decides {
			t.Errorf("route %s: decides %v, want %v", r.Name, got, w.decides)
		}
	}
	fields, _ := cfg.Route("fields")
	if diff := cmp.Diff([][]string{{"model"}, {"size", "h"}, {"size", "w"}}, fields.BodyFields()); diff != "" {
		t.Errorf("body fields (-want +got):\n%s", diff)
	}
}

// server.admin_auth reads its token files at load; problems name the file,
// line and field; a non-loopback admin address without it is a warning.
func TestAdminAuthConfig(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("good.token", "0123456789abcdef0123\n")
	write("short.token", "abc\n")
	write("spaced.token", "0123456789 abcdef0123\n")
	base := "listeners: [{name: l, address: 127.0.0.1, port: 10000}]\npools: [{name: a}]\nroutes: [{name: r, match: {prefix: /}, rules: [{pool: a}]}]\n"
	parse := func(server string) (*config.Config, error) {
		return config.Parse(filepath.Join(dir, "s.yaml"), []byte(base+"server:\n"+server))
	}
	cfg, err := parse("  admin: 0.0.0.0:18001\n  admin_auth: {token_files: [good.token]}\n")
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Warnings) != 0 || cfg.Server.AdminAuth.Grants([]byte("0123456789abcdef0123")) != config.AccessWrite || cfg.Server.AdminAuth.Grants([]byte("0123456789abcdef012")) != config.AccessNone {
		t.Errorf("warnings %v; the token in good.token is not the write token", cfg.Warnings)
	}
	cfg, err = parse("  admin: 0.0.0.0:18001\n")
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Warnings) != 1 || !strings.Contains(cfg.Warnings[0].String(), "server.admin") || !strings.Contains(cfg.Warnings[0].String(), "admin_auth") {
		t.Errorf("non-loopback admin without auth: warnings %v", cfg.Warnings)
	}
	for _, tt := range []struct{ server, want string }{
		{"  admin_auth: {token_files: []}\n", "s.yaml:5: server.admin_auth.token_files: at least one token file is required"},
		{"  admin_auth: {token_files: [missing.token]}\n", "s.yaml:5: server.admin_auth.token_files[0]: cannot read"},
		{"  admin_auth: {token_files: [short.token]}\n", "is 3 characters; at least 16 are required"},
		{"  admin_auth: {token_files: [good.token], read_token_files: [spaced.token]}\n", "server.admin_auth.read_token_files[0]: the token in"},
	} {
		_, err := parse(tt.server)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%q: error %v, want %q", tt.server, err, tt.want)
		}
	}
}

// server.grpc_tls needs switchyard's certificate, key and client CA (which
// it reads) and Envoy's three paths (which it does not open).
func TestGRPCTLSConfig(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"s.crt", "s.key", "ca.crt"} {
		os.WriteFile(filepath.Join(dir, f), []byte("x"), 0o600)
	}
	base := "listeners: [{name: l, address: 127.0.0.1, port: 10000}]\npools: [{name: a}]\nroutes: [{name: r, match: {prefix: /}, rules: [{pool: a}]}]\n"
	cfg, err := config.Parse(filepath.Join(dir, "s.yaml"), []byte(base+"server:\n  grpc_tls: {cert_file: s.crt, key_file: s.key, client_ca_file: ca.crt, envoy: {cert_file: /etc/envoy/e.crt, key_file: e.key, ca_file: ca.crt}}\n"))
	if err != nil {
		t.Fatal(err)
	}
	got := cfg.Server.GRPCTLS
	if got.CertFile != filepath.Join(dir, "s.crt") || got.Envoy.CertFile != "/etc/envoy/e.crt" || got.Envoy.KeyFile != filepath.Join(dir, "e.key") {
		t.Errorf("grpc_tls %+v: want paths resolved against the config file", got)
	}
	_, err = config.Parse(filepath.Join(dir, "s.yaml"), []byte(base+"server:\n  grpc_tls: {cert_file: missing.crt, key_file: s.key, client_ca_file: ca.crt, envoy: {cert_file: e.crt}}\n"))
	for _, want := range []string{"server.grpc_tls.cert_file: cannot read", "server.grpc_tls.envoy.key_file: a file is required", "server.grpc_tls.envoy.ca_file: a file is required"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v, want %q", err, want)
		}
	}
}
