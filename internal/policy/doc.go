// Package policy owns a request's whole life as routing sees it. Decide
// says where it goes: which config rule matches (CEL over body, headers,
// path and method), which split variant, which pool and fallbacks, which
// hint, and which runners in the pool; the Decision is plain data.
// Dispatch sends it and returns a Flight, through which the protocol layer
// reports what follows (Respond: the response came from runner X with
// status S and hints H; End: the request ended), and here are the rules for
// what is learnt from it: the runners' hints, which requests teach the
// pools' costs, which pool served, when a runner's work ends. It is plain
// Go over plain structs; it knows nothing of gRPC or Envoy, so the
// discrete-event simulation in its tests drives exactly this API.
//
// In the code map (README), the request path:
//
//	Envoy ──(ext_proc)──▶ extproc ─▶ policy ─▶ affinity (pickers, hints, costs) ─▶ runner
package policy
