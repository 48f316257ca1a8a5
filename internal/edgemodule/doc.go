// Package edgemodule is switchyard's decision inside Envoy: the HTTP filter
// of the dynamic module that server.edge_module loads into each Envoy in
// ext_proc's place (a prototype, behind that switch).
//
// It runs the same policy engine as the ext_proc server over the same
// config file (handed to it as its filter config), so a request gets the
// same rule, pool, hint and runner; what changes is where: in the Envoy
// worker that holds the request, with no gRPC exchange. It sets what
// ext_proc's answer sets (the pool header and a route refresh, the
// override_host runner list, the decision's metadata for the decision
// headers), and learns each response's runner and reported hints, and the
// request's end, as Envoy passes them, instead of from the access log.
//
// What it does not do yet, and validate refuses: routes that read the
// body, pipelines, runners registered through the admin API (only the
// pools' static runners), shared state between edges (cluster), decision
// records. The package owns the filter (and Build, which builds the module
// for tests and benchmarks); cmd/switchyard-module builds it into the
// shared object with Envoy's Go SDK.
package edgemodule
