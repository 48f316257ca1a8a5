package envoy

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"strconv"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"go.yaml.in/yaml/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/switchyard/switchyard/internal/config"
	"github.com/switchyard/switchyard/internal/mtls"

	// Types that appear in bootstrap.yaml inside google.protobuf.Any; protojson
	// resolves them from the global registry. Add one here when the file gains
	// a new typed_config.
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/file/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/resource_monitors/downstream_connections/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
)

//go:embed bootstrap.yaml
var bootstrapYAML []byte

const (
	// DefaultXDSAddress is where bootstrap.yaml points Envoy's ADS stream:
	// switchyard's default server.grpc.
	DefaultXDSAddress = "127.0.0.1:18000"
	// DefaultAdminPort is the admin port written in bootstrap.yaml.
	DefaultAdminPort = 9901
	// DefaultNodeID is the node id in bootstrap.yaml; switchyard's snapshot
	// cache must use the same id.
	DefaultNodeID = "switchyard-edge"

	xdsClusterName = "switchyard_xds"
)

// BootstrapFile returns a copy of bootstrap.yaml exactly as embedded (the
// file that docker-compose mounts).
func BootstrapFile() []byte { return bytes.Clone(bootstrapYAML) }

// BootstrapOptions are the settings [Bootstrap] rewrites in bootstrap.yaml.
type BootstrapOptions struct {
	// XDSAddress is switchyard's gRPC (ADS) address, host:port. The host is an
	// IPv4 or IPv6 literal (IPv6 in brackets) or "localhost". It is a connect
	// address, so an unspecified listen address (0.0.0.0, [::]) is turned into
	// the matching loopback address. Empty means [DefaultXDSAddress].
	XDSAddress string
	// AdminPort is the port of Envoy's admin API on 127.0.0.1. 0 lets Envoy
	// pick a free port ([Start] learns it from --admin-address-path); use
	// [DefaultAdminPort] for the port in the file.
	AdminPort int
	// NodeID replaces the node id when non-empty.
	NodeID string
	// TLS, when set, is the certificate Envoy presents to switchyard's
	// gRPC port and the CA it checks switchyard's against
	// (server.grpc_tls.envoy): the xDS cluster speaks mutual TLS. Envoy
	// takes the file names from the SDS files of [BootstrapSecrets] in
	// SecretsDir, and so watches the files and re-reads them when they are
	// replaced.
	TLS *config.EnvoyClientTLS
	// SecretsDir is the directory, as Envoy sees it, holding the SDS files
	// of [BootstrapSecrets]; required with TLS. [Start] uses its Dir.
	SecretsDir string
}

// BootstrapSecrets returns the files the bootstrap of opts expects in
// opts.SecretsDir, by path: with TLS, one SDS file per secret of
// [mtls.EnvoySecrets] (a DiscoveryResponse in JSON naming Envoy's
// certificate, key and CA files); nothing without. They never change:
// Envoy watches the files they name.
func BootstrapSecrets(opts BootstrapOptions) (map[string][]byte, error) {
	if opts.TLS == nil {
		return nil, nil
	}
	if opts.SecretsDir == "" {
		return nil, errors.New("envoy: TLS needs a SecretsDir for its SDS files")
	}
	out := map[string][]byte{}
	for _, s := range mtls.EnvoySecrets(*opts.TLS) {
		if err := s.ValidateAll(); err != nil {
			return nil, fmt.Errorf("envoy: invalid secret %s: %w", s.GetName(), err)
		}
		a, err := anypb.New(s)
		if err != nil {
			return nil, err
		}
		b, err := protojson.MarshalOptions{UseProtoNames: true, Multiline: true}.Marshal(&discoveryv3.DiscoveryResponse{
			TypeUrl:   a.GetTypeUrl(),
			Resources: []*anypb.Any{a},
		})
		if err != nil {
			return nil, fmt.Errorf("envoy: encode secret %s: %w", s.GetName(), err)
		}
		out[secretFile(opts.SecretsDir, s.GetName())] = b
	}
	return out, nil
}

// secretFile is where the bootstrap expects the SDS file of a secret.
func secretFile(dir, secret string) string { return filepath.Join(dir, secret+".sds.json") }

// Bootstrap returns the embedded bootstrap.yaml with opts applied, as JSON
// that Envoy accepts with `-c file.json`. The result has passed the
// bootstrap proto's validation rules.
func Bootstrap(opts BootstrapOptions) ([]byte, error) {
	bs, err := parseBootstrap(bootstrapYAML)
	if err != nil {
		return nil, err
	}

	xds := opts.XDSAddress
	if xds == "" {
		xds = DefaultXDSAddress
	}
	host, port, err := connectAddress(xds)
	if err != nil {
		return nil, fmt.Errorf("envoy: xDS address %q: %w", xds, err)
	}
	sa, err := xdsSocketAddress(bs)
	if err != nil {
		return nil, err
	}
	sa.Address = host
	sa.PortSpecifier = &corev3.SocketAddress_PortValue{PortValue: port}

	if opts.AdminPort < 0 || opts.AdminPort > 65535 {
		return nil, fmt.Errorf("envoy: admin port %d out of range 0-65535", opts.AdminPort)
	}
	adminSA := bs.GetAdmin().GetAddress().GetSocketAddress()
	if adminSA == nil {
		return nil, errors.New("envoy: bootstrap.yaml has no admin socket address")
	}
	adminSA.PortSpecifier = &corev3.SocketAddress_PortValue{PortValue: uint32(opts.AdminPort)}

	if opts.NodeID != "" {
		bs.Node.Id = opts.NodeID
	}
	if opts.TLS != nil {
		if opts.SecretsDir == "" {
			return nil, errors.New("envoy: TLS needs a SecretsDir for its SDS files")
		}
		// From files, not ADS: this cluster carries ADS. Envoy reads each
		// SDS file once (it never changes) and watches the directories of
		// the certificate, key and CA files it names.
		fromFile := func(secret string) *corev3.ConfigSource {
			return &corev3.ConfigSource{
				ResourceApiVersion: corev3.ApiVersion_V3,
				ConfigSourceSpecifier: &corev3.ConfigSource_PathConfigSource{PathConfigSource: &corev3.PathConfigSource{
					Path: secretFile(opts.SecretsDir, secret),
				}},
			}
		}
		for _, c := range bs.GetStaticResources().GetClusters() {
			if c.GetName() == xdsClusterName {
				c.TransportSocket = mtls.EnvoyTransportSocket(*opts.TLS, fromFile)
			}
		}
	}

	if err := bs.ValidateAll(); err != nil {
		return nil, fmt.Errorf("envoy: invalid bootstrap: %w", err)
	}
	out, err := protojson.MarshalOptions{UseProtoNames: true, Multiline: true}.Marshal(bs)
	if err != nil {
		return nil, fmt.Errorf("envoy: encode bootstrap: %w", err)
	}
	return out, nil
}

// parseBootstrap decodes bootstrap YAML via JSON into the proto, so that
// unknown or misspelled fields are errors, as they are for Envoy.
func parseBootstrap(y []byte) (*bootstrapv3.Bootstrap, error) {
	var doc any
	if err := yaml.Unmarshal(y, &doc); err != nil {
		return nil, fmt.Errorf("envoy: parse bootstrap YAML: %w", err)
	}
	j, err := json.Marshal(doc)
	if err != nil {
		return nil, fmt.Errorf("envoy: bootstrap YAML to JSON: %w", err)
	}
	bs := &bootstrapv3.Bootstrap{}
	if err := protojson.Unmarshal(j, bs); err != nil {
		return nil, fmt.Errorf("envoy: decode bootstrap: %w", err)
	}
	return bs, nil
}

func xdsSocketAddress(bs *bootstrapv3.Bootstrap) (*corev3.SocketAddress, error) {
	for _, c := range bs.GetStaticResources().GetClusters() {
		if c.GetName() != xdsClusterName {
			continue
		}
		for _, le := range c.GetLoadAssignment().GetEndpoints() {
			for _, lb := range le.GetLbEndpoints() {
				if sa := lb.GetEndpoint().GetAddress().GetSocketAddress(); sa != nil {
					return sa, nil
				}
			}
		}
	}
	return nil, fmt.Errorf("envoy: bootstrap.yaml has no %s cluster endpoint", xdsClusterName)
}

// connectAddress turns host:port into the IP and port Envoy's STATIC xDS
// cluster connects to.
func connectAddress(hostport string) (string, uint32, error) {
	h, p, err := net.SplitHostPort(hostport)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.ParseUint(p, 10, 16)
	if err != nil || port == 0 {
		return "", 0, fmt.Errorf("port %q must be a number in 1-65535", p)
	}
	if h == "localhost" {
		return "127.0.0.1", uint32(port), nil
	}
	ip, err := netip.ParseAddr(h)
	if err != nil {
		return "", 0, fmt.Errorf("host %q must be an IP address or localhost (the xDS cluster is STATIC)", h)
	}
	if ip.Zone() != "" {
		return "", 0, fmt.Errorf("host %q: IPv6 zones are not supported", h)
	}
	ip = ip.Unmap()
	if ip.IsUnspecified() {
		if ip.Is4() {
			ip = netip.AddrFrom4([4]byte{127, 0, 0, 1})
		} else {
			ip = netip.IPv6Loopback()
		}
	}
	return ip.String(), uint32(port), nil
}
