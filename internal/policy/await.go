package policy

import (
	"crypto/rand"
	"encoding/hex"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"
)

// Requests whose end Envoy reports later, off the request path (its access
// log), wait here under a key the decision hands to Envoy: from the
// decision's exchange to the report of the request's end. A report that
// never comes (Envoy restarted, its log stream broke, it gave up waiting
// for the decision) must not hold a runner's slot for ever: a flight waits
// at most the limit it is handed over with, and at most AwaitCapacity
// flights wait at once; past either it ends unreported.
const AwaitCapacity = 1 << 18

type awaited struct {
	f        *Flight
	deadline time.Time
	taken    bool // removed by its report, not evicted
}

// awaiting is the table of flights waiting for their end report.
type awaiting struct {
	mu      sync.Mutex
	lru     *simplelru.LRU[string, *awaited]
	prefix  string // this process's own: keys never repeat across restarts
	next    atomic.Uint64
	expired atomic.Uint64
}

func newAwaiting(capacity int) *awaiting {
	a := &awaiting{}
	// Evicted for room or expired: the report is lost, the work ends.
	a.lru, _ = simplelru.NewLRU(capacity, func(_ string, w *awaited) {
		if !w.taken {
			a.expired.Add(1)
			w.f.ended(nil)
			w.f.End()
		}
	})
	var nonce [6]byte
	_, _ = rand.Read(nonce[:])
	a.prefix = hex.EncodeToString(nonce[:]) + "-"
	return a
}

// key is a key no other flight of any process gets.
func (a *awaiting) key() string {
	return a.prefix + strconv.FormatUint(a.next.Add(1), 36)
}

func (a *awaiting) add(key string, f *Flight, now time.Time, limit time.Duration) {
	a.mu.Lock()
	defer a.mu.Unlock()
	// The table is in arrival order (entries are never touched): the
	// oldest ones past their deadline end here, as new ones arrive. One
	// with a later deadline holds those behind it until its own: with
	// routes of different timeouts, a lost report may hold its runner's
	// slot up to the longest of them.
	for {
		_, oldest, ok := a.lru.GetOldest()
		if !ok || now.Before(oldest.deadline) {
			break
		}
		a.lru.RemoveOldest()
	}
	a.lru.Add(key, &awaited{f: f, deadline: now.Add(limit)})
}

// take removes and returns the flight waiting under key.
func (a *awaiting) take(key string) (*Flight, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	w, ok := a.lru.Peek(key)
	if !ok {
		return nil, false
	}
	// Taken, not expired: the caller ends it after learning from its
	// report.
	w.taken = true
	a.lru.Remove(key)
	return w.f, true
}

func (a *awaiting) len() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.lru.Len()
}

// Await hands f over to wait, at most limit, for the report of its
// request's end, and returns the key the report names it by (Envoy carries
// it in the request's dynamic metadata to its access log).
func (e *Engine) Await(f *Flight, limit time.Duration) string {
	k := e.awaiting.key()
	e.awaiting.add(k, f, e.now(), limit)
	return k
}

// Finish learns from the report of a request's end: the flight waiting
// under key learns from the response and ends; a report no flight waits
// for (a request switchyard did not decide, or one decided by another
// process) still teaches the runner's hints.
func (e *Engine) Finish(key string, r Response) {
	if key != "" {
		if f, ok := e.awaiting.take(key); ok {
			r.Final = true // Respond ends the flight
			f.Respond(r)
			return
		}
	}
	e.Observe(r)
}

// Awaiting says how many flights wait for their end report, and how many
// ended unreported (past their limit, or AwaitCapacity) since the start.
func (e *Engine) Awaiting() (waiting int, expired uint64) {
	return e.awaiting.len(), e.awaiting.expired.Load()
}
