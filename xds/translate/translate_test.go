package translate_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/switchyard/switchyard/internal/config"
	"github.com/switchyard/switchyard/xds/translate"
)

var update = flag.Bool("update", false, "rewrite the golden files (and delete stale ones)")

// goldenFiles are the outputs of one case, one per resource type.
var goldenFiles = []string{"listeners.yaml", "routes.yaml", "clusters.yaml", "endpoints.yaml"}

type extraRunner struct {
	Pool     string `yaml:"pool"`
	Address  string `yaml:"address"`
	Draining bool   `yaml:"draining"`
}

// input reads a case: its config (TLS files need not exist for
// translation, so the config is parsed and TLS problems are tolerated) and
// optional run-time runners.
func input(t *testing.T, dir string) translate.Input {
	t.Helper()
	cfg := loadTolerantTLS(t, filepath.Join(dir, "config.yaml"))
	eps := map[string][]translate.Endpoint{}
	for _, p := range cfg.Pools {
		eps[p.Name] = []translate.Endpoint{}
		for _, a := range p.Runners {
			eps[p.Name] = append(eps[p.Name], translate.Endpoint{Address: a})
		}
	}
	if data, err := os.ReadFile(filepath.Join(dir, "runners.yaml")); err == nil {
		var extra []extraRunner
		if err := yaml.Unmarshal(data, &extra); err != nil {
			t.Fatal(err)
		}
		for _, r := range extra {
			eps[r.Pool] = append(eps[r.Pool], translate.Endpoint{Address: r.Address, Draining: r.Draining})
		}
	}
	return translate.Input{Config: cfg, Endpoints: eps}
}

func loadTolerantTLS(t *testing.T, path string) *config.Config {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// Point TLS files at a file that exists so validation passes, then put
	// the written paths back: the golden output shows them.
	abs, err := filepath.Abs(path)
	if err != nil {
		t.Fatal(err)
	}
	switchyardFiles := []string{"/etc/switchyard/tls.crt", "/etc/switchyard/tls.key", "/etc/switchyard/grpc.crt", "/etc/switchyard/grpc.key", "/etc/switchyard/grpc-ca.crt"}
	var pairs []string
	for _, f := range switchyardFiles {
		pairs = append(pairs, f, abs)
	}
	fixed := strings.NewReplacer(pairs...).Replace(string(data))
	cfg, err := config.Parse(path, []byte(fixed))
	if err != nil {
		t.Fatal(err)
	}
	for i := range cfg.Listeners {
		if tls := cfg.Listeners[i].TLS; tls != nil {
			cfg.Listeners[i].TLS = &config.TLS{CertFile: "/etc/switchyard/tls.crt", KeyFile: "/etc/switchyard/tls.key"}
		}
	}
	if g := cfg.Server.GRPCTLS; g != nil {
		g.CertFile, g.KeyFile, g.ClientCAFile = "/etc/switchyard/grpc.crt", "/etc/switchyard/grpc.key", "/etc/switchyard/grpc-ca.crt"
	}
	return cfg
}

func TestGolden(t *testing.T) {
	cases, err := filepath.Glob("testdata/*/config.yaml")
	if err != nil || len(cases) == 0 {
		t.Fatalf("no golden cases: %v", err)
	}
	for _, c := range cases {
		dir := filepath.Dir(c)
		t.Run(filepath.Base(dir), func(t *testing.T) {
			res, err := translate.Translate(input(t, dir))
			if err != nil {
				t.Fatal(err)
			}
			outputs := map[string][]byte{
				"listeners.yaml": render(t, res.Listeners),
				"routes.yaml":    render(t, res.Routes),
				"clusters.yaml":  render(t, res.Clusters),
				"endpoints.yaml": render(t, res.Endpoints),
			}
			names := goldenFiles
			// Only a config with grpc_tls has secrets.
			if len(res.Secrets) > 0 {
				outputs["secrets.yaml"] = render(t, res.Secrets)
				names = append(slices.Clip(names), "secrets.yaml")
			} else if _, err := os.Stat(filepath.Join(dir, "secrets.yaml")); err == nil {
				t.Errorf("%s/secrets.yaml: no secrets any more (run go test ./xds/translate -update)", dir)
			}
			// Only a config with server.edge_module has ECDS extensions.
			if len(res.Extensions) > 0 {
				outputs["extensions.yaml"] = render(t, res.Extensions)
				names = append(slices.Clip(names), "extensions.yaml")
			} else if _, err := os.Stat(filepath.Join(dir, "extensions.yaml")); err == nil {
				t.Errorf("%s/extensions.yaml: no extensions any more (run go test ./xds/translate -update)", dir)
			}
			if *update {
				writeGolden(t, dir, outputs)
				return
			}
			for _, name := range names {
				want, err := os.ReadFile(filepath.Join(dir, name))
				if err != nil {
					t.Fatalf("%v (run go test ./xds/translate -update)", err)
				}
				if !bytes.Equal(want, outputs[name]) {
					t.Errorf("%s/%s differs from what Envoy would now receive; got:\n%s", dir, name, outputs[name])
				}
			}
		})
	}
}

// writeGolden writes the outputs and removes files no output has any more.
func writeGolden(t *testing.T, dir string, outputs map[string][]byte) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if _, ok := outputs[e.Name()]; !ok && e.Name() != "config.yaml" && e.Name() != "runners.yaml" {
			if err := os.Remove(filepath.Join(dir, e.Name())); err != nil {
				t.Fatal(err)
			}
		}
	}
	for name, data := range outputs {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// render prints resources as YAML with sorted keys: protojson's output is
// deliberately unstable, so it is parsed and re-encoded.
func render[T proto.Message](t *testing.T, msgs []T) []byte {
	t.Helper()
	var docs []any
	for _, m := range msgs {
		js, err := protojson.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		var v any
		if err := json.Unmarshal(js, &v); err != nil {
			t.Fatal(err)
		}
		docs = append(docs, v)
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(docs); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestDeterministic(t *testing.T) {
	in := input(t, "testdata/design")
	first, err := translate.Translate(in)
	if err != nil {
		t.Fatal(err)
	}
	for range 20 {
		again, err := translate.Translate(in)
		if err != nil {
			t.Fatal(err)
		}
		for i := range first.Clusters {
			if !proto.Equal(first.Clusters[i], again.Clusters[i]) {
				t.Fatalf("cluster %d differs between runs", i)
			}
		}
		for i := range first.Routes {
			if !proto.Equal(first.Routes[i], again.Routes[i]) {
				t.Fatalf("route config %d differs between runs", i)
			}
		}
	}
}

// Every resource passes its own validation rules: Envoy would reject it
// otherwise.
func TestResourcesValidate(t *testing.T) {
	for _, dir := range []string{"testdata/design", "testdata/tls-and-listeners", "testdata/grpc-tls", "testdata/observe", "testdata/tracing"} {
		res, err := translate.Translate(input(t, dir))
		if err != nil {
			t.Fatal(err)
		}
		var all []interface{ ValidateAll() error }
		for _, r := range res.Listeners {
			all = append(all, r)
		}
		for _, r := range res.Routes {
			all = append(all, r)
		}
		for _, r := range res.Clusters {
			all = append(all, r)
		}
		for _, r := range res.Endpoints {
			all = append(all, r)
		}
		for _, r := range res.Secrets {
			all = append(all, r)
		}
		for _, r := range res.Extensions {
			all = append(all, r)
		}
		for _, r := range all {
			if err := r.ValidateAll(); err != nil {
				t.Errorf("%s: %v", dir, err)
			}
		}
	}
}
