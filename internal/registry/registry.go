package registry

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchyard/switchyard/internal/config"
	"github.com/switchyard/switchyard/internal/runner"
)

// State of a runner.
type State string

const (
	Active   State = "active"
	Draining State = "draining" // deregistered: no new requests, in-flight ones finish
)

// Source says where a runner came from.
type Source string

const (
	FromConfig Source = "config"
	FromAPI    Source = "api"
)

// Errors returned by Register and Deregister; match them with errors.Is.
var (
	ErrUnknownPool   = errors.New("unknown pool")
	ErrUnknownRunner = errors.New("unknown runner")
	ErrBadAddress    = errors.New("bad runner address")
)

// entry is one registered runner: the request path's shared state (its
// in-flight count is updated without taking the registry lock) and the
// registry's own lifecycle fields.
type entry struct {
	*runner.Runner

	// Guarded by Registry.mu.
	state    State
	source   Source
	expires  time.Time // zero: no TTL
	drainEnd time.Time // when a draining runner is removed at the latest
}

// Info is a copy of a runner's state, for listing.
type Info struct {
	Pool      string     `json:"pool"`
	Address   string     `json:"address"`
	State     State      `json:"state"`
	Source    Source     `json:"source"`
	InFlight  int64      `json:"in_flight"`
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
}

// Endpoint is what the data plane needs to know of a runner.
type Endpoint struct {
	Address  string
	Draining bool
}

type key struct{ pool, addr string }

// Options configure a Registry.
type Options struct {
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// InFlightTracked says the request path counts in-flight requests with
	// Acquire and Release, so a draining runner can go as soon as its count
	// is zero. Without it a draining runner stays for the whole drain timeout.
	InFlightTracked bool
	// OnNew is called with the address of each runner that joins a pool
	// it was not in: what was known of an earlier runner at that address
	// (its hints) no longer holds. It must not call the Registry.
	OnNew func(address string)
}

// Registry is safe for concurrent use.
type Registry struct {
	now     func() time.Time
	tracked bool
	onNew   func(string)

	mu           sync.Mutex
	pools        map[string]bool
	drainTimeout time.Duration
	runners      map[key]*entry
	changed      chan struct{}
	wake         chan struct{}

	// active is a copy-on-write view of each pool's active runners, sorted
	// by address, for the request path to read without the lock.
	active atomic.Pointer[map[string][]*runner.Runner]
}

func New(opts Options) *Registry {
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	return &Registry{
		now:          now,
		tracked:      opts.InFlightTracked,
		onNew:        opts.OnNew,
		pools:        map[string]bool{},
		drainTimeout: config.DefaultDrainTimeout,
		runners:      map[key]*entry{},
		changed:      make(chan struct{}, 1),
		wake:         make(chan struct{}, 1),
	}
}

// Changed receives a value after the runner set changed. Changes that happen
// before the receiver reads are coalesced into one.
func (r *Registry) Changed() <-chan struct{} { return r.changed }

// notify publishes the new runner set; r.mu must be held.
func (r *Registry) notify() {
	r.rebuildActiveLocked()
	select {
	case r.changed <- struct{}{}:
	default:
	}
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// ApplyConfig makes the static runners those of cfg. A static runner that
// is no longer in the file drains like a deregistered one; runners of pools
// that no longer exist are dropped with their pool.
func (r *Registry) ApplyConfig(cfg *config.Config) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()
	r.drainTimeout = cfg.Server.DrainTimeout.Std()
	r.pools = map[string]bool{}
	want := map[key]bool{}
	for _, p := range cfg.Pools {
		r.pools[p.Name] = true
		for _, addr := range p.Runners {
			want[key{p.Name, addr}] = true
		}
	}
	for k, rn := range r.runners {
		switch {
		case !r.pools[k.pool]:
			delete(r.runners, k)
		case rn.source == FromConfig && !want[k] && rn.state == Active:
			r.drain(rn, now)
		}
	}
	for k := range want {
		rn, ok := r.runners[k]
		if !ok {
			rn = &entry{Runner: &runner.Runner{Pool: k.pool, Address: k.addr}}
			r.runners[k] = rn
			r.joined(k.addr)
		}
		rn.source, rn.state, rn.expires = FromConfig, Active, time.Time{}
	}
	r.notify()
}

// Register adds a runner or renews its heartbeat. ttl 0 means no expiry.
// A draining runner that registers again is active again.
func (r *Registry) Register(pool, address string, ttl time.Duration) (Info, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	k, err := r.keyLocked(pool, address)
	if err != nil {
		return Info{}, err
	}
	addr := k.addr
	rn, ok := r.runners[k]
	changed := !ok || rn.state != Active
	if !ok {
		rn = &entry{Runner: &runner.Runner{Pool: pool, Address: addr}, source: FromAPI}
		r.runners[k] = rn
		r.joined(addr)
	}
	rn.state, rn.drainEnd = Active, time.Time{}
	if rn.source == FromAPI {
		rn.expires = time.Time{}
		if ttl > 0 {
			rn.expires = r.now().Add(ttl)
		}
	}
	if changed {
		r.notify()
	} else {
		r.wakeExpiry()
	}
	return r.info(rn), nil
}

func (r *Registry) joined(addr string) {
	if r.onNew != nil {
		r.onNew(addr)
	}
}

func (r *Registry) wakeExpiry() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// Deregister starts draining a runner: it gets no new requests and is
// removed once its in-flight requests finish or the drain timeout passes.
func (r *Registry) Deregister(pool, address string) (Info, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	k, err := r.keyLocked(pool, address)
	if err != nil {
		return Info{}, err
	}
	rn, ok := r.runners[k]
	if !ok {
		return Info{}, fmt.Errorf("%w %s in pool %q", ErrUnknownRunner, k.addr, pool)
	}
	if rn.state == Active {
		r.drain(rn, r.now())
		r.notify()
	}
	return r.info(rn), nil
}

// keyLocked checks an API runner reference: a valid address in a known pool.
func (r *Registry) keyLocked(pool, address string) (key, error) {
	addr, err := config.ParseRunnerAddress(address)
	if err != nil {
		return key{}, fmt.Errorf("%w: %v", ErrBadAddress, err)
	}
	if !r.pools[pool] {
		return key{}, fmt.Errorf("%w %q", ErrUnknownPool, pool)
	}
	return key{pool, addr}, nil
}

func (r *Registry) drain(rn *entry, now time.Time) {
	rn.state = Draining
	rn.expires = time.Time{}
	rn.drainEnd = now.Add(r.drainTimeout)
}

// Sweep removes runners whose heartbeat expired and draining runners that
// are done, and returns when it should run next (zero: nothing pending).
func (r *Registry) Sweep() time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()
	changed := false
	var next time.Time
	soonest := func(t time.Time) {
		if !t.IsZero() && (next.IsZero() || t.Before(next)) {
			next = t
		}
	}
	for k, rn := range r.runners {
		switch {
		case rn.state == Active && !rn.expires.IsZero() && !now.Before(rn.expires):
			// A runner that stopped heartbeating is presumed gone: its
			// requests have failed already, so there is nothing to drain.
			delete(r.runners, k)
			changed = true
		case rn.state == Draining && (r.tracked && rn.Local() <= 0 || !now.Before(rn.drainEnd)):
			delete(r.runners, k)
			changed = true
		case rn.state == Draining:
			soonest(rn.drainEnd)
			if r.tracked {
				// In-flight requests may finish any time: look again soon.
				soonest(now.Add(drainPoll))
			}
		default:
			soonest(rn.expires)
		}
	}
	if changed {
		r.rebuildActiveLocked()
		select {
		case r.changed <- struct{}{}:
		default:
		}
	}
	return next
}

func (r *Registry) rebuildActiveLocked() {
	m := make(map[string][]*runner.Runner, len(r.pools))
	for k, rn := range r.runners {
		if rn.state == Active {
			m[k.pool] = append(m[k.pool], rn.Runner)
		}
	}
	for _, rs := range m {
		slices.SortFunc(rs, func(a, b *runner.Runner) int { return strings.Compare(a.Address, b.Address) })
	}
	r.active.Store(&m)
}

// Active returns the pool's active runners, sorted by address. The slice is
// shared and must not be modified; it is safe to read without locking.
func (r *Registry) Active(pool string) []*runner.Runner {
	m := r.active.Load()
	if m == nil {
		return nil
	}
	return (*m)[pool]
}

// EachActive calls fn for every active runner, pool by pool, without
// locking or copying: it reads the request path's view.
func (r *Registry) EachActive(fn func(*runner.Runner)) {
	m := r.active.Load()
	if m == nil {
		return
	}
	for _, rs := range *m {
		for _, rn := range rs {
			fn(rn)
		}
	}
}

// drainPoll is how often a draining runner's in-flight count is checked.
const drainPoll = 100 * time.Millisecond

// Run sweeps until done is closed.
func (r *Registry) Run(done <-chan struct{}) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		next := r.Sweep()
		wait := time.Hour
		if !next.IsZero() {
			wait = max(next.Sub(r.now()), time.Millisecond)
		}
		timer.Reset(wait)
		select {
		case <-done:
			return
		case <-r.wake:
		case <-timer.C:
		}
	}
}

// Endpoints returns each pool's runners, sorted by address. Every pool of
// the config has an entry, possibly empty.
func (r *Registry) Endpoints() map[string][]Endpoint {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string][]Endpoint, len(r.pools))
	for p := range r.pools {
		out[p] = []Endpoint{}
	}
	for k, rn := range r.runners {
		out[k.pool] = append(out[k.pool], Endpoint{Address: k.addr, Draining: rn.state == Draining})
	}
	for _, eps := range out {
		slices.SortFunc(eps, func(a, b Endpoint) int { return strings.Compare(a.Address, b.Address) })
	}
	return out
}

// Runner returns the runner at address in pool.
func (r *Registry) Runner(pool, address string) (*runner.Runner, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	rn, ok := r.runners[key{pool, address}]
	if !ok {
		return nil, false
	}
	return rn.Runner, true
}

// List returns every runner, sorted by pool then address.
func (r *Registry) List() []Info {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]Info, 0, len(r.runners))
	for _, rn := range r.runners {
		out = append(out, r.info(rn))
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Pool != out[j].Pool {
			return out[i].Pool < out[j].Pool
		}
		return out[i].Address < out[j].Address
	})
	return out
}

func (r *Registry) info(rn *entry) Info {
	in := Info{Pool: rn.Pool, Address: rn.Address, State: rn.state, Source: rn.source, InFlight: rn.InFlight()}
	if !rn.expires.IsZero() {
		t := rn.expires
		in.ExpiresAt = &t
	}
	return in
}

// RunnerCounts counts runners by {pool, state}; every pool has an active
// and a draining entry, possibly zero.
func (r *Registry) RunnerCounts() map[[2]string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[[2]string]int{}
	for p := range r.pools {
		out[[2]string{p, string(Active)}] = 0
		out[[2]string{p, string(Draining)}] = 0
	}
	for k, rn := range r.runners {
		out[[2]string{k.pool, string(rn.state)}]++
	}
	return out
}
