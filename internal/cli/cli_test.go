package cli_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/cli"
	"github.com/switchyard/switchyard/internal/testutil/netutil"
)

func write(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "switchyard.yaml")
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestValidate(t *testing.T) {
	var out, errOut bytes.Buffer
	if err := cli.Main(context.Background(), []string{"validate", "../config/testdata/design.yaml"}, &out, &errOut); err != nil {
		t.Fatalf("valid file: %v\n%s", err, errOut.String())
	}
	if !strings.Contains(out.String(), "ok (1 listeners, 5 pools, 2 routes)") {
		t.Errorf("stdout %q", out.String())
	}

	bad := write(t, "listeners: [{name: l, address: 127.0.0.1, port: 0}]\npools: [{name: a, max_concurency: 2}]\nroutes: [{name: r, match: {prefix: /}, rules: [{pool: b}]}]\n")
	out.Reset()
	errOut.Reset()
	err := cli.Main(context.Background(), []string{"validate", bad}, &out, &errOut)
	if !errors.Is(err, cli.ErrInvalid) {
		t.Fatalf("err = %v, want ErrInvalid", err)
	}
	for _, want := range []string{
		bad + ":1: listeners[0].port: port 0 is out of range",
		bad + `:2: pools[0].max_concurency: unknown field (did you mean "max_concurrency"?)`,
		bad + `:3: routes[0].rules[0].pool: unknown pool "b"`,
		"3 problem(s)",
	} {
		if !strings.Contains(errOut.String(), want) {
			t.Errorf("stderr lacks %q:\n%s", want, errOut.String())
		}
	}
}

// A deprecated name is valid, with a warning that names its place.
func TestValidateWarnsOfDeprecatedNames(t *testing.T) {
	old := write(t, "listeners: [{name: l, address: 127.0.0.1, port: 10000}]\nhints: {policy: switchyard}\npools: [{name: a}]\nroutes: [{name: r, match: {prefix: /}, rules: [{pool: a}]}]\n")
	var out, errOut bytes.Buffer
	if err := cli.Main(context.Background(), []string{"validate", old}, &out, &errOut); err != nil {
		t.Fatalf("a deprecated name made the file invalid: %v\n%s", err, errOut.String())
	}
	if want := "warning: " + old + `:2: hints.policy: "switchyard" is deprecated`; !strings.Contains(errOut.String(), want) {
		t.Errorf("stderr lacks %q:\n%s", want, errOut.String())
	}
	if !strings.Contains(out.String(), "ok (1 listeners, 1 pools, 1 routes)") {
		t.Errorf("stdout %q", out.String())
	}
}

func TestUsage(t *testing.T) {
	var out, errOut bytes.Buffer
	for _, args := range [][]string{nil, {"frobnicate"}, {"validate"}} {
		if err := cli.Main(context.Background(), args, &out, &errOut); !errors.Is(err, cli.ErrUsage) {
			t.Errorf("%v: err = %v, want ErrUsage", args, err)
		}
	}
}

func TestServeRefusesInvalidConfig(t *testing.T) {
	var out, errOut bytes.Buffer
	bad := write(t, "pools: []\n")
	if err := cli.Main(context.Background(), []string{"serve", "--config", bad}, &out, &errOut); !errors.Is(err, cli.ErrInvalid) {
		t.Fatalf("err = %v, want ErrInvalid", err)
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	p, err := netutil.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("127.0.0.1:%d", p)
}

func TestServeRunsUntilCancelled(t *testing.T) {
	admin := freeAddr(t)
	cfg := write(t, fmt.Sprintf(`listeners: [{name: l, address: 127.0.0.1, port: 10000}]
server: {grpc: %s, admin: %s}
pools: [{name: a, runners: [{address: 127.0.0.1:9}]}]
routes: [{name: r, match: {prefix: /}, rules: [{pool: a}]}]
`, freeAddr(t), admin))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	var out, errOut bytes.Buffer
	go func() { done <- cli.Main(ctx, []string{"serve", "--config", cfg}, &out, &errOut) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get("http://" + admin + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("not ready: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve returned %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not stop after its context ended")
	}
}

// validate says what runs a pipeline route and where its steps go.
func TestValidatePipeline(t *testing.T) {
	p := write(t, `listeners: [{name: l, address: 127.0.0.1, port: 10000}]
pools: [{name: a}, {name: b}]
routes:
  - name: clean-upscale
    match: {path: /v1/pipelines/clean-upscale}
    pipeline:
      timeout: 2m
      steps:
        - {name: upscale, route: upscale, input: '{"image_url": body.image_url}'}
        - {name: remove-background, route: remove-background, input: '{"image_url": steps.upscale.image_url}'}
  - {name: upscale, match: {prefix: /v1/upscale}, rules: [{pool: a}]}
  - {name: remove-background, match: {prefix: /v1/remove-background}, rules: [{pool: b}]}
`)
	var out, errOut bytes.Buffer
	if err := cli.Main(context.Background(), []string{"validate", p}, &out, &errOut); err != nil {
		t.Fatalf("%v\n%s", err, errOut.String())
	}
	want := "  route clean-upscale: pipeline run by switchyard at 127.0.0.1:18002, timeout 2m0s: upscale (upscale /v1/upscale) → remove-background (remove-background /v1/remove-background); each step a request through the edge\n"
	if !strings.Contains(out.String(), want) {
		t.Errorf("stdout lacks\n%s\ngot:\n%s", want, out.String())
	}
}

// validate says which routes the module decides in Envoy, and on what.
func TestValidateEdgeModule(t *testing.T) {
	p := write(t, `listeners: [{name: l, address: 127.0.0.1, port: 10000}]
server: {edge_module: /nowhere/libswitchyard.so}
pools: [{name: a}, {name: b, load_balancer: {policy: round_robin}}]
routes:
  - {name: sized, match: {prefix: /sized}, rules: [{when: 'body.width > 512', pool: a}, {pool: b}]}
  - {name: hinted, match: {prefix: /hinted}, rules: [{pool: a}]}
  - {name: plain, match: {prefix: /}, rules: [{pool: b}]}
`)
	var out, errOut bytes.Buffer
	if err := cli.Main(context.Background(), []string{"validate", p}, &out, &errOut); err != nil {
		t.Fatalf("%v\n%s", err, errOut.String())
	}
	for _, want := range []string{
		"  route sized: decided in Envoy by the module on headers + body fields (body.width) found in the body it holds\n",
		"  route hinted: decided in Envoy by the module on headers only\n",
		"  route plain: left to Envoy (one pool Envoy balances by itself: no exchange with switchyard)\n",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("stdout lacks\n%s\ngot:\n%s", want, out.String())
		}
	}
	if !strings.Contains(errOut.String(), "warning: ") || !strings.Contains(errOut.String(), "server.edge_module") {
		t.Errorf("no warning for a module that is not here: %s", errOut.String())
	}
}
