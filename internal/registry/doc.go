// Package registry owns the live set of runners per pool: static runners
// from the config file, runners registered through the admin API with a
// heartbeat TTL, and runners draining after deregistration. It tells its
// subscriber when the set changes; it knows nothing of xDS or HTTP.
//
// In the code map (README), shared state:
//
//	config, admin API ─▶ registry ─▶ translate (endpoints), policy (active runners)
package registry
