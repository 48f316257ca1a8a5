package affinity

import (
	"math"
	"testing"
	"time"
)

// A hint's request rate is right from a pool's first seconds, not only
// once a whole window of requests has been counted: 5 requests a second
// read 5 a second after 2 s (counting them over the full window would read
// 1, and price evicting a busy model as if nobody asked for it), and after
// a minute.
func TestDemandRate(t *testing.T) {
	since := time.Unix(1000, 0)
	var d demand
	for _, secs := range []float64{2, 60} {
		d = demand{at: since}
		for i := 0; float64(i) < 5*secs; i++ {
			d.add(since.Add(time.Duration(float64(i) / 5 * float64(time.Second))))
		}
		if got := d.rate(since.Add(time.Duration(secs*float64(time.Second))), since); math.Abs(got-5) > 0.5 {
			t.Errorf("after %v s of 5 requests a second: rate %.2f", secs, got)
		}
	}
	// Asked for once, the very first request: not an absurd rate.
	d = demand{at: since}
	d.add(since)
	if got := d.rate(since, since); got > 1.1 {
		t.Errorf("one request at the start: rate %.2f, want at most about one a second", got)
	}
	var none *demand
	if none.rate(since, since) != 0 {
		t.Error("a hint never asked for has a rate")
	}
}
