package deploy

// The nats service: the official image of the nats-server release that
// go.mod requires (the one the tests embed), its command parsed and run by
// that release's own code, where the edges' configs look for it.

import (
	"flag"
	"io"
	"net"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/types"
	"github.com/nats-io/nats-server/v2/server"
)

const natsServerModule = "github.com/nats-io/nats-server/v2"

// natsOptions parses the nats service's command as the image runs it: the
// image's entrypoint is nats-server, so the command is its arguments, read
// by nats-server's own ConfigureOptions.
func natsOptions(t *testing.T, s types.ServiceConfig) *server.Options {
	t.Helper()
	fs := flag.NewFlagSet("nats-server", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	exits := false
	exit := func() { exits = true }
	opts, err := server.ConfigureOptions(fs, s.Command, exit, exit, exit)
	if err != nil {
		t.Fatalf("nats command %q: %v", s.Command, err)
	}
	if exits || opts == nil {
		t.Fatalf("nats command %q prints a text and exits; the server must run", s.Command)
	}
	return opts
}

// natsPorts are the ports the server listens on, by what they serve: the
// client port and any other it was asked to open.
func natsPorts(o *server.Options) map[string]int {
	out := map[string]int{"client port": o.Port}
	for what, port := range map[string]int{
		"monitoring port": o.HTTPPort, "https monitoring port": o.HTTPSPort, "profiling port": o.ProfPort,
		"cluster port": o.Cluster.Port, "gateway port": o.Gateway.Port, "leafnode port": o.LeafNode.Port,
		"websocket port": o.Websocket.Port, "mqtt port": o.MQTT.Port,
	} {
		if port != 0 {
			out[what] = port
		}
	}
	return out
}

func TestComposeNATSIsTheEmbeddedRelease(t *testing.T) {
	// The image runs the nats-server release that go.mod requires, which
	// the tests embed and which parses the command in these checks.
	v := strings.TrimPrefix(requiredVersion(t, natsServerModule), "v")
	if s := service(t, loadCompose(t), svcNATS); s.Image != "nats:"+v {
		t.Errorf("nats image = %q, want nats:%s (go.mod requires %s v%s)", s.Image, v, natsServerModule, v)
	}
	if server.VERSION != v {
		t.Errorf("these checks link nats-server %s, but go.mod requires v%s: go mod tidy in integration/deploy", server.VERSION, v)
	}
}

func TestComposeNATS(t *testing.T) {
	p := loadCompose(t)
	s := service(t, p, svcNATS)
	opts := natsOptions(t, s)
	if !opts.JetStream {
		t.Errorf("nats command %q does not turn JetStream on (-js); the edges share state in its key-value buckets", s.Command)
	}
	// The store is a tmpfs: forgotten with the container, as the runners'
	// state is.
	if !slices.ContainsFunc(s.Volumes, func(v types.ServiceVolumeConfig) bool {
		return v.Type == types.VolumeTypeTmpfs && v.Target == opts.StoreDir
	}) {
		t.Errorf("nats stores JetStream in %q (-sd), which is not a tmpfs mount of the service (volumes %+v)", opts.StoreDir, s.Volumes)
	}
	if ip, err := netip.ParseAddr(opts.Host); err != nil || !ip.IsLoopback() {
		t.Errorf("nats listens on %q (-a); want the namespace's loopback, which the edges use", opts.Host)
	}

	// Every edge's cluster.nats is this server (that the edges' cluster
	// sections agree is TestComposeEdgesShareOneFleet's).
	_, _, cfg := switchyardConfig(t, p, svcSwitchyard)
	if cfg.Cluster == nil {
		t.Fatalf("%s's config has no cluster section", svcSwitchyard)
	}
	listen := net.JoinHostPort(opts.Host, strconv.Itoa(opts.Port))
	for _, raw := range cfg.Cluster.NATS {
		if u, err := url.Parse(raw); err != nil || u.Scheme != "nats" || u.Host != listen {
			t.Errorf("cluster.nats has %q, want nats://%s, where the nats service listens", raw, listen)
		}
	}

	// Run it, with the store and the port swapped for the test's.
	opts.StoreDir = t.TempDir()
	opts.Port = server.RANDOM_PORT
	opts.NoSigs, opts.NoLog = true, true
	srv, err := server.NewServer(opts)
	if err != nil {
		t.Fatalf("nats command %q: %v", s.Command, err)
	}
	srv.Start()
	defer func() {
		srv.Shutdown()
		srv.WaitForShutdown()
	}()
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatalf("nats command %q: not ready after 10s", s.Command)
	}
	if !srv.JetStreamEnabled() {
		t.Errorf("nats command %q: the server runs without JetStream", s.Command)
	}
}
