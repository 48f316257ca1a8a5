// Package runner holds the live state the request path shares about one GPU
// runner: which pool and address it is, and how many requests switchyard
// has sent it that have not finished, counted without locks.
//
//	registry (which runners exist) ──▶ runner ◀── policy, affinity (pick, count)
//
// Which runners exist, and their lifecycle (registration, heartbeats,
// drains), is package registry's; a Runner here is only what a pick reads
// and a dispatch counts. It is a leaf of the project's imports.
package runner

import "sync/atomic"

// Runner is one runner as the request path sees it. Pool and Address do not
// change; the in-flight count does, concurrently.
type Runner struct {
	Pool    string
	Address string

	inflight atomic.Int64
}

// InFlight is the number of requests switchyard has sent to the runner that
// have not finished.
func (r *Runner) InFlight() int64 { return r.inflight.Load() }

// Acquire and Release count a request in flight on the runner.
func (r *Runner) Acquire() { r.inflight.Add(1) }
func (r *Runner) Release() { r.inflight.Add(-1) }
