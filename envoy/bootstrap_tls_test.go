package envoy_test

import (
	"path/filepath"
	"strings"
	"testing"

	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/switchyard/switchyard/envoy"
	"github.com/switchyard/switchyard/internal/config"
	"github.com/switchyard/switchyard/internal/mtls"
)

// With TLS, the xDS cluster takes Envoy's certificate and CA by SDS from
// the files of BootstrapSecrets (not over ADS, which it carries): each a
// DiscoveryResponse with one secret naming the files, so Envoy watches them.
func TestBootstrapTLSFromSDSFiles(t *testing.T) {
	tls := &config.EnvoyClientTLS{CertFile: "/etc/envoy/tls/envoy.crt", KeyFile: "/etc/envoy/tls/envoy.key", CAFile: "/etc/envoy/tls/ca.crt", ServerName: "switchyard"}
	opts := envoy.BootstrapOptions{TLS: tls, SecretsDir: "/var/lib/envoy"}
	out, err := envoy.Bootstrap(opts)
	if err != nil {
		t.Fatal(err)
	}
	bs := decode(t, out)
	var u tlsv3.UpstreamTlsContext
	for _, c := range bs.GetStaticResources().GetClusters() {
		if c.GetName() == "switchyard_xds" {
			if err := c.GetTransportSocket().GetTypedConfig().UnmarshalTo(&u); err != nil {
				t.Fatal(err)
			}
		}
	}
	ctx := u.GetCommonTlsContext()
	paths := map[string]string{} // secret name -> SDS file
	for _, s := range ctx.GetTlsCertificateSdsSecretConfigs() {
		paths[s.GetName()] = s.GetSdsConfig().GetPathConfigSource().GetPath()
	}
	ca := ctx.GetCombinedValidationContext()
	paths[ca.GetValidationContextSdsSecretConfig().GetName()] = ca.GetValidationContextSdsSecretConfig().GetSdsConfig().GetPathConfigSource().GetPath()
	if len(paths) != 2 || paths[mtls.EnvoyCertSecret] == "" || paths[mtls.EnvoyCASecret] == "" {
		t.Fatalf("xDS cluster SDS files %v, want one per secret", paths)
	}
	if sans := ca.GetDefaultValidationContext().GetMatchTypedSubjectAltNames(); len(sans) != 1 || sans[0].GetMatcher().GetExact() != "switchyard" || u.GetSni() != "switchyard" {
		t.Errorf("server name not checked: SANs %v, SNI %q", sans, u.GetSni())
	}

	files, err := envoy.BootstrapSecrets(opts)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 2 {
		t.Fatalf("BootstrapSecrets gave %d files, want 2", len(files))
	}
	for name, path := range paths {
		if filepath.Dir(path) != "/var/lib/envoy" {
			t.Errorf("secret %s: SDS file %s outside SecretsDir", name, path)
		}
		b, ok := files[path]
		if !ok {
			t.Errorf("secret %s: the bootstrap reads %s, which BootstrapSecrets does not give", name, path)
			continue
		}
		var resp discoveryv3.DiscoveryResponse
		if err := protojson.Unmarshal(b, &resp); err != nil {
			t.Fatalf("%s: %v\n%s", path, err, b)
		}
		if len(resp.GetResources()) != 1 {
			t.Fatalf("%s: %d resources, want 1 (Envoy takes one secret per SDS file)", path, len(resp.GetResources()))
		}
		var s tlsv3.Secret
		if err := resp.GetResources()[0].UnmarshalTo(&s); err != nil {
			t.Fatal(err)
		}
		if err := s.ValidateAll(); err != nil {
			t.Errorf("%s: %v", path, err)
		}
		if s.GetName() != name {
			t.Errorf("%s holds secret %q, want %q", path, s.GetName(), name)
		}
		if !strings.Contains(string(b), "/etc/envoy/tls/") {
			t.Errorf("%s does not name Envoy's files:\n%s", path, b)
		}
	}

	if _, err := envoy.Bootstrap(envoy.BootstrapOptions{TLS: tls}); err == nil {
		t.Error("TLS without SecretsDir: no error")
	}
	if files, err := envoy.BootstrapSecrets(envoy.BootstrapOptions{}); err != nil || len(files) != 0 {
		t.Errorf("no TLS: secrets %v, error %v; want none", files, err)
	}
}
