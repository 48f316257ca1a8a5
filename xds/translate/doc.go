// Package translate turns a validated config and the live runner set into
// the Envoy resources switchyard publishes: listeners, route configurations,
// pool clusters and their endpoints. It is pure: no I/O, no clock, and the
// same input always gives the same, sorted output. One file per resource kind.
//
// In the code map (README), the control plane:
//
//	config + runners ─▶ translate ─▶ xds ──(ADS)──▶ Envoy
//
// The names Envoy's config shares with the ext_proc server come from package
// contract.
package translate
