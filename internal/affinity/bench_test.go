package affinity_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/affinity"
	"github.com/switchyard/switchyard/internal/runner"
)

// benchPool is a pool of n runners, each holding 4 of 2n models and one
// request in flight (max_concurrency 4): a warm, half-loaded pool.
func benchPool(b *testing.B, n int) ([]*runner.Runner, *affinity.Index) {
	spec := make([]r, n)
	for i := range spec {
		spec[i] = r{load: i % 2, hints: fmt.Sprintf("model-%d,model-%d,model-%d,model-%d", i, i+n, (i+1)%n, (i+1)%n+n)}
	}
	return setup(b, spec)
}

func BenchmarkPick(b *testing.B) {
	for _, n := range []int{8, 64} {
		for _, c := range []struct{ name, hint string }{
			{"none", ""},
			{"hit", "model-3"},
			{"miss", "model-unknown"},
		} {
			b.Run(fmt.Sprintf("runners=%d/hint=%s", n, c.name), func(b *testing.B) {
				rs, x := benchPool(b, n)
				// ModeFal: a Switchyard miss would mark a runner and turn
				// every later pick into a hit.
				p := affinity.NewPicker(affinity.PickerOptions{Index: x, Mode: affinity.ModeFal})
				b.ReportAllocs()
				for b.Loop() {
					p.Pick(rs, affinity.Request{MaxConcurrency: 4, Hint: c.hint})
				}
			})
		}
	}
}

// BenchmarkPickSoonest is what a request pays under the default policy:
// the pick, Begin and Done, with two jobs already on every runner.
func BenchmarkPickSoonest(b *testing.B) {
	cost := affinity.Cost{Hit: 100 * time.Millisecond, Miss: 500 * time.Millisecond}
	for _, n := range []int{8, 64} {
		for _, c := range []struct{ name, hint string }{
			{"hit", "model-3"},
			{"miss", "model-unknown"},
		} {
			b.Run(fmt.Sprintf("runners=%d/hint=%s", n, c.name), func(b *testing.B) {
				rs, x := benchPool(b, n)
				p := affinity.NewPicker(affinity.PickerOptions{Index: x, Mode: affinity.ModeSoonest})
				for i, r := range rs {
					for j := range 2 {
						p.Begin(affinity.Pick{Runners: []*runner.Runner{r}, Outcome: affinity.OutcomeHit}, affinity.Request{Hint: fmt.Sprintf("model-%d", i+j*n), Cost: cost})
					}
				}
				b.ReportAllocs()
				for b.Loop() {
					pk := p.PickCost(rs, affinity.Request{MaxConcurrency: 4, Hint: c.hint, Cost: cost})
					p.Begin(pk, affinity.Request{Hint: c.hint, Cost: cost}).Done()
				}
			})
		}
	}
}

func BenchmarkPickParallel(b *testing.B) {
	rs, x := benchPool(b, 64)
	p := affinity.NewPicker(affinity.PickerOptions{Index: x, Mode: affinity.ModeLoadingMarks})
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			p.Pick(rs, affinity.Request{MaxConcurrency: 4, Hint: "model-3"})
		}
	})
}

func BenchmarkReport(b *testing.B) {
	const addr = "10.0.0.1:9000"
	for _, c := range []struct {
		name    string
		headers []string
	}{
		{"unchanged", []string{"model-a, model-b, model-c, model-d"}},
		{"changed", []string{"model-a, model-b, model-c, model-d", "model-e, model-a, model-b, model-c"}},
	} {
		b.Run(c.name, func(b *testing.B) {
			x := affinity.NewIndex(affinity.IndexOptions{})
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				x.Report(addr, c.headers[i%len(c.headers)], true)
				i++
			}
		})
	}
}

func BenchmarkParseHints(b *testing.B) {
	header := strings.Repeat("black-forest-labs/FLUX.1-schnell, ", 8)
	b.ReportAllocs()
	for b.Loop() {
		affinity.ParseHints(header)
	}
}
