package envoy_test

import (
	"bytes"
	"encoding/json"
	"net"
	"strconv"
	"strings"
	"testing"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/switchyard/switchyard/envoy"
)

// decode parses Bootstrap's output back into the proto.
func decode(t *testing.T, b []byte) *bootstrapv3.Bootstrap {
	t.Helper()
	bs := &bootstrapv3.Bootstrap{}
	if err := protojson.Unmarshal(b, bs); err != nil {
		t.Fatalf("Bootstrap output does not decode: %v\n%s", err, b)
	}
	if err := bs.ValidateAll(); err != nil {
		t.Fatalf("Bootstrap output does not validate: %v", err)
	}
	return bs
}

func xdsEndpoint(t *testing.T, bs *bootstrapv3.Bootstrap) (string, uint32) {
	t.Helper()
	for _, c := range bs.GetStaticResources().GetClusters() {
		if c.GetName() == "switchyard_xds" {
			sa := c.GetLoadAssignment().GetEndpoints()[0].GetLbEndpoints()[0].GetEndpoint().GetAddress().GetSocketAddress()
			return sa.GetAddress(), sa.GetPortValue()
		}
	}
	t.Fatal("no switchyard_xds cluster")
	return "", 0
}

func TestEmbeddedBootstrapDefaults(t *testing.T) {
	raw := envoy.BootstrapFile()
	if !bytes.Contains(raw, []byte("switchyard_xds")) {
		t.Fatal("BootstrapFile does not look like the bootstrap")
	}
	// Zero options keep the file's xDS address; AdminPort 0 asks Envoy to pick.
	out, err := envoy.Bootstrap(envoy.BootstrapOptions{AdminPort: envoy.DefaultAdminPort})
	if err != nil {
		t.Fatal(err)
	}
	if !json.Valid(out) {
		t.Fatal("Bootstrap did not return JSON")
	}
	bs := decode(t, out)
	if got := bs.GetNode().GetId(); got != envoy.DefaultNodeID {
		t.Errorf("node id = %q, want %q", got, envoy.DefaultNodeID)
	}
	if got := bs.GetNode().GetCluster(); got != "switchyard" {
		t.Errorf("node cluster = %q", got)
	}
	host, port := xdsEndpoint(t, bs)
	if got := net.JoinHostPort(host, strconv.Itoa(int(port))); got != envoy.DefaultXDSAddress {
		t.Errorf("xDS endpoint = %s, want %s", got, envoy.DefaultXDSAddress)
	}
	if got := bs.GetAdmin().GetAddress().GetSocketAddress().GetPortValue(); got != envoy.DefaultAdminPort {
		t.Errorf("admin port = %d, want %d", got, envoy.DefaultAdminPort)
	}
	ads := bs.GetDynamicResources().GetAdsConfig()
	if ads.GetApiType().String() != "GRPC" || ads.GetTransportApiVersion().String() != "V3" || !ads.GetSetNodeOnFirstMessageOnly() {
		t.Errorf("ads_config = %v", ads)
	}
	if ads.GetGrpcServices()[0].GetEnvoyGrpc().GetClusterName() != "switchyard_xds" {
		t.Errorf("ADS does not use switchyard_xds: %v", ads)
	}
	if bs.GetDynamicResources().GetLdsConfig().GetAds() == nil || bs.GetDynamicResources().GetCdsConfig().GetAds() == nil {
		t.Error("LDS/CDS do not come from ADS")
	}
	if !strings.Contains(string(out), "envoy.extensions.upstreams.http.v3.HttpProtocolOptions") {
		t.Error("xDS cluster lost its HTTP/2 protocol options")
	}
}

func TestBootstrapRewrite(t *testing.T) {
	tests := []struct {
		name      string
		opts      envoy.BootstrapOptions
		wantHost  string
		wantPort  uint32
		wantAdmin uint32
		wantNode  string
		wantErr   string
	}{
		{name: "ipv4", opts: envoy.BootstrapOptions{XDSAddress: "10.1.2.3:18500", AdminPort: 9902},
			wantHost: "10.1.2.3", wantPort: 18500, wantAdmin: 9902, wantNode: envoy.DefaultNodeID},
		{name: "ipv6", opts: envoy.BootstrapOptions{XDSAddress: "[2001:db8::1]:18000"},
			wantHost: "2001:db8::1", wantPort: 18000, wantNode: envoy.DefaultNodeID},
		{name: "ipv6 loopback", opts: envoy.BootstrapOptions{XDSAddress: "[::1]:7000"},
			wantHost: "::1", wantPort: 7000, wantNode: envoy.DefaultNodeID},
		{name: "unspecified ipv4 becomes loopback", opts: envoy.BootstrapOptions{XDSAddress: "0.0.0.0:18000"},
			wantHost: "127.0.0.1", wantPort: 18000, wantNode: envoy.DefaultNodeID},
		{name: "unspecified ipv6 becomes loopback", opts: envoy.BootstrapOptions{XDSAddress: "[::]:18000"},
			wantHost: "::1", wantPort: 18000, wantNode: envoy.DefaultNodeID},
		{name: "localhost", opts: envoy.BootstrapOptions{XDSAddress: "localhost:18001"},
			wantHost: "127.0.0.1", wantPort: 18001, wantNode: envoy.DefaultNodeID},
		{name: "empty means default", opts: envoy.BootstrapOptions{},
			wantHost: "127.0.0.1", wantPort: 18000, wantNode: envoy.DefaultNodeID},
		{name: "node id", opts: envoy.BootstrapOptions{XDSAddress: "127.0.0.1:1", NodeID: "edge-7", AdminPort: 65535},
			wantHost: "127.0.0.1", wantPort: 1, wantAdmin: 65535, wantNode: "edge-7"},
		{name: "hostname", opts: envoy.BootstrapOptions{XDSAddress: "switchyard:18000"}, wantErr: "IP address or localhost"},
		{name: "no port", opts: envoy.BootstrapOptions{XDSAddress: "127.0.0.1"}, wantErr: "missing port"},
		{name: "ipv6 without brackets", opts: envoy.BootstrapOptions{XDSAddress: "::1:18000"}, wantErr: "too many colons"},
		{name: "port zero", opts: envoy.BootstrapOptions{XDSAddress: "127.0.0.1:0"}, wantErr: "1-65535"},
		{name: "port too big", opts: envoy.BootstrapOptions{XDSAddress: "127.0.0.1:70000"}, wantErr: "1-65535"},
		{name: "port not a number", opts: envoy.BootstrapOptions{XDSAddress: "127.0.0.1:grpc"}, wantErr: "1-65535"},
		{name: "ipv6 zone", opts: envoy.BootstrapOptions{XDSAddress: "[fe80::1%eth0]:18000"}, wantErr: "zone"},
		{name: "admin port negative", opts: envoy.BootstrapOptions{AdminPort: -1}, wantErr: "admin port"},
		{name: "admin port too big", opts: envoy.BootstrapOptions{AdminPort: 65536}, wantErr: "admin port"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, err := envoy.Bootstrap(tc.opts)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			bs := decode(t, out)
			host, port := xdsEndpoint(t, bs)
			if host != tc.wantHost || port != tc.wantPort {
				t.Errorf("xDS endpoint = %s port %d, want %s port %d", host, port, tc.wantHost, tc.wantPort)
			}
			admin := bs.GetAdmin().GetAddress().GetSocketAddress()
			if admin.GetPortValue() != tc.wantAdmin || admin.GetAddress() != "127.0.0.1" {
				t.Errorf("admin = %s:%d, want 127.0.0.1:%d", admin.GetAddress(), admin.GetPortValue(), tc.wantAdmin)
			}
			if got := bs.GetNode().GetId(); got != tc.wantNode {
				t.Errorf("node id = %q, want %q", got, tc.wantNode)
			}
		})
	}
}

func TestBootstrapDoesNotModifyEmbeddedFile(t *testing.T) {
	before := string(envoy.BootstrapFile())
	if _, err := envoy.Bootstrap(envoy.BootstrapOptions{XDSAddress: "10.0.0.1:1", NodeID: "x"}); err != nil {
		t.Fatal(err)
	}
	if string(envoy.BootstrapFile()) != before {
		t.Fatal("Bootstrap changed the embedded file")
	}
}
