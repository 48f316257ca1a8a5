// Package edgemodule is switchyard's decision inside Envoy: the HTTP filter
// of the dynamic module that server.edge_module loads into each Envoy in
// ext_proc's place (a prototype, behind that switch).
//
// It runs the same policy engine as the ext_proc server over the same
// config file and runners (its filter config, which switchyard serves by
// ECDS and updates on every reload and runner change), so a request gets the
// same rule, pool, hint and runner; what changes is where: in the Envoy
// worker that holds the request, with no gRPC exchange. A route that reads
// the body has it held to its end and its fields found in it (Envoy's
// json_to_metadata is not used: it parses the whole body, and costs more
// than the module's own search for the fields). It sets what
// ext_proc's answer sets (the pool header and a route refresh, the
// override_host runner list, the decision's metadata for the decision
// headers) or answers the same 400 and 413, and learns each response's
// runner and reported hints, and the request's end, as Envoy passes them,
// instead of from the access log.
//
// It answers a client's x-switchyard-explain with the decision record, as
// ext_proc does. What it does not do yet, and validate refuses: pipelines,
// shared state between edges (cluster), the record in Envoy's JSON access
// log or in spans. The package owns the filter (and Build, which builds
// the module for tests and benchmarks); cmd/switchyard-module builds it
// into the shared object with Envoy's Go SDK.
package edgemodule
