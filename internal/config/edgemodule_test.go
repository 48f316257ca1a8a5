package config_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/internal/config"
)

// server.edge_module: the path resolves from the config's folder, the
// file's text is kept for the module, and what the module does not do yet
// is refused at its line.
func TestEdgeModule(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "libswitchyard.so"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	const head = "listeners: [{name: l, address: 127.0.0.1, port: 10000}]\nserver:\n  edge_module: libswitchyard.so\npools: [{name: p}, {name: q}]\n"
	const headerRoute = "routes: [{name: r, match: {prefix: /}, rules: [{when: 'headers[\"x-a\"] == \"1\"', pool: p}, {pool: q}]}]\n"
	name := filepath.Join(dir, "switchyard.yaml")
	src := head + headerRoute
	cfg, err := config.Parse(name, []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(dir, "libswitchyard.so"); cfg.Server.EdgeModule != want || string(cfg.Source) != src || len(cfg.Warnings) != 0 {
		t.Fatalf("edge_module %q (want %q), source kept %v, warnings %v", cfg.Server.EdgeModule, want, string(cfg.Source) == src, cfg.Warnings)
	}
	// Without the switch, the text is not kept.
	plain, err := config.Parse(name, []byte(strings.Replace(src, "  edge_module: libswitchyard.so\n", "  admin: 127.0.0.1:18001\n", 1)))
	if err != nil || plain.Source != nil || plain.Server.EdgeModule != "" {
		t.Fatalf("without edge_module: %v, source %d bytes", err, len(plain.Source))
	}
	// A module this machine does not have is a warning: Envoy may see
	// another filesystem.
	missing, err := config.Parse(name, []byte(strings.Replace(src, "libswitchyard.so", "/nowhere/libswitchyard.so", 1)))
	if err != nil || len(missing.Warnings) != 1 || !strings.Contains(missing.Warnings[0].String(), "server.edge_module") {
		t.Fatalf("missing module: %v, warnings %v", err, missing.Warnings)
	}

	// Rules may read the body, as on the ext_proc path.
	if _, err := config.Parse(name, []byte(head+"routes: [{name: r, match: {prefix: /}, hint_from: body.model, rules: [{when: 'body.width > 512', pool: p}, {pool: q}]}]\n")); err != nil {
		t.Fatalf("a body rule with edge_module: %v", err)
	}
	for _, tt := range []struct{ body, want string }{
		{"routes:\n  - {name: gen, match: {prefix: /gen}, rules: [{pool: p}]}\n  - name: chain\n    match: {prefix: /chain}\n    pipeline: {steps: [{name: one, route: gen, input: body}]}\n",
			`switchyard.yaml:9: routes[1].pipeline: route "chain": pipelines need switchyard's ext_proc path, not server.edge_module`},
		{headerRoute + "observe: {access_log: {path: /tmp/a.log}}\n", "observe.access_log: needs switchyard's ext_proc path"},
		{headerRoute + "observe: {tracing: {endpoint: 127.0.0.1:4317}}\n", "observe.tracing: needs switchyard's ext_proc path"},
		{headerRoute + "cluster: {nats: {url: nats://127.0.0.1:4222}, replica: a}\n", "server.edge_module: cannot be used with cluster"},
	} {
		_, err := config.Parse(name, []byte(head+tt.body))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: got %v, want %q", strings.TrimSpace(tt.body), err, tt.want)
		}
	}
}
