package controlplane

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"time"
)

// Dist summarises durations, in milliseconds.
type Dist struct {
	N       int       `json:"n"`
	Min     float64   `json:"min_ms"`
	P50     float64   `json:"p50_ms"`
	P99     float64   `json:"p99_ms"`
	Max     float64   `json:"max_ms"`
	Samples []float64 `json:"samples_ms,omitempty"`
}

// dist summarises ds with nearest-rank percentiles; keep keeps the samples
// (for the few registrations, not the thousands of fan-out deliveries).
func dist(ds []time.Duration, keep bool) Dist {
	if len(ds) == 0 {
		return Dist{}
	}
	s := make([]float64, len(ds))
	for i, d := range ds {
		s[i] = round3(ms(d))
	}
	sorted := slices.Clone(s)
	slices.Sort(sorted)
	out := Dist{N: len(s), Min: sorted[0], P50: rank(sorted, 0.50), P99: rank(sorted, 0.99), Max: sorted[len(sorted)-1]}
	if keep {
		out.Samples = s
	}
	return out
}

func rank(sorted []float64, q float64) float64 {
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[max(i, 0)]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func round3(v float64) float64 { return math.Round(v*1000) / 1000 }

func mib(b uint64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

// thousands writes n with comma separators: 10,000.
func thousands(n int) string {
	s := strconv.Itoa(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}
