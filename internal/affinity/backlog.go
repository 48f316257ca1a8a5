package affinity

import (
	"cmp"
	"maps"
	"math"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"

	"github.com/switchyard/switchyard/internal/runner"
)

// Job is one request dispatched to a runner. It holds the runner's
// in-flight count and, in ModeSoonest, the request's place in the
// runner's backlog (its model and expected cost), until Done.
type Job struct {
	r    *runner.Runner
	b    *backlog // nil when the Picker keeps no backlog
	key  hintKey  // the request's hint; zero without one
	cost time.Duration
	at   time.Time
	done atomic.Bool
}

// Done ends the job: the runner finished the request, failed it, or the
// request was abandoned. Only the first call counts; a nil Job does nothing.
func (j *Job) Done() {
	if j == nil || !j.done.CompareAndSwap(false, true) {
		return
	}
	if j.b != nil {
		j.b.remove(j)
	}
	j.r.Release()
}

// Begin dispatches a request to the primary runner of pick (a Pick of this
// Picker for q): it counts the request in flight on that runner and, in
// ModeSoonest, adds it to the runner's backlog, expecting it to take
// q.Cost.Hit when the pick found the model there and q.Cost.Miss otherwise. The caller ends the Job with Done. Begin returns nil
// when the pick has no runner.
func (p *Picker) Begin(pick Pick, q Request) *Job {
	if len(pick.Runners) == 0 {
		return nil
	}
	j := &Job{r: pick.Runners[0]}
	j.r.Acquire()
	if p.backlog == nil {
		return j
	}
	if q.Hint != "" && ValidHint(q.Hint) {
		j.key = p.idx.key(q.Hint)
	}
	c := estimate(q.Cost)
	j.cost = c.Miss
	if pick.Outcome == OutcomeHit || j.key.name == "" {
		j.cost = c.Hit
	}
	j.b = p.backlog
	j.at = p.backlog.now()
	p.backlog.add(j)
	return j
}

// evictLoads is what a model load that evicts another model is taken to
// cost beyond the load itself, in loads: the evicted model may be needed
// again, and its reload evicts another. Tuned in the discrete-event
// simulation of policy's tests (internal/policy/sim_test.go): of 1 to 6 loads, 3 kept the
// hit rate closest to the ceiling at 95 % load with exact service times and
// with service times off by up to ±50 %; 2 did as well with exact times
// only, and waits a little less at lower loads.
const evictLoads = 3

// Forget drops what the Picker knows of the runner at addr (a runner that
// left, or one that joined again and holds nothing yet).
func (p *Picker) Forget(addr string) {
	if p.backlog != nil {
		p.backlog.forget(addr)
	}
}

// defaultCost is what a request is assumed to cost until a pool's costs are
// measured: GPU model loads take several times an inference.
var defaultCost = Cost{Hit: 100 * time.Millisecond, Miss: 500 * time.Millisecond}

func estimate(c Cost) Cost {
	if c.Known() {
		return c
	}
	return defaultCost
}

// backlog holds, by runner address, the jobs switchyard has sent each runner
// and not seen end, in dispatch order, and the order of the hints sent
// there. It tracks at most DefaultMaxRunners runners, forgetting the one
// dispatched to least recently.
type backlog struct {
	now     func() time.Time
	mu      sync.Mutex
	runners *simplelru.LRU[string, *runnerBacklog]
	// demand holds each hint's recent requests (at most DefaultMaxHints
	// hints, forgetting the least recently requested), counted since
	// demandSince.
	demand      *simplelru.LRU[string, *demand]
	demandSince time.Time
}

// demandWindow is the time constant of a hint's request rate: requests
// count with a weight that decays by e every demandWindow.
const demandWindow = 10 * time.Second

// demand is a hint's requests dispatched, counted with exponential decay.
type demand struct {
	count float64 // as of at
	at    time.Time
}

// rate is the hint's requests per second around now, counting since
// since (when the backlog first counted a request); zero for nil. The
// decayed count covers at most demandWindow's worth of requests: less in
// the first seconds of counting, when it is taken over the time there was
// (at least a second), so a pool's first requests are not priced as if
// their models were rarely asked for.
func (d *demand) rate(now, since time.Time) float64 {
	if d == nil {
		return 0
	}
	w := demandWindow.Seconds()
	span := w * (1 - math.Exp(-max(now.Sub(since), time.Second).Seconds()/w))
	return d.count * math.Exp(-max(now.Sub(d.at), 0).Seconds()/w) / span
}

func (d *demand) add(at time.Time) {
	d.count = d.count*math.Exp(-max(at.Sub(d.at), 0).Seconds()/demandWindow.Seconds()) + 1
	d.at = at
}

type runnerBacklog struct {
	jobs []*Job // this replica's, in dispatch order
	// remote holds, by replica, the jobs the other replicas of a cluster
	// last reported on the runner (Picker.SetRemote); all is jobs and
	// every replica's remote jobs in dispatch order, kept only while
	// remote is not empty.
	remote map[string][]*Job
	all    []*Job

	freed  time.Time // when a job last ended here
	recent []hintKey // the hints of the jobs sent here, distinct, most recent last
	slots  int       // the most hints the runner has reported at once
}

// maxRecent bounds a runner's recent hints.
const maxRecent = DefaultMaxPerRunner

func newBacklog(now func() time.Time) *backlog {
	runners, err := simplelru.NewLRU[string, *runnerBacklog](DefaultMaxRunners, nil)
	if err != nil {
		panic(err) // only for a size below 1
	}
	demand, err := simplelru.NewLRU[string, *demand](DefaultMaxHints, nil)
	if err != nil {
		panic(err)
	}
	return &backlog{now: now, runners: runners, demand: demand}
}

// get returns the runner's backlog, nil when it has none, without
// refreshing its place in the LRU.
func (b *backlog) get(addr string) *runnerBacklog {
	rb, _ := b.runners.Peek(addr)
	return rb
}

func (b *backlog) add(j *Job) {
	b.mu.Lock()
	defer b.mu.Unlock()
	rb, ok := b.runners.Get(j.r.Address)
	if !ok {
		rb = &runnerBacklog{}
		b.runners.Add(j.r.Address, rb)
	}
	rb.jobs = append(rb.jobs, j)
	rb.merge()
	if j.key.name == "" {
		return
	}
	if i := slices.Index(rb.recent, j.key); i >= 0 {
		rb.recent = slices.Delete(rb.recent, i, i+1)
	} else if len(rb.recent) == maxRecent {
		rb.recent = slices.Delete(rb.recent, 0, 1)
	}
	rb.recent = append(rb.recent, j.key)
	if b.demandSince.IsZero() {
		b.demandSince = j.at
	}
	d, ok := b.demand.Get(j.key.name)
	if !ok {
		d = &demand{at: j.at}
		b.demand.Add(j.key.name, d)
	}
	d.add(j.at)
}

// forget drops what is known of the runner at addr.
func (b *backlog) forget(addr string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.runners.Remove(addr)
}

func (b *backlog) remove(j *Job) {
	b.mu.Lock()
	defer b.mu.Unlock()
	rb := b.get(j.r.Address)
	if rb == nil {
		return
	}
	for i, o := range rb.jobs {
		if o == j {
			rb.jobs = append(rb.jobs[:i], rb.jobs[i+1:]...)
			break
		}
	}
	rb.merge()
	rb.freed = b.now()
}

// ordered is every job on the runner, this replica's and the others', in
// dispatch order.
func (rb *runnerBacklog) ordered() []*Job {
	if len(rb.remote) == 0 {
		return rb.jobs
	}
	return rb.all
}

// merge rebuilds all after jobs or remote changed.
func (rb *runnerBacklog) merge() {
	if len(rb.remote) == 0 {
		rb.all = nil
		return
	}
	rb.all = append(rb.all[:0], rb.jobs...)
	// Replicas in a fixed order, so that jobs sent at the same instant
	// keep one order.
	for _, r := range slices.Sorted(maps.Keys(rb.remote)) {
		rb.all = append(rb.all, rb.remote[r]...)
	}
	slices.SortStableFunc(rb.all, func(a, b *Job) int { return a.at.Compare(b.at) })
}

// wait is how long a request sent to the runner now is expected to wait
// for one of its limit slots: nothing while a slot is free, else the work
// left of the jobs ahead of it (the running ones' cost less the time they
// have run, the queued ones' whole cost) shared by the slots.
func (rb *runnerBacklog) wait(now time.Time, limit int) time.Duration {
	if rb == nil || len(rb.ordered()) < limit {
		return 0
	}
	var work time.Duration
	for i, j := range rb.ordered() {
		if i < limit {
			start := j.at
			if rb.freed.After(start) {
				start = rb.freed
			}
			work += max(j.cost-now.Sub(start), 0)
			continue
		}
		work += j.cost
	}
	return work / time.Duration(limit)
}

// pending says a job for the hint is on the runner: its model is loaded, or
// will be by the time a request sent now runs.
func (rb *runnerBacklog) pending(k hintKey) bool {
	if rb == nil {
		return false
	}
	for _, j := range rb.ordered() {
		if j.key == k {
			return true
		}
	}
	return false
}

// predict says whether a request for k sent to the runner now is expected
// to find its model loaded, and whether loading it there would evict one.
// It starts from what the runner last reported (v) and plays the jobs
// ahead of the request on it: a job for a model the runner did not report
// loads it, evicting the least recently used model (by the order of the
// jobs switchyard sent there) once the runner holds slots models. A runner
// that has never reported as many hints as slots is not assumed full.
func (rb *runnerBacklog) predict(v *view, k hintKey, slots int) (warm, full bool) {
	var reported []viewEnt
	if v != nil {
		reported = v.ents
	}
	if rb == nil {
		return v != nil && v.has(k), slots > 0 && len(reported) >= slots
	}
	evict := len(reported) + rb.loads(v) - slots
	full = slots > 0 && evict >= 0
	if rb.pending(k) {
		return true, full
	}
	if v == nil || !v.has(k) {
		return false, full
	}
	if slots == 0 || evict <= 0 {
		return true, full
	}
	// k survives when fewer than evict of the reported models not
	// refreshed by a job ahead are older than it.
	age := func(h hintKey) int { return slices.Index(rb.recent, h) } // -1: older than any
	mine := age(k)
	older := 0
	for _, e := range reported {
		h := hintKey{hash: e.hash, name: e.name}
		if h == k || rb.pending(h) {
			continue
		}
		if a := age(h); a < mine || (a == mine && e.name < k.name) {
			older++
		}
	}
	return older >= evict, full
}

// loads is how many distinct models the jobs on the runner will load,
// from what it last reported (v).
func (rb *runnerBacklog) loads(v *view) int {
	if rb == nil {
		return 0
	}
	n := 0
	jobs := rb.ordered()
	for i, j := range jobs {
		if j.key.name == "" || (v != nil && v.has(j.key)) || slices.ContainsFunc(jobs[:i], func(o *Job) bool { return o.key == j.key }) {
			continue
		}
		n++
	}
	return n
}

// victim is the model a load on the runner sent now would evict, as
// predict plays the jobs ahead: of the reported models (v) that no job
// ahead needs, least recently sent there first (by name among those never
// sent), the one after those the jobs ahead evict. ok is false when the
// load evicts nothing or a model that is not reported.
func (rb *runnerBacklog) victim(v *view, slots int) (k hintKey, ok bool) {
	if v == nil || slots == 0 {
		return hintKey{}, false
	}
	evict := len(v.ents) + rb.loads(v) - slots
	if evict < 0 {
		return hintKey{}, false
	}
	var buf [DefaultMaxPerRunner]hintKey
	cands := buf[:0]
	for _, e := range v.ents {
		if h := (hintKey{hash: e.hash, name: e.name}); !rb.pending(h) {
			cands = append(cands, h)
		}
	}
	if evict >= len(cands) {
		return hintKey{}, false
	}
	age := func(h hintKey) int { // -1: older than any
		if rb == nil {
			return -1
		}
		return slices.Index(rb.recent, h)
	}
	slices.SortFunc(cands, func(a, b hintKey) int {
		return cmp.Or(cmp.Compare(age(a), age(b)), strings.Compare(a.name, b.name))
	})
	return cands[evict], true
}

// JobInfo is one request in flight on a runner, as replicas of a cluster
// tell each other: its hint, its expected cost and how long ago it was sent.
// Ages, not times, cross the network, so no replica reads another's clock.
type JobInfo struct {
	Hint string        `json:"hint,omitempty"`
	Cost time.Duration `json:"cost"`
	Age  time.Duration `json:"age"`
}

// Jobs returns the requests this Picker has sent and not seen end, by
// runner address; nil unless the Picker keeps a backlog (ModeSoonest).
func (p *Picker) Jobs() map[string][]JobInfo {
	b := p.backlog
	if b == nil {
		return nil
	}
	now := b.now()
	b.mu.Lock()
	defer b.mu.Unlock()
	out := map[string][]JobInfo{}
	for _, addr := range b.runners.Keys() {
		rb, _ := b.runners.Peek(addr)
		for _, j := range rb.jobs {
			out[addr] = append(out[addr], JobInfo{Hint: j.key.name, Cost: j.cost, Age: now.Sub(j.at)})
		}
	}
	return out
}

// SetRemote replaces what replica reported it has in flight, by runner
// address (nil forgets the replica): each job counts in the runner's
// backlog as if this Picker had sent it, Age ago. It does nothing unless
// the Picker keeps a backlog (ModeSoonest).
func (p *Picker) SetRemote(replica string, jobs map[string][]JobInfo) {
	b := p.backlog
	if b == nil {
		return
	}
	now := b.now()
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, addr := range b.runners.Keys() {
		rb, _ := b.runners.Peek(addr)
		if _, had := rb.remote[replica]; had && jobs[addr] == nil {
			delete(rb.remote, replica)
			rb.merge()
		}
	}
	for addr, infos := range jobs {
		if len(infos) == 0 {
			continue
		}
		rb, ok := b.runners.Get(addr)
		if !ok {
			rb = &runnerBacklog{}
			b.runners.Add(addr, rb)
		}
		if rb.remote == nil {
			rb.remote = map[string][]*Job{}
		}
		js := make([]*Job, 0, len(infos))
		for _, in := range infos {
			j := &Job{cost: in.Cost, at: now.Add(-in.Age)}
			if in.Hint != "" && ValidHint(in.Hint) {
				j.key = p.idx.key(in.Hint)
			}
			js = append(js, j)
		}
		rb.remote[replica] = js
		rb.merge()
	}
}

// Wait is how long a request sent now to the runner at addr would wait for
// a free slot (of maxConcurrency), from the work this Picker knows is on
// it: the queued work the soonest policy weighs. Zero unless the Picker
// keeps a backlog (ModeSoonest).
func (p *Picker) Wait(addr string, maxConcurrency int) time.Duration {
	b := p.backlog
	if b == nil {
		return 0
	}
	now := b.now()
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.get(addr).wait(now, max(maxConcurrency, 1))
}
