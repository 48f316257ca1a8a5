package affinity_test

import (
	"cmp"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	gocmp "github.com/google/go-cmp/cmp"

	"github.com/switchyard/switchyard/internal/affinity"
)

func TestReportSemantics(t *testing.T) {
	const r0, r1 = "10.0.0.1:80", "10.0.0.2:80"
	type step struct {
		op         string // report, absent, mark, forget
		addr, arg  string
		wantR0     []string
		wantR1     []string
		wantHasR0  string // a hint Has(r0, …) must be true for
		wantNotR0  string // a hint Has(r0, …) must be false for
		wantRunner int    // Stats().Runners
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"report replaces", []step{
			{op: "report", addr: r0, arg: "a,b", wantR0: []string{"a", "b"}, wantHasR0: "a", wantRunner: 1},
			{op: "report", addr: r0, arg: "c, b", wantR0: []string{"b", "c"}, wantNotR0: "a", wantRunner: 1},
		}},
		{"absent header keeps what is known", []step{
			{op: "report", addr: r0, arg: "a", wantR0: []string{"a"}, wantRunner: 1},
			{op: "absent", addr: r0, wantR0: []string{"a"}, wantHasR0: "a", wantRunner: 1},
			{op: "absent", addr: r1, wantR0: []string{"a"}, wantRunner: 1},
		}},
		{"empty header clears", []step{
			{op: "report", addr: r0, arg: "a", wantR0: []string{"a"}, wantRunner: 1},
			{op: "report", addr: r0, arg: "", wantNotR0: "a", wantRunner: 0},
		}},
		{"header with only invalid hints clears", []step{
			{op: "report", addr: r0, arg: "a", wantR0: []string{"a"}, wantRunner: 1},
			{op: "report", addr: r0, arg: "bad hint, \x01", wantNotR0: "a", wantRunner: 0},
		}},
		{"runners are independent", []step{
			{op: "report", addr: r0, arg: "a", wantR0: []string{"a"}, wantRunner: 1},
			{op: "report", addr: r1, arg: "a,b", wantR0: []string{"a"}, wantR1: []string{"a", "b"}, wantRunner: 2},
			{op: "report", addr: r0, arg: "", wantR1: []string{"a", "b"}, wantRunner: 1},
		}},
		{"loading mark lasts until the next report", []step{
			{op: "report", addr: r0, arg: "a", wantR0: []string{"a"}, wantRunner: 1},
			{op: "mark", addr: r0, arg: "b", wantR0: []string{"a", "b"}, wantHasR0: "b", wantRunner: 1},
			{op: "absent", addr: r0, wantR0: []string{"a", "b"}, wantRunner: 1},
			{op: "report", addr: r0, arg: "a", wantR0: []string{"a"}, wantNotR0: "b", wantRunner: 1},
		}},
		{"loading mark on an unknown runner", []step{
			{op: "mark", addr: r1, arg: "b", wantR1: []string{"b"}, wantRunner: 1},
			{op: "mark", addr: r1, arg: "b", wantR1: []string{"b"}, wantRunner: 1},
		}},
		{"invalid loading mark ignored", []step{
			{op: "mark", addr: r0, arg: "bad hint", wantRunner: 0},
			{op: "mark", addr: r0, arg: "", wantRunner: 0},
		}},
		{"forget", []step{
			{op: "report", addr: r0, arg: "a", wantR0: []string{"a"}, wantRunner: 1},
			{op: "report", addr: r1, arg: "a", wantR0: []string{"a"}, wantR1: []string{"a"}, wantRunner: 2},
			{op: "forget", addr: r0, wantR1: []string{"a"}, wantNotR0: "a", wantRunner: 1},
			{op: "forget", addr: r0, wantR1: []string{"a"}, wantRunner: 1},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			x := affinity.NewIndex(affinity.IndexOptions{})
			for i, s := range tt.steps {
				switch s.op {
				case "report":
					x.Report(s.addr, s.arg, true)
				case "absent":
					x.Report(s.addr, "", false)
				case "mark":
					x.MarkLoading(s.addr, s.arg)
				case "forget":
					x.Forget(s.addr)
				}
				if diff := gocmp.Diff(s.wantR0, x.Hints(r0)); diff != "" {
					t.Errorf("step %d (%s): hints of r0 (-want +got):\n%s", i, s.op, diff)
				}
				if diff := gocmp.Diff(s.wantR1, x.Hints(r1)); diff != "" {
					t.Errorf("step %d (%s): hints of r1 (-want +got):\n%s", i, s.op, diff)
				}
				if s.wantHasR0 != "" && !x.Has(r0, s.wantHasR0) {
					t.Errorf("step %d (%s): Has(r0, %q) = false", i, s.op, s.wantHasR0)
				}
				if s.wantNotR0 != "" && x.Has(r0, s.wantNotR0) {
					t.Errorf("step %d (%s): Has(r0, %q) = true", i, s.op, s.wantNotR0)
				}
				if got := x.Stats().Runners; got != s.wantRunner {
					t.Errorf("step %d (%s): %d runners tracked, want %d", i, s.op, got, s.wantRunner)
				}
				affinity.CheckInvariants(t, x)
			}
		})
	}
}

func TestMaxPerRunner(t *testing.T) {
	x := affinity.NewIndex(affinity.IndexOptions{MaxPerRunner: 3})
	const r = "10.0.0.1:80"
	x.Report(r, "a,b,c,d,e", true)
	if diff := gocmp.Diff([]string{"a", "b", "c"}, x.Hints(r)); diff != "" {
		t.Fatalf("report keeps the first hints (-want +got):\n%s", diff)
	}
	// A loading mark on a full runner drops its oldest hint.
	x.MarkLoading(r, "z")
	if diff := gocmp.Diff([]string{"b", "c", "z"}, x.Hints(r)); diff != "" {
		t.Fatalf("after a loading mark (-want +got):\n%s", diff)
	}
	affinity.CheckInvariants(t, x)
	if got := x.Stats().Hints; got != 3 {
		t.Errorf("%d hints tracked, want 3 (a is held by nobody)", got)
	}
}

// A hint forgotten by the LRU is taken off every runner holding it.
func TestHintEviction(t *testing.T) {
	x := affinity.NewIndex(affinity.IndexOptions{MaxHints: 2})
	x.Report("10.0.0.1:80", "a", true)
	x.Report("10.0.0.2:80", "a,b", true)
	x.Report("10.0.0.3:80", "c", true) // evicts a, the least recently reported
	if x.Has("10.0.0.1:80", "a") || x.Has("10.0.0.2:80", "a") {
		t.Error("evicted hint a still held")
	}
	if diff := gocmp.Diff([]string{"b"}, x.Hints("10.0.0.2:80")); diff != "" {
		t.Errorf("hints of 10.0.0.2 (-want +got):\n%s", diff)
	}
	if got, want := x.Stats(), (affinity.IndexStats{Runners: 2, Hints: 2, EvictedHints: 1}); got != want {
		t.Errorf("stats %+v, want %+v", got, want)
	}
	affinity.CheckInvariants(t, x)
}

func TestRunnerEviction(t *testing.T) {
	x := affinity.NewIndex(affinity.IndexOptions{MaxRunners: 2})
	x.Report("10.0.0.1:80", "a", true)
	x.Report("10.0.0.2:80", "b", true)
	x.Report("10.0.0.1:80", "a", true) // 10.0.0.2 is now the least recent
	x.MarkLoading("10.0.0.3:80", "c")
	if x.Hints("10.0.0.2:80") != nil {
		t.Error("least recent runner not evicted")
	}
	if !x.Has("10.0.0.1:80", "a") || !x.Has("10.0.0.3:80", "c") {
		t.Error("recent runners lost")
	}
	if got, want := x.Stats(), (affinity.IndexStats{Runners: 2, Hints: 2, EvictedRunners: 1}); got != want {
		t.Errorf("stats %+v, want %+v", got, want)
	}
	affinity.CheckInvariants(t, x)
}

// However many distinct hints and addresses are reported, the index stays
// at its caps.
func TestBoundedUnderDistinctHints(t *testing.T) {
	if testing.Short() {
		t.Skip("reports a million distinct hints")
	}
	const distinct = 1_000_000
	tests := []struct {
		name      string
		o         affinity.IndexOptions
		perReport int
		addrs     int // distinct addresses, reported in turn
		wantHints int
		// Runners left holding hints: the hint cap takes whole runners.
		wantRunnersMin, wantRunnersMax int
	}{
		{"hint cap, few runners", affinity.IndexOptions{MaxHints: 1000, MaxPerRunner: 64, MaxRunners: 100}, 64, 100, 1000, 1000 / 64, 1000/64 + 2},
		{"hint cap, defaults", affinity.IndexOptions{}, 64, distinct, affinity.DefaultMaxHints, affinity.DefaultMaxHints / 64, affinity.DefaultMaxHints/64 + 2},
		{"runner cap, defaults", affinity.IndexOptions{}, 8, distinct, 8 * affinity.DefaultMaxRunners, affinity.DefaultMaxRunners, affinity.DefaultMaxRunners},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			x := affinity.NewIndex(tt.o)
			maxHints, maxRunners := cmp.Or(tt.o.MaxHints, affinity.DefaultMaxHints), cmp.Or(tt.o.MaxRunners, affinity.DefaultMaxRunners)
			var b strings.Builder
			n := 0
			for i := 0; n < distinct; i++ {
				b.Reset()
				for range tt.perReport {
					fmt.Fprintf(&b, "h%d,", n)
					n++
				}
				a := i % tt.addrs
				x.Report(fmt.Sprintf("10.%d.%d.%d:80", a>>16&255, a>>8&255, a&255), b.String(), true)
				if i%1000 == 0 {
					if s := x.Stats(); s.Hints > maxHints || s.Runners > maxRunners {
						t.Fatalf("after %d hints: %+v over caps", n, s)
					}
				}
			}
			s := x.Stats()
			if s.Hints != tt.wantHints || s.Runners < tt.wantRunnersMin || s.Runners > tt.wantRunnersMax {
				t.Errorf("after %d distinct hints: %+v; want %d hints, %d..%d runners", n, s, tt.wantHints, tt.wantRunnersMin, tt.wantRunnersMax)
			}
			affinity.CheckInvariants(t, x)
		})
	}
}

func TestIndexConcurrent(t *testing.T) {
	x := affinity.NewIndex(affinity.IndexOptions{MaxHints: 50, MaxPerRunner: 8, MaxRunners: 20})
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := range 2000 {
				addr := fmt.Sprintf("10.0.0.%d:80", (w*7+i)%30)
				switch i % 5 {
				case 0, 1:
					x.Report(addr, fmt.Sprintf("m%d,m%d,m%d", i%60, (i+w)%60, i%7), true)
				case 2:
					x.MarkLoading(addr, fmt.Sprintf("m%d", i%70))
				case 3:
					x.Has(addr, "m1")
					x.Hints(addr)
				case 4:
					if i%20 == 4 {
						x.Forget(addr)
					} else {
						x.Report(addr, "", i%3 == 0)
					}
				}
			}
		})
	}
	wg.Wait()
	affinity.CheckInvariants(t, x)
}

// FuzzIndex drives an index with tiny caps through arbitrary sequences of
// reports, loading marks and forgets, checking its invariants throughout.
func FuzzIndex(f *testing.F) {
	f.Add([]byte{0, 1, 0xff, 1, 2, 3, 2, 1, 0, 3, 1, 0})
	f.Add([]byte("reports and marks and forgets, in some order"))
	f.Fuzz(func(t *testing.T, ops []byte) {
		x := affinity.NewIndex(affinity.IndexOptions{MaxHints: 5, MaxPerRunner: 3, MaxRunners: 3})
		for len(ops) >= 3 {
			op, a, bits := ops[0]%4, ops[1]%5, ops[2]
			ops = ops[3:]
			addr := fmt.Sprintf("10.0.0.%d:80", a)
			var hints []string
			for i := range 8 {
				if bits&(1<<i) != 0 {
					hints = append(hints, fmt.Sprintf("h%d", i))
				}
			}
			switch op {
			case 0:
				x.Report(addr, strings.Join(hints, ","), true)
				want := hints[:min(len(hints), 3)]
				if len(want) == 0 {
					want = nil
				}
				if diff := gocmp.Diff(want, x.Hints(addr)); diff != "" {
					t.Fatalf("after reporting %q (-want +got):\n%s", hints, diff)
				}
			case 1:
				x.Report(addr, "", false)
			case 2:
				h := fmt.Sprintf("h%d", bits%8)
				x.MarkLoading(addr, h)
				if !x.Has(addr, h) {
					t.Fatalf("%s not marked loading %s", addr, h)
				}
			case 3:
				x.Forget(addr)
			}
			affinity.CheckInvariants(t, x)
		}
	})
}

func TestReportedAt(t *testing.T) {
	x := affinity.NewIndex(affinity.IndexOptions{})
	if !x.ReportedAt("10.0.0.1:80").IsZero() {
		t.Error("an unknown runner has a report time")
	}
	before := time.Now()
	x.Report("10.0.0.1:80", "a", true)
	first := x.ReportedAt("10.0.0.1:80")
	if first.Before(before) {
		t.Errorf("report time %v before the report (%v)", first, before)
	}
	time.Sleep(2 * time.Millisecond)
	x.Report("10.0.0.1:80", "a", true) // the same hints: refreshes the time
	if again := x.ReportedAt("10.0.0.1:80"); !again.After(first) {
		t.Errorf("a repeated report kept the time %v (first %v)", again, first)
	}
	x.Report("10.0.0.1:80", "", true)
	if !x.ReportedAt("10.0.0.1:80").IsZero() {
		t.Error("a runner that holds nothing keeps a report time")
	}
}
