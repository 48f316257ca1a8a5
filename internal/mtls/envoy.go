package mtls

import (
	"net/netip"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/switchyard/switchyard/internal/config"
)

// The SDS secrets that name Envoy's files for mutual TLS with switchyard.
const (
	// EnvoyCertSecret is Envoy's certificate and key.
	EnvoyCertSecret = "switchyard_grpc_client"
	// EnvoyCASecret is the CA that switchyard's certificate must chain to.
	EnvoyCASecret = "switchyard_grpc_ca"
)

// EnvoySecrets are the SDS secrets [EnvoyTransportSocket] refers to, in the
// order EnvoyCertSecret, EnvoyCASecret. They name Envoy's files rather
// than carry their contents: Envoy reads the files and, because they came
// by SDS, watches the directories that hold them, re-reading them when a
// file is moved into place (a rename, as a Kubernetes secret volume's
// symlink swap or `mv new.crt envoy.crt` is). A file edited in place is
// not noticed.
func EnvoySecrets(e config.EnvoyClientTLS) []*tlsv3.Secret {
	return []*tlsv3.Secret{
		{Name: EnvoyCertSecret, Type: &tlsv3.Secret_TlsCertificate{TlsCertificate: &tlsv3.TlsCertificate{
			CertificateChain: file(e.CertFile),
			PrivateKey:       file(e.KeyFile),
		}}},
		{Name: EnvoyCASecret, Type: &tlsv3.Secret_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{
			TrustedCa: file(e.CAFile),
		}}},
	}
}

// EnvoyTransportSocket is how Envoy reaches switchyard's gRPC port under
// mutual TLS: it presents its certificate and accepts only a server
// certificate that chains to its CA and, when e.ServerName is set, names
// it (and sends it as SNI when it is a DNS name). The certificate, key and
// CA come from the SDS secrets of [EnvoySecrets], which Envoy fetches from
// source(name): over ADS for the ext_proc (and access log) cluster, from
// files for the bootstrap's xDS cluster (which cannot wait for ADS).
func EnvoyTransportSocket(e config.EnvoyClientTLS, source func(secret string) *corev3.ConfigSource) *corev3.TransportSocket {
	tlsCtx := &tlsv3.UpstreamTlsContext{
		CommonTlsContext: &tlsv3.CommonTlsContext{
			TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{{Name: EnvoyCertSecret, SdsConfig: source(EnvoyCertSecret)}},
			ValidationContextType: &tlsv3.CommonTlsContext_CombinedValidationContext{CombinedValidationContext: &tlsv3.CommonTlsContext_CombinedCertificateValidationContext{
				DefaultValidationContext:         &tlsv3.CertificateValidationContext{MatchTypedSubjectAltNames: sanMatchers(e.ServerName)},
				ValidationContextSdsSecretConfig: &tlsv3.SdsSecretConfig{Name: EnvoyCASecret, SdsConfig: source(EnvoyCASecret)},
			}},
			// gRPC: HTTP/2 negotiated by ALPN.
			AlpnProtocols: []string{"h2"},
		},
	}
	if n := e.ServerName; n != "" {
		if _, err := netip.ParseAddr(n); err != nil {
			tlsCtx.Sni = n
		}
	}
	ctx := &anypb.Any{}
	if err := anypb.MarshalFrom(ctx, tlsCtx, proto.MarshalOptions{Deterministic: true}); err != nil {
		panic(err) // a well-formed message always marshals
	}
	return &corev3.TransportSocket{Name: "envoy.transport_sockets.tls", ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: ctx}}
}

// sanMatchers accept a certificate that names n: as an IP address SAN
// when n is one, else as a DNS SAN. No name, no check (the CA alone).
func sanMatchers(n string) []*tlsv3.SubjectAltNameMatcher {
	if n == "" {
		return nil
	}
	san := tlsv3.SubjectAltNameMatcher_DNS
	if _, err := netip.ParseAddr(n); err == nil {
		san = tlsv3.SubjectAltNameMatcher_IP_ADDRESS
	}
	return []*tlsv3.SubjectAltNameMatcher{{
		SanType: san,
		Matcher: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: n}},
	}}
}

func file(p string) *corev3.DataSource {
	return &corev3.DataSource{Specifier: &corev3.DataSource_Filename{Filename: p}}
}
