package quality

import (
	"math"
	"testing"
)

func TestHistogramQuantile(t *testing.T) {
	// 10 samples: 2 in (-0.1, 0], 6 in (0, 0.1], 2 in (0.1, 0.5].
	h := histogram{buckets: map[float64]float64{-0.1: 0, 0: 2, 0.1: 8, 0.5: 10, math.Inf(1): 10}, sum: 0.9, count: 10}
	for _, tt := range []struct{ q, want float64 }{
		{0.2, 0},     // the end of the second bucket
		{0.5, 0.05},  // halfway through (0, 0.1]
		{0.9, 0.3},   // halfway through (0.1, 0.5]
		{0.1, -0.05}, // halfway through (-0.1, 0]
		{1, 0.5},     // the last finite bound
	} {
		if got := h.quantile(tt.q); math.Abs(got-tt.want) > 1e-9 {
			t.Errorf("q%.2f = %v, want %v", tt.q, got, tt.want)
		}
	}
	s := h.summary()
	if s.Samples != 10 || math.Abs(s.Mean-90) > 1e-9 {
		t.Errorf("summary %+v", s)
	}
	if (&histogram{}).summary() != nil {
		t.Error("an empty histogram has a summary")
	}
}
