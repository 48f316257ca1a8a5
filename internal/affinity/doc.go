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
//   - Picker ranks a pool's runners for one request. ModeSoonest (the
//     default policy) picks the runner expected to finish the request
//     first, from the work it has sent each runner (Begin, Job.Done) and
//     what each runner will hold when the request runs; ModeFal follows
//     fal's rule (a non-busy runner holding the hint, else any non-busy
//     runner, never waiting); ModeLoadingMarks adds loading marks to it.
//
// The package is plain Go: it knows nothing of gRPC, HTTP or Envoy, nor of
// the registry. It reads runners (package runner) and counts requests in
// flight on them (Begin and Job.Done); package policy decides when.
//
// In the code map (README), the request path:
//
//	extproc ─▶ policy ─▶ affinity ─▶ runner (in-flight counts)
package affinity
