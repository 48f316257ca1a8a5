// Package pipeline owns running a pipeline route's request (routes[].pipeline):
// the HTTP handler Envoy sends those requests to (server.pipelines), which
// reads the client's JSON body, builds each step's input with its CEL
// expression, sends the step as a request of its own back through the edge
// (the listener the client came in on, so the step's route decides it with
// its rules, hints and fallback), and answers with the output, or with a
// JSON error naming the step that failed.
//
//	client ─▶ Envoy ─▶ pipeline executor ─┬─ step 1 ─▶ Envoy ─▶ ext_proc, pool, runner
//	                                      └─ step 2 ─▶ Envoy ─▶ …
//
// It knows nothing of Envoy's protocols, pools or runners: a step's pool
// and runner are what the step's answer headers say. It never modifies the
// config, the registry or the policy's state.
package pipeline
