package config_test

import (
	"strings"
	"testing"

	"github.com/switchyard/switchyard/internal/config"
)

// routes[].cost is a numeric CEL expression; its body fields are read like
// the rules' (Envoy extracts them), and a wrong type is an error at its line.
func TestRouteCost(t *testing.T) {
	base := "listeners: [{name: l, address: 127.0.0.1, port: 10000}]\npools: [{name: a}]\nroutes:\n  - name: r\n    match: {prefix: /}\n    rules: [{pool: a}]\n"
	cfg, err := config.Parse("c.yaml", []byte(base+"    cost: double(body.width * body.height) / 1048576.0 * double(body.steps)\n"))
	if err != nil {
		t.Fatal(err)
	}
	r := cfg.Routes[0]
	if r.Cost == nil || !r.NeedsBody() || r.BodyPath() != config.BodyMetadata || len(r.BodyFields()) != 3 {
		t.Errorf("cost %v, needs body %v, path %q, fields %v: want the three fields read by Envoy", r.Cost, r.NeedsBody(), r.BodyPath(), r.BodyFields())
	}
	for _, ok := range []string{"1", "body.size", "2.5"} {
		if _, err := config.Parse("c.yaml", []byte(base+"    cost: "+ok+"\n")); err != nil {
			t.Errorf("cost %q: %v", ok, err)
		}
	}
	_, err = config.Parse("c.yaml", []byte(base+"    cost: '\"large\"'\n"))
	if err == nil || !strings.Contains(err.Error(), "c.yaml:7: routes[0].cost:") || !strings.Contains(err.Error(), "want") {
		t.Errorf("a string cost: %v, want an error at line 7 naming the types wanted", err)
	}
}
