// Package affinity owns hint affinity: what each runner reports it holds
// (the X-Fal-Runner-Hints response header) and the choice of runner for a
// request that may carry a hint.
//
// It has three parts:
//
//   - ParseHints and ValidHint turn an untrusted header into a bounded list
//     of hints; values outside the safe set are dropped, never stored.
//   - Index remembers each runner's current hints, bounded in memory by
//     LRU caps on distinct hints, hints per runner and runners tracked, so
//     no client or runner can grow it without bound.
//   - Picker ranks a pool's runners for one request, following fal's rule
//     (a non-busy runner holding the hint, else any non-busy runner, never
//     waiting), with Switchyard's change selectable by Mode: the runner a
//     miss is sent to is remembered as loading the hint, so a burst for a
//     new model lands on one runner instead of cold-loading everywhere.
//
// The package is plain Go: it knows nothing of gRPC, HTTP or Envoy, and it
// does not change runners' in-flight counts (the caller Acquires the runner
// it dispatches to and Releases it when the response ends). It reads the
// registry's runners but never modifies the registry.
package affinity
