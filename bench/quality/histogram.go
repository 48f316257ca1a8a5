package quality

import (
	"io"
	"math"
	"net/http"
	"sort"
	"strconv"
	"strings"
)

// histogram sums a Prometheus histogram's series (every label set) over
// the edges' expositions.
type histogram struct {
	buckets map[float64]float64 // le → cumulative count
	sum     float64
	count   float64
}

// add reads name's buckets, sum and count from one switchyard's /metrics.
func (h *histogram) add(adminURL, name string) {
	resp, err := http.Get(adminURL + "/metrics")
	if err != nil {
		return
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if h.buckets == nil {
		h.buckets = map[float64]float64{}
	}
	for _, line := range strings.Split(string(body), "\n") {
		series, value, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
		if err != nil {
			continue
		}
		switch {
		case strings.HasPrefix(series, name+"_bucket{"):
			_, le, _ := strings.Cut(series, `le="`)
			le, _, _ = strings.Cut(le, `"`)
			bound, err := strconv.ParseFloat(le, 64)
			if err == nil {
				h.buckets[bound] += v
			}
		case strings.HasPrefix(series, name+"_sum"):
			h.sum += v
		case strings.HasPrefix(series, name+"_count"):
			h.count += v
		}
	}
}

// summary is the histogram's mean and quantiles in milliseconds; nil when
// it has no samples.
func (h *histogram) summary() *PredictionError {
	if h.count == 0 {
		return nil
	}
	return &PredictionError{Samples: int(h.count), Mean: 1000 * h.sum / h.count,
		P10: 1000 * h.quantile(0.1), P50: 1000 * h.quantile(0.5), P90: 1000 * h.quantile(0.9)}
}

// quantile interpolates linearly within the bucket holding q, as
// Prometheus's histogram_quantile does; the lowest bucket's lower bound is
// taken as its upper bound minus the next bucket's width.
func (h *histogram) quantile(q float64) float64 {
	bounds := make([]float64, 0, len(h.buckets))
	for b := range h.buckets {
		bounds = append(bounds, b)
	}
	sort.Float64s(bounds)
	rank := q * h.count
	prevBound, prevCount := math.NaN(), 0.0
	for i, b := range bounds {
		c := h.buckets[b]
		if c >= rank {
			if math.IsInf(b, 1) {
				return prevBound // beyond the last finite bound
			}
			lo := prevBound
			if math.IsNaN(lo) {
				lo = b
				if i+1 < len(bounds) && !math.IsInf(bounds[i+1], 1) {
					lo = b - (bounds[i+1] - b)
				}
			}
			if c == prevCount {
				return b
			}
			return lo + (b-lo)*(rank-prevCount)/(c-prevCount)
		}
		prevBound, prevCount = b, c
	}
	return prevBound
}
