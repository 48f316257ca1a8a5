package mtls_test

import (
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"

	"github.com/switchyard/switchyard/internal/config"
	"github.com/switchyard/switchyard/internal/mtls"
)

func ads(string) *corev3.ConfigSource {
	return &corev3.ConfigSource{ResourceApiVersion: corev3.ApiVersion_V3, ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}}}
}

func upstreamContext(t *testing.T, ts *corev3.TransportSocket) *tlsv3.UpstreamTlsContext {
	t.Helper()
	if err := ts.ValidateAll(); err != nil {
		t.Fatal(err)
	}
	u := &tlsv3.UpstreamTlsContext{}
	if err := ts.GetTypedConfig().UnmarshalTo(u); err != nil {
		t.Fatal(err)
	}
	if err := u.ValidateAll(); err != nil {
		t.Fatal(err)
	}
	return u
}

// Envoy's certificate and CA come by SDS from the given source, never
// inline (Envoy watches only SDS secrets' files); the server name, when
// set, is matched against switchyard's SANs and sent as SNI.
func TestEnvoyTransportSocket(t *testing.T) {
	base := config.EnvoyClientTLS{CertFile: "/e/envoy.crt", KeyFile: "/e/envoy.key", CAFile: "/e/ca.crt"}
	for _, tt := range []struct {
		name, server, sni string
		san               tlsv3.SubjectAltNameMatcher_SanType
	}{
		{name: "no server name"},
		{name: "DNS name", server: "switchyard.internal", sni: "switchyard.internal", san: tlsv3.SubjectAltNameMatcher_DNS},
		{name: "IP address", server: "10.0.0.7", san: tlsv3.SubjectAltNameMatcher_IP_ADDRESS},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := base
			e.ServerName = tt.server
			u := upstreamContext(t, mtls.EnvoyTransportSocket(e, ads))
			c := u.GetCommonTlsContext()
			if len(c.GetTlsCertificates()) != 0 || c.GetValidationContext() != nil {
				t.Errorf("inline certificate or CA: Envoy would not watch their files: %v", c)
			}
			certs := c.GetTlsCertificateSdsSecretConfigs()
			if len(certs) != 1 || certs[0].GetName() != mtls.EnvoyCertSecret || certs[0].GetSdsConfig().GetAds() == nil {
				t.Errorf("certificate SDS config %v", certs)
			}
			comb := c.GetCombinedValidationContext()
			if v := comb.GetValidationContextSdsSecretConfig(); v.GetName() != mtls.EnvoyCASecret || v.GetSdsConfig().GetAds() == nil {
				t.Errorf("CA SDS config %v", v)
			}
			sans := comb.GetDefaultValidationContext().GetMatchTypedSubjectAltNames()
			switch {
			case tt.server == "" && len(sans) != 0:
				t.Errorf("no server name, yet SAN matchers %v", sans)
			case tt.server != "" && (len(sans) != 1 || sans[0].GetSanType() != tt.san || sans[0].GetMatcher().GetExact() != tt.server):
				t.Errorf("SAN matchers %v, want %v exactly %q", sans, tt.san, tt.server)
			}
			if u.GetSni() != tt.sni {
				t.Errorf("SNI %q, want %q", u.GetSni(), tt.sni)
			}
			if got := c.GetAlpnProtocols(); len(got) != 1 || got[0] != "h2" {
				t.Errorf("ALPN %v", got)
			}
		})
	}
}

// The secrets name the files (Envoy reads and watches them) and validate.
func TestEnvoySecrets(t *testing.T) {
	s := mtls.EnvoySecrets(config.EnvoyClientTLS{CertFile: "/e/envoy.crt", KeyFile: "/e/envoy.key", CAFile: "/e/ca.crt"})
	if len(s) != 2 || s[0].GetName() != mtls.EnvoyCertSecret || s[1].GetName() != mtls.EnvoyCASecret {
		t.Fatalf("secrets %v", s)
	}
	for _, x := range s {
		if err := x.ValidateAll(); err != nil {
			t.Errorf("%s: %v", x.GetName(), err)
		}
	}
	tc := s[0].GetTlsCertificate()
	if tc.GetCertificateChain().GetFilename() != "/e/envoy.crt" || tc.GetPrivateKey().GetFilename() != "/e/envoy.key" {
		t.Errorf("certificate secret %v", tc)
	}
	if got := s[1].GetValidationContext().GetTrustedCa().GetFilename(); got != "/e/ca.crt" {
		t.Errorf("CA secret names %q", got)
	}
}
