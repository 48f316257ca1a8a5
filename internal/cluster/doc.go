// Package cluster shares runner state between the switchyard replicas of one
// fleet through NATS JetStream key-value buckets, so that every edge routes
// on what all of them know:
//
//	edge A: switchyard ─┐                          ┌─ switchyard: edge B
//	                    ├──▶ NATS JetStream KV ◀───┤
//	edge C: switchyard ─┘  <prefix>_runners        └─ ...
//	                       <prefix>_hints
//	                       <prefix>_load
//
// What is shared, one bucket each:
//
//   - runners: registrations, renewals and drains made through any replica's
//     admin API (key: pool and address; value: state and TTL). Every replica
//     applies them to its own registry and runs the TTLs on its own clock.
//   - hints: the hints header each runner last reported, as any replica saw
//     it (key: address), applied to every replica's hint index.
//   - load: each replica's own work in flight per runner (key: replica),
//     written while it changes and at least every LoadHeartbeat; a replica
//     whose share is not refreshed within LoadExpiry is forgotten, timed on
//     the reader's clock.
//
// Reads stay local: the request path reads the registry, the index and the
// pickers as before and never waits on the network. Writes are coalesced:
// hints and load shares are flushed at most every FlushInterval, the latest
// value per key, and only when it changed. With NATS unreachable every
// replica keeps routing on what it knows; when NATS is back it recreates the
// buckets if needed, writes its own state again and watches again.
//
// It knows nothing of Envoy or gRPC; it talks to the registry, the policy
// engine and NATS.
package cluster
