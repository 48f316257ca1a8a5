package affinity

import (
	"cmp"
	"slices"
	"testing"
)

// CheckInvariants fails t if x's writer state, its reverse map and its
// published views disagree, or if a cap is exceeded.
func CheckInvariants(t testing.TB, x *Index) {
	t.Helper()
	x.mu.Lock()
	defer x.mu.Unlock()
	if len(x.dirty) != 0 {
		t.Errorf("%d runners left dirty", len(x.dirty))
	}
	if x.runners.Len() > x.maxRunners || x.hints.Len() > x.maxHints {
		t.Errorf("over cap: %d/%d runners, %d/%d hints", x.runners.Len(), x.maxRunners, x.hints.Len(), x.maxHints)
	}
	views := 0
	for i := range x.shards {
		if m := x.shards[i].Load(); m != nil {
			views += len(*m)
		}
	}
	if len(x.pending) != 0 {
		t.Errorf("%d view changes left unpublished", len(x.pending))
	}
	if views != x.runners.Len() {
		t.Errorf("%d views published for %d runners", views, x.runners.Len())
	}
	for _, addr := range x.runners.Keys() {
		rs, _ := x.runners.Peek(addr)
		if rs.gone || rs.addr != addr {
			t.Errorf("runner %q: gone=%v addr=%q", addr, rs.gone, rs.addr)
		}
		if len(rs.hints) == 0 || len(rs.hints) > x.maxPer {
			t.Errorf("runner %q has %d hints (cap %d)", addr, len(rs.hints), x.maxPer)
		}
		var names []string
		for _, e := range rs.hints {
			if got, ok := x.hints.Peek(e.name); !ok || got != e {
				t.Errorf("runner %q holds %q, which is not in the hint LRU", addr, e.name)
			}
			if _, ok := e.holders[rs]; !ok {
				t.Errorf("hint %q does not list holder %q", e.name, addr)
			}
			names = append(names, e.name)
		}
		slices.Sort(names)
		if len(slices.Compact(slices.Clone(names))) != len(names) {
			t.Errorf("runner %q holds duplicates: %q", addr, names)
		}
		if got := x.Hints(addr); !slices.Equal(got, names) {
			t.Errorf("runner %q: view %q, state %q", addr, got, names)
		}
		if v := x.view(addr); v != nil && !slices.IsSortedFunc(v.ents, func(a, b viewEnt) int { return cmp.Compare(a.hash, b.hash) }) {
			t.Errorf("runner %q: view not sorted by hash", addr)
		}
	}
	for _, name := range x.hints.Keys() {
		e, _ := x.hints.Peek(name)
		if len(e.holders) == 0 {
			t.Errorf("hint %q has no holder", name)
		}
		for rs := range e.holders {
			if cur, ok := x.runners.Peek(rs.addr); !ok || cur != rs || !slices.Contains(rs.hints, e) {
				t.Errorf("hint %q lists holder %q, which does not hold it", name, rs.addr)
			}
		}
	}
}
