package config_test

import (
	"os"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/internal/config"
)

// FuzzParse feeds arbitrary YAML to the loader: it never panics; a file it
// refuses gets at least one problem, each with the file's name; a file it
// accepts is internally consistent (every rule's pool exists, every route
// has a default rule, every route's body path is one of the three).
func FuzzParse(f *testing.F) {
	if seed, err := os.ReadFile("testdata/design.yaml"); err == nil {
		f.Add(string(seed))
	}
	f.Add(pathsConfig)
	f.Add("listeners: [{name: l, address: 127.0.0.1, port: 1}]\npools: [{name: a}]\nroutes: [{name: r, match: {prefix: /}, rules: [{pool: a}]}]\n")
	f.Add("routes: [{rules: [{when: 'body.x[0] > size(body)', split: {weights: {a: 1}}}]}]")
	f.Add("listeners: *a\n")
	f.Add("server: {admin_auth: {token_files: [/dev/null]}}")
	f.Fuzz(func(t *testing.T, yaml string) {
		cfg, err := config.Parse("fuzz.yaml", []byte(yaml))
		if err != nil {
			if !strings.Contains(err.Error(), "fuzz.yaml") {
				t.Fatalf("error without the file name: %v", err)
			}
			return
		}
		for i := range cfg.Routes {
			r := &cfg.Routes[i]
			if len(r.Rules) == 0 || r.Rules[len(r.Rules)-1].When != nil {
				t.Fatalf("route %s accepted without a default rule", r.Name)
			}
			for _, tg := range r.Targets() {
				for _, p := range append([]string{tg.Pool}, tg.Fallback...) {
					if _, ok := cfg.Pool(p); !ok {
						t.Fatalf("route %s names unknown pool %q", r.Name, p)
					}
				}
			}
			switch r.BodyPath() {
			case config.BodyNone, config.BodyMetadata, config.BodyBuffered:
			default:
				t.Fatalf("route %s: body path %q", r.Name, r.BodyPath())
			}
			_ = cfg.Decides(r)
		}
		for _, l := range cfg.Listeners {
			cfg.RequestHeadersRead(l.Name)
		}
	})
}
