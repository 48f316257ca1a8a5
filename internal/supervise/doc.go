// Package supervise runs the child processes of switchyard's tools: Envoy for
// `switchyard up` (through package envoy), switchyard and Envoy for the
// integration tests, and the runners, routers and Envoys of the benchmarks.
// Each is started, watched and stopped the same way, so a fix to one (an
// orphan, a lost log line, a hang on stop) is a fix to all:
//
//   - [Start] runs the command in a process group of its own, so that a
//     terminal's Ctrl-C reaches only the caller, which decides the order of
//     shutdown, and so that [Process.Stop] reaches whatever the child started
//     in its group. On Linux the child also gets SIGKILL when its parent dies
//     (Pdeathsig), so a killed caller leaves no orphan behind.
//   - The child's stdout and stderr go to a bounded in-memory log
//     ([Process.Log]) and, if [Options.Tee] is set, to that writer too.
//   - With [Options.Ready], Start returns only once the caller's [Probe]
//     passes. It gives up as soon as the child exits, or when
//     [Options.ReadyTimeout] or the context runs out; it then stops the
//     child and returns an error that says how it exited or what the probe
//     last said, followed by the tail of the child's log.
//   - [Process.Stop] sends SIGTERM to the group, waits [Options.Grace], then
//     sends SIGKILL to the group. It is idempotent and safe from several
//     goroutines. [Process.Kill] skips the grace, for tests that need a crash.
//
// The package knows nothing about what it runs: finding binaries, writing
// config files and what "ready" means stay with the callers.
package supervise
