package simrunner

import "context"

// Admission: MaxConcurrency slots, handed to queued requests in arrival
// order. A freed slot goes straight to the oldest waiter, so a request
// arriving at that moment cannot overtake the queue.

// admitLocked takes a slot if one is free (granted). Otherwise, in queue
// mode it enqueues the request and returns the channel that is closed when
// the slot is handed over; in reject mode it counts the rejection and says
// !ok.
func (r *Runner) admitLocked() (granted bool, wait chan struct{}, ok bool) {
	if r.o.MaxConcurrency == 0 || r.active < r.o.MaxConcurrency {
		r.active++
		r.maxIn = max(r.maxIn, int64(r.active))
		return true, nil, true
	}
	if r.o.Overload == OverloadReject {
		r.incLocked(cRejected)
		return false, nil, false
	}
	wait = make(chan struct{})
	r.waiters.PushBack(wait)
	return false, wait, true
}

// awaitSlot waits for the slot to be handed over, or leaves the queue when
// ctx ends.
func (r *Runner) awaitSlot(ctx context.Context, wait chan struct{}) error {
	select {
	case <-wait:
		return nil
	case <-ctx.Done():
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	select {
	case <-wait:
		// Handed over while we were giving up: pass it on.
		r.releaseLocked()
	default:
		for e := r.waiters.Front(); e != nil; e = e.Next() {
			if e.Value.(chan struct{}) == wait {
				r.waiters.Remove(e)
				break
			}
		}
	}
	return ctx.Err()
}

func (r *Runner) release() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.releaseLocked()
}

// releaseLocked hands the caller's slot to the oldest waiter, or frees it.
func (r *Runner) releaseLocked() {
	if e := r.waiters.Front(); e != nil {
		close(r.waiters.Remove(e).(chan struct{}))
		return
	}
	r.active--
}
