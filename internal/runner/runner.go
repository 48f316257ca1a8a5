// Package runner holds the live state the request path shares about one GPU
// runner: which pool and address it is, and how many requests are in flight
// on it — sent by this replica, counted without locks, plus what the other
// replicas of a cluster last said they have sent it.
//
//	registry (which runners exist) ──▶ runner ◀── policy, affinity (pick, count)
//	                                     ▲
//	                         cluster (other replicas' shares)
//
// Which runners exist, and their lifecycle (registration, heartbeats,
// drains), is package registry's; a Runner here is only what a pick reads
// and a dispatch counts. It is a leaf of the project's imports.
package runner

import "sync/atomic"

// Runner is one runner as the request path sees it. Pool and Address do not
// change; the in-flight counts do, concurrently.
type Runner struct {
	Pool    string
	Address string

	inflight atomic.Int64
	remote   atomic.Int64
}

// InFlight is the number of requests in flight on the runner: those this
// replica sent that have not finished, plus the other replicas' (Remote).
func (r *Runner) InFlight() int64 { return r.inflight.Load() + r.remote.Load() }

// Local is the number of requests this replica has sent to the runner that
// have not finished.
func (r *Runner) Local() int64 { return r.inflight.Load() }

// Remote is what the other replicas last reported in flight on the runner.
func (r *Runner) Remote() int64 { return r.remote.Load() }

// SetRemote replaces the other replicas' count.
func (r *Runner) SetRemote(n int64) { r.remote.Store(n) }

// Acquire and Release count a request of this replica in flight on the runner.
func (r *Runner) Acquire() { r.inflight.Add(1) }
func (r *Runner) Release() { r.inflight.Add(-1) }
