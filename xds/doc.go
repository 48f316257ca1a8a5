// Package xds owns what switchyard tells Envoy over ADS: it turns each new
// config or runner set into resources (package translate), checks them
// (ValidateAll on every proto, Consistent on the snapshot), publishes them
// with versions unique across restarts, keeps the last good snapshot when a
// build fails, and watches Envoy's ACKs and NACKs.
//
// In the code map (README), the control plane:
//
//	config + registry ─▶ translate ─▶ xds ──(ADS)──▶ Envoy
package xds
