package config_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/internal/config"
)

// server.grpc_tls.envoy.server_name is optional: a DNS name or an IP
// address that switchyard's certificate must carry; anything else is an
// error placed at the field, with its line.
func TestGRPCTLSServerName(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"s.crt", "s.key", "ca.crt"} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	base := "listeners: [{name: l, address: 127.0.0.1, port: 10000}]\npools: [{name: a}]\nroutes: [{name: r, match: {prefix: /}, rules: [{pool: a}]}]\n" +
		"server:\n  grpc_tls:\n    cert_file: s.crt\n    key_file: s.key\n    client_ca_file: ca.crt\n    envoy:\n      cert_file: e.crt\n      key_file: e.key\n      ca_file: ca.crt\n"
	parse := func(extra string) (*config.Config, error) {
		return config.Parse(filepath.Join(dir, "s.yaml"), []byte(base+extra))
	}

	cfg, err := parse("")
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Server.GRPCTLS.Envoy.ServerName; got != "" {
		t.Errorf("server_name unset: got %q, want empty (the CA alone is checked)", got)
	}
	for _, ok := range []string{"switchyard", "switchyard.internal.example", "edge-1.switchyard.svc.cluster.local", "10.0.0.7", "::1"} {
		cfg, err := parse("      server_name: " + ok + "\n")
		if err != nil {
			t.Errorf("server_name %q: %v", ok, err)
			continue
		}
		if got := cfg.Server.GRPCTLS.Envoy.ServerName; got != ok {
			t.Errorf("server_name %q: got %q", ok, got)
		}
	}
	for _, bad := range []string{"Switchyard", "*.example.com", "-edge", "edge-", "a..b", "https://switchyard", "switchyard:8443", "fe80::1%eth0", strings.Repeat("a", 64)} {
		_, err := parse("      server_name: '" + bad + "'\n")
		want := "s.yaml:13: server.grpc_tls.envoy.server_name: server_name"
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("server_name %q: error %v, want %q", bad, err, want)
		}
	}
}
