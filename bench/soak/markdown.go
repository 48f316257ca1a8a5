package soak

import (
	"fmt"
	"strings"
)

// Markdown reports the run: the samples, and each figure's change from the
// first sample (after the warm-up) to the last.
func (r *Result) Markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "The real stack (`switchyard up`: switchyard and its Envoy as processes of their own) under %d requests/s for %.0f s, "+
		"every request with a hint never sent before, %d runners serving and %d more registering (TTL 5 s) and draining in turn, one change a second. "+
		"Samples after a warm-up, along the way and after the stream stopped.\n\n", r.Rate, r.DurationSeconds, r.Runners, r.ChurnRunners)
	b.WriteString("| at s | requests | failed | distinct hints | runner changes | switchyard RSS MiB | heap MiB | goroutines | awaiting end | Envoy RSS MiB | Envoy allocated MiB | streams Envoy → switchyard | ADS streams |\n")
	b.WriteString("|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n")
	for _, s := range r.Samples {
		fmt.Fprintf(&b, "| %.0f | %d | %d | %d | %d | %.1f | %.1f | %.0f | %.0f | %.1f | %.1f | %.0f | %.0f |\n",
			s.AtSeconds, s.Requests, s.Failed, s.DistinctHints, s.RunnerChanges, s.SwitchyardRSSMiB, s.SwitchyardHeapMiB,
			s.Goroutines, s.AwaitingEnd, s.EnvoyRSSMiB, s.EnvoyAllocMiB, s.StreamsToSwitchyard, s.XDSStreams)
	}
	if n := len(r.Samples); n >= 2 {
		first, last := r.Samples[0], r.Samples[n-1]
		fmt.Fprintf(&b, "\nFrom the first sample to the last: switchyard RSS %s, heap %s, goroutines %s; Envoy RSS %s, allocated %s.\n",
			change(first.SwitchyardRSSMiB, last.SwitchyardRSSMiB), change(first.SwitchyardHeapMiB, last.SwitchyardHeapMiB),
			change(first.Goroutines, last.Goroutines), change(first.EnvoyRSSMiB, last.EnvoyRSSMiB), change(first.EnvoyAllocMiB, last.EnvoyAllocMiB))
	}
	return b.String()
}

func change(from, to float64) string {
	if from == 0 {
		return fmt.Sprintf("%.1f → %.1f", from, to)
	}
	return fmt.Sprintf("%.1f → %.1f (%+.0f %%)", from, to, (to-from)/from*100)
}
