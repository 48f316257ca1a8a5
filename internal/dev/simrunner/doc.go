// Package simrunner owns the project's one simulated GPU runner: an
// http.Handler that holds K models in an LRU cache, pays a load time for a
// model it does not hold and an inference time scaled by the image size,
// limits how many requests it serves at once, and reports the models it holds
// in the X-Fal-Runner-Hints response header after every response, as a fal
// runner's provide_hints() does.
//
// In the code map (README), dev tooling:
//
//	Envoy ──HTTP──▶ simrunner (stands in for a GPU runner)
//
// The integration tests run it in-process, `switchyard sim-runner` serves it
// on a port (see Serve), and the demo and the benchmarks drive it. It owns
// its own endpoints under /_sim/ (stats, Prometheus metrics, reset) and a
// per-runner Prometheus registry. It must not touch the global Prometheus
// registry, the switchyard state or the admin API: registration with an edge
// is the caller's business (the CLI does it).
//
// Behaviours worth knowing:
//
//   - Overload. Beyond MaxConcurrency a request either waits for a slot in
//     arrival order ("queue") or is answered 503 at once ("reject"). InFlight
//     counts requests holding a slot, Queued those waiting for one, so
//     MaxInFlight never exceeds MaxConcurrency.
//   - Concurrent misses. When several requests need the same model that is
//     not loaded, the first one loads it and the others wait for that load.
//     All of them count as Misses and report "hit": false (they all waited
//     for a load); ColdLoads counts loads actually done, so it grows by one.
//   - Cancellation. A request whose client goes away stops waiting at once
//     (in the queue, during a load, during inference), gives its slot back
//     and is counted in Canceled. A load belongs to the request that started
//     it: if that client goes away the load is abandoned (not counted in
//     ColdLoads) and one of the requests waiting for it starts it again.
//   - Counters. Reset zeroes the counters of Stats, not the loaded models,
//     the in-flight or queued requests. The Prometheus counters never go
//     down (Prometheus reads a decrease as a restart), so Reset leaves them
//     alone.
package simrunner
