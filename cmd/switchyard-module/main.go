// Command switchyard-module is switchyard's Envoy dynamic module
// (server.edge_module): built with `make module` into
// bin/libswitchyard.so (go build -buildmode=c-shared), loaded by Envoy,
// it registers the filter of package edgemodule with Envoy's Go SDK.
//
// Envoy must run with GODEBUG=cgocheck=0 in its environment (the SDK
// hands Envoy Go-allocated strings); switchyard's own Envoy launcher sets it.
package main

// Envoy provides the SDK's callbacks when it loads the module; a plain
// `go build ./...`, which links every command as a program, must not
// refuse them.

/*
#cgo LDFLAGS: -Wl,--unresolved-symbols=ignore-all
*/
import "C"

import (
	sdk "github.com/envoyproxy/envoy/source/extensions/dynamic_modules/sdk/go"
	_ "github.com/envoyproxy/envoy/source/extensions/dynamic_modules/sdk/go/abi"
	"github.com/envoyproxy/envoy/source/extensions/dynamic_modules/sdk/go/shared"

	"github.com/switchyard/switchyard/internal/contract"
	"github.com/switchyard/switchyard/internal/edgemodule"
)

func main() {}

func init() {
	sdk.RegisterHttpFilterConfigFactories(map[string]shared.HttpFilterConfigFactory{
		contract.ModuleFilterConfigName: &edgemodule.ConfigFactory{M: edgemodule.New()},
	})
}
