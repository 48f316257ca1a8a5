// Package integration holds the tests that run switchyard against the real,
// pinned Envoy: every routing feature is proven by HTTP sent through Envoy
// and by where it landed. The harness starts Envoy and switchyard on free
// loopback ports, waits on their readiness, and prints both logs when a
// test fails. Tests fail, never skip, when Envoy is missing (run `make envoy`).
package integration
