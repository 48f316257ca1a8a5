package mtls

import (
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/switchyard/switchyard/internal/config"
)

// EnvoyTransportSocket is how Envoy reaches switchyard's gRPC port under
// mutual TLS: it presents its certificate and accepts only a server
// certificate that chains to its CA. The bootstrap's xDS cluster and the
// ext_proc (and access log) cluster both use it. Envoy reads the files
// when it builds the cluster; the ext_proc cluster is rebuilt when
// switchyard republishes it, the xDS cluster when Envoy restarts.
func EnvoyTransportSocket(e config.EnvoyClientTLS) *corev3.TransportSocket {
	file := func(p string) *corev3.DataSource {
		return &corev3.DataSource{Specifier: &corev3.DataSource_Filename{Filename: p}}
	}
	ctx := &anypb.Any{}
	err := anypb.MarshalFrom(ctx, &tlsv3.UpstreamTlsContext{
		CommonTlsContext: &tlsv3.CommonTlsContext{
			TlsCertificates: []*tlsv3.TlsCertificate{{CertificateChain: file(e.CertFile), PrivateKey: file(e.KeyFile)}},
			ValidationContextType: &tlsv3.CommonTlsContext_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{
				TrustedCa: file(e.CAFile),
			}},
			// gRPC: HTTP/2 negotiated by ALPN.
			AlpnProtocols: []string{"h2"},
		},
	}, proto.MarshalOptions{Deterministic: true})
	if err != nil {
		panic(err) // a well-formed message always marshals
	}
	return &corev3.TransportSocket{Name: "envoy.transport_sockets.tls", ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: ctx}}
}
