// Package controlplane is the control-plane benchmark: how fast a runner
// change reaches Envoy as pools grow, and how one switchyard fans a change
// out to many Envoys.
//
// Two measurements, each at every pool size:
//
//   - Registration: switchyard (package stack, in this process) and the real
//     Envoy 1.40 serve one pool of N endpoints: N-1 static loopback
//     addresses where nothing listens, plus one live HTTP runner registered through the
//     admin API. Timed from the registration call to Envoy holding the new
//     host (its cluster's membership_total gauge, polled on the admin API),
//     to the first request Envoy routes to it (a probe sent through Envoy
//     every few milliseconds, counted at the runner), and from the
//     deregistration call until Envoy has dropped the host. Switchyard's and
//     Envoy's memory are read at each size.
//   - ADS fan-out: many simulated Envoys (real gRPC ADS streams that ask for
//     CDS, then EDS for every EDS cluster, and ACK each response) connected to
//     the same switchyard; each push is one runner registration, timed from
//     the call to each client's receipt of the new EDS version.
//
// Making the probe deterministic: switchyard picks the least-loaded runner
// among equals at random, so a request would find the new runner among
// 10,000 by luck only. Instead every static runner is first given one
// loading mark (one request with a fresh hint each: a miss marks the runner
// it picks as loading that hint), and probes carry a hint no runner holds.
// A miss goes to a runner with the fewest hints, and only the new runner
// has none, so every probe's decision names it; Envoy sends the probe there
// as soon as its EDS host set has it.
//
// The package owns only the benchmark: it starts and stops what it measures
// in temporary directories and never touches the project's state or files.
package controlplane
