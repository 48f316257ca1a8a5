package affinity

import (
	"cmp"
	"hash/maphash"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"
)

// Default caps of an Index.
const (
	// DefaultMaxHints is how many distinct hint values are tracked.
	DefaultMaxHints = 100_000
	// DefaultMaxRunners is how many runner addresses are tracked.
	DefaultMaxRunners = 10_000
)

// IndexOptions bound an Index. Zero or negative values take the defaults.
//
// Memory is bounded by the caps whatever runners report: at most MaxHints
// distinct strings of at most MaxHintLen bytes, and at most
// MaxRunners × MaxPerRunner (runner, hint) pairs.
type IndexOptions struct {
	// MaxHints caps the distinct hint values held over all runners
	// (default DefaultMaxHints). Past it the least recently reported hint
	// is forgotten, on every runner that held it.
	MaxHints int
	// MaxPerRunner caps the hints kept for one runner (default
	// DefaultMaxPerRunner). A report with more keeps the first ones; a
	// loading mark on a full runner drops the first hint it holds (the
	// header's order means nothing in fal's contract, so any choice is a
	// guess at what the runner evicts). It is clamped to MaxHints.
	MaxPerRunner int
	// MaxRunners caps the runners tracked (default DefaultMaxRunners). Past
	// it the runner that reported least recently is forgotten.
	MaxRunners int
}

// Index holds each runner's current hints, by runner address. It is safe
// for concurrent use.
//
// Reads (Has, Hints and the Picker's lookups) take no lock: each runner's
// hints are published as an immutable list, sorted by hash, in one of
// numShards copy-on-write maps loaded atomically, so concurrent picks write
// nothing they share. Writes (Report, MarkLoading, Forget) are serialised by one
// mutex, which also guards the two LRUs and the reverse map from hint to
// runners that lets a forgotten hint be taken off its runners without
// scanning them all; a write copies only the shards it changes (about
// MaxRunners/numShards entries each), and a report that repeats what the
// runner already holds publishes nothing.
type Index struct {
	maxPer     int
	maxHints   int
	maxRunners int
	seed       maphash.Seed
	shards     [numShards]atomic.Pointer[map[string]*view]

	mu      sync.Mutex
	runners *simplelru.LRU[string, *runnerState]
	hints   *simplelru.LRU[string, *hintEntry]
	dirty   []*runnerState // runners whose view must be republished
	pending []pendingView  // view changes to publish at the end of a write
	op      uint64         // stamps hint entries during one write
	// evicted counts hints and runners forgotten to keep within the caps.
	evictedHints, evictedRunners uint64
}

const numShards = 256 // a power of two

type pendingView struct {
	addr string
	v    *view // nil: remove
}

// view is what readers see of one runner: its hints with their hashes,
// sorted by hash, so a lookup compares integers and confirms the one match
// by name. It is never modified once published.
type view struct {
	ents []viewEnt
	// at is when the runner's hints were last reported or marked (Unix
	// nanoseconds): a report repeating them refreshes it in place.
	at atomic.Int64
}

type viewEnt struct {
	hash uint64
	name string
}

// hintKey is a hint and its hash, computed once for all of a pick's lookups.
type hintKey struct {
	hash uint64
	name string
}

func (x *Index) key(hint string) hintKey {
	return hintKey{hash: maphash.String(x.seed, hint), name: hint}
}

func (v *view) has(k hintKey) bool {
	ents := v.ents
	if len(ents) > 8 {
		i, _ := slices.BinarySearchFunc(ents, k.hash, func(e viewEnt, h uint64) int { return cmp.Compare(e.hash, h) })
		ents = ents[i:]
	}
	for _, e := range ents {
		if e.hash > k.hash {
			break
		}
		if e.hash == k.hash && e.name == k.name {
			return true
		}
	}
	return false
}

// runnerState is the writer's record of a runner; guarded by Index.mu.
type runnerState struct {
	addr  string
	hints []*hintEntry // reported order, then loading marks in mark order
	dirty bool
	gone  bool
}

// hintEntry is one distinct hint value; guarded by Index.mu. Its name is
// the one copy of the string that every runner holding it shares.
type hintEntry struct {
	name    string
	hash    uint64 // of name, with Index.seed
	holders map[*runnerState]struct{}
	mark    uint64
}

// NewIndex returns an empty Index bounded by o.
func NewIndex(o IndexOptions) *Index {
	if o.MaxHints <= 0 {
		o.MaxHints = DefaultMaxHints
	}
	if o.MaxPerRunner <= 0 {
		o.MaxPerRunner = DefaultMaxPerRunner
	}
	if o.MaxRunners <= 0 {
		o.MaxRunners = DefaultMaxRunners
	}
	// A report interns up to MaxPerRunner hints; with at least that many
	// slots in the hint LRU, none of them can evict another.
	o.MaxPerRunner = min(o.MaxPerRunner, o.MaxHints)
	x := &Index{maxPer: o.MaxPerRunner, maxHints: o.MaxHints, maxRunners: o.MaxRunners, seed: maphash.MakeSeed()}
	var err error
	// NewLRU fails only for a size below 1.
	if x.runners, err = simplelru.NewLRU(o.MaxRunners, x.onRunnerEvict); err != nil {
		panic(err)
	}
	if x.hints, err = simplelru.NewLRU(o.MaxHints, x.onHintEvict); err != nil {
		panic(err)
	}
	return x
}

// Report records what the runner at addr said in its hints header after a
// response, with fal's meaning: header absent (present false) says nothing,
// and what is known is kept; a header that is present replaces the runner's
// hints, loading marks included, with the valid hints it lists, so an empty
// header (or one with no valid hint) clears them.
func (x *Index) Report(addr, header string, present bool) {
	if !present {
		return
	}
	var buf [DefaultMaxPerRunner]string
	names := appendHints(buf[:0], header, x.maxPer)

	x.mu.Lock()
	defer x.mu.Unlock()
	defer x.flush()
	if len(names) == 0 {
		x.runners.Remove(addr)
		return
	}
	rs := x.runner(addr)
	x.op++
	var nbuf [DefaultMaxPerRunner]*hintEntry
	next := nbuf[:0]
	for _, n := range names {
		e := x.intern(n)
		e.mark = x.op
		next = append(next, e)
	}
	same := len(next) == len(rs.hints)
	for _, e := range rs.hints {
		if e.mark != x.op {
			same = false
			x.detach(rs, e)
		}
	}
	if same {
		// The common case, a runner repeating what it holds: nothing to
		// publish, only the order (for MarkLoading's oldest) and the
		// report's time to keep.
		copy(rs.hints, next)
		if v := x.view(addr); v != nil {
			v.at.Store(time.Now().UnixNano())
		}
		return
	}
	rs.hints = slices.Clone(next)
	for _, e := range next {
		e.holders[rs] = struct{}{}
	}
	x.markDirty(rs)
}

// MarkLoading records that a request for hint was just sent to the runner
// at addr, which will load it: Has is true for it from now until the
// runner's next report replaces its hints. An invalid hint is ignored.
func (x *Index) MarkLoading(addr, hint string) {
	if !ValidHint(hint) {
		return
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	defer x.flush()
	rs := x.runner(addr)
	if e, ok := x.hints.Get(hint); ok {
		if _, held := e.holders[rs]; held {
			return
		}
	}
	e := x.intern(hint)
	if len(rs.hints) >= x.maxPer {
		old := rs.hints[0]
		rs.hints = slices.Delete(rs.hints, 0, 1)
		x.detach(rs, old)
	}
	rs.hints = append(rs.hints, e)
	e.holders[rs] = struct{}{}
	x.markDirty(rs)
}

// Forget drops what is known of the runner at addr, for a runner that left.
func (x *Index) Forget(addr string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	defer x.flush()
	x.runners.Remove(addr)
}

// Has reports whether the runner at addr holds, or is loading, hint.
func (x *Index) Has(addr, hint string) bool {
	v := x.view(addr)
	return v != nil && v.has(x.key(hint))
}

// Hints returns the runner's hints, sorted; nil when it has none.
func (x *Index) Hints(addr string) []string {
	v := x.view(addr)
	if v == nil {
		return nil
	}
	out := make([]string, len(v.ents))
	for i, e := range v.ents {
		out[i] = e.name
	}
	slices.Sort(out)
	return out
}

// IndexStats says how full an Index is.
type IndexStats struct {
	Runners int // runners with at least one hint
	Hints   int // distinct hint values
	// EvictedHints and EvictedRunners count what was forgotten to stay
	// within MaxHints and MaxRunners, since the Index was made.
	EvictedHints, EvictedRunners uint64
}

// Stats returns the current sizes, for metrics and tests.
func (x *Index) Stats() IndexStats {
	x.mu.Lock()
	defer x.mu.Unlock()
	return IndexStats{Runners: x.runners.Len(), Hints: x.hints.Len(), EvictedHints: x.evictedHints, EvictedRunners: x.evictedRunners}
}

// ReportedAt is when the runner at addr last reported its hints (or was
// marked loading one); zero when none are known.
func (x *Index) ReportedAt(addr string) time.Time {
	v := x.view(addr)
	if v == nil {
		return time.Time{}
	}
	return time.Unix(0, v.at.Load())
}

// lookup returns whether the runner at addr has the hint and how many hints
// it has, for the Picker.
func (x *Index) lookup(addr string, k hintKey) (has bool, n int) {
	v := x.view(addr)
	if v == nil {
		return false, 0
	}
	return v.has(k), len(v.ents)
}

func (x *Index) shard(addr string) int {
	return int(maphash.String(x.seed, addr) & (numShards - 1))
}

func (x *Index) view(addr string) *view {
	m := x.shards[x.shard(addr)].Load()
	if m == nil {
		return nil
	}
	return (*m)[addr]
}

// The rest runs with x.mu held.

// runner returns the runner's state, creating it (and possibly evicting the
// least recent runner) if needed.
func (x *Index) runner(addr string) *runnerState {
	if rs, ok := x.runners.Get(addr); ok {
		return rs
	}
	rs := &runnerState{addr: strings.Clone(addr)}
	if x.runners.Add(rs.addr, rs) {
		x.evictedRunners++
	}
	return rs
}

// intern returns the entry of a valid hint, creating it (and possibly
// evicting the least recent hint) if needed.
func (x *Index) intern(name string) *hintEntry {
	if e, ok := x.hints.Get(name); ok {
		return e
	}
	e := &hintEntry{name: strings.Clone(name), hash: maphash.String(x.seed, name), holders: map[*runnerState]struct{}{}}
	if x.hints.Add(e.name, e) {
		x.evictedHints++
	}
	return e
}

// detach takes e off rs's holders, and forgets e once nobody holds it. It
// does not touch rs.hints.
func (x *Index) detach(rs *runnerState, e *hintEntry) {
	delete(e.holders, rs)
	if len(e.holders) == 0 {
		x.hints.Remove(e.name)
	}
}

func (x *Index) markDirty(rs *runnerState) {
	if !rs.dirty {
		rs.dirty = true
		x.dirty = append(x.dirty, rs)
	}
}

// onHintEvict takes a forgotten hint off every runner that held it.
func (x *Index) onHintEvict(_ string, e *hintEntry) {
	for rs := range e.holders {
		rs.hints = slices.DeleteFunc(rs.hints, func(h *hintEntry) bool { return h == e })
		x.markDirty(rs)
	}
	clear(e.holders)
}

// onRunnerEvict forgets a runner: its hints lose a holder and its view goes.
func (x *Index) onRunnerEvict(addr string, rs *runnerState) {
	rs.gone = true
	for _, e := range rs.hints {
		x.detach(rs, e)
	}
	rs.hints = nil
	x.pending = append(x.pending, pendingView{addr: addr})
}

// flush publishes the views of the runners changed by the last write. A
// runner left without hints is forgotten: for picking, a runner with no
// hints and an unknown runner are the same.
func (x *Index) flush() {
	now := time.Now().UnixNano()
	for _, rs := range x.dirty {
		rs.dirty = false
		if rs.gone {
			continue
		}
		if len(rs.hints) == 0 {
			x.runners.Remove(rs.addr)
			continue
		}
		v := &view{ents: make([]viewEnt, len(rs.hints))}
		v.at.Store(now)
		for i, e := range rs.hints {
			v.ents[i] = viewEnt{hash: e.hash, name: e.name}
		}
		slices.SortFunc(v.ents, func(a, b viewEnt) int {
			return cmp.Or(cmp.Compare(a.hash, b.hash), strings.Compare(a.name, b.name))
		})
		x.pending = append(x.pending, pendingView{addr: rs.addr, v: v})
	}
	clear(x.dirty)
	x.dirty = x.dirty[:0]
	x.publish()
}

// publish applies the pending view changes, in order, copying each shard
// they touch once.
func (x *Index) publish() {
	if len(x.pending) == 0 {
		return
	}
	copies := make(map[int]map[string]*view, 1)
	for _, p := range x.pending {
		i := x.shard(p.addr)
		m, ok := copies[i]
		if !ok {
			m = map[string]*view{}
			if old := x.shards[i].Load(); old != nil {
				m = maps.Clone(*old)
			}
			copies[i] = m
		}
		if p.v == nil {
			delete(m, p.addr)
		} else {
			m[p.addr] = p.v
		}
	}
	for i, m := range copies {
		x.shards[i].Store(&m)
	}
	clear(x.pending)
	x.pending = x.pending[:0]
}
