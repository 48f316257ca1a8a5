// Package workload is the routing-quality workload: GPU pools whose runners
// hold a few models each, and the request sequence sent to them (Poisson
// arrivals, Zipf model popularity reversed half-way). The benchmark in
// bench/quality replays it through the real Envoy; policy's tests
// simulate it in virtual time. Both take it from here, so they measure the
// same thing.
package workload

import (
	"fmt"
	"math/rand"
	"time"

	"github.com/switchyard/switchyard/internal/dev/simrunner"
)

// Shape is the pools, the runners and the sequence. Times are scaled down
// from real GPUs (seconds of model load, hundreds of milliseconds of
// inference) keeping their ratio, so a run takes minutes, not hours.
type Shape struct {
	Pools          int           `json:"pools"`
	RunnersPerPool int           `json:"runners_per_pool"`
	Slots          int           `json:"slots"`           // models a runner holds
	Models         int           `json:"models_per_pool"` // distinct models per pool
	ZipfS          float64       `json:"zipf_s"`
	MaxConcurrency int           `json:"max_concurrency"` // per runner
	LoadTime       time.Duration `json:"load_time"`
	InferTime      time.Duration `json:"infer_time"`
	Duration       time.Duration `json:"duration"`
	Seed           int64         `json:"seed"`
	// Mixed gives requests the spread of sizes and steps of image
	// traffic (Sizes, Steps) instead of one 1024x1024 size: a request's
	// inference takes InferTime × its Scale.
	Mixed bool `json:"mixed,omitempty"`
}

// Share is one value of a request field and the share of requests with it.
type Share struct {
	Value int
	Share float64
}

// Sizes and Steps are the mixed workload's spread: square images from
// thumbnails to 2048 px, and step counts from distilled models (4) to
// quality settings (50), drawn independently: a 200-fold spread of Scale (0.03 to 6.7), mean 0.86.
var (
	Sizes = []Share{{512, 0.30}, {768, 0.15}, {1024, 0.35}, {1536, 0.12}, {2048, 0.08}}
	Steps = []Share{{4, 0.20}, {8, 0.15}, {20, 0.20}, {30, 0.25}, {50, 0.20}}
)

// CostExpr is the route cost expression that gives a mixed request its
// Scale, as the simulated runners take it (no image of Sizes is below the
// runners' floor of a tenth of 1024x1024).
const CostExpr = `double(body.width) * double(body.height) / 1048576.0 * double(body.num_inference_steps) / 30.0`

// Defaults fills the unset fields but Duration: 2 pools of 4 runners with
// 3 slots, 8 models per pool with Zipf(1.1) popularity, max_concurrency 1,
// a 400 ms load, a 100 ms inference, seed 42.
func (s *Shape) Defaults() {
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	def(&s.Pools, 2)
	def(&s.RunnersPerPool, 4)
	def(&s.Slots, 3)
	def(&s.Models, 8)
	def(&s.MaxConcurrency, 1)
	if s.ZipfS == 0 {
		s.ZipfS = 1.1
	}
	if s.LoadTime == 0 {
		s.LoadTime = 400 * time.Millisecond
	}
	if s.InferTime == 0 {
		s.InferTime = 100 * time.Millisecond
	}
	if s.Seed == 0 {
		s.Seed = 42
	}
}

// Timeout is how long a client waits for an answer: ten model loads.
func (s Shape) Timeout() time.Duration { return 10 * s.LoadTime }

// Capacity is the request rate the runners serve when every request finds
// its model loaded.
func (s Shape) Capacity() float64 {
	return float64(s.Pools*s.RunnersPerPool*s.MaxConcurrency) / (s.InferTime.Seconds() * s.MeanScale())
}

// MeanScale is a request's mean inference time over InferTime: 1 unless
// Mixed.
func (s Shape) MeanScale() float64 {
	if !s.Mixed {
		return 1
	}
	mean := 0.0
	for _, z := range Sizes {
		for _, st := range Steps {
			mean += z.Share * st.Share * simrunner.Scale(float64(z.Value), float64(z.Value), float64(st.Value))
		}
	}
	return mean
}

// Request is one request of a sequence.
type Request struct {
	At    time.Duration // from the start
	Pool  int
	Model string
	// Size and Steps are the image's side and inference steps (Mixed
	// only; zero otherwise).
	Size, Steps int
}

// Scale is the request's inference time over InferTime.
func (r Request) Scale() float64 {
	if r.Size == 0 {
		return 1
	}
	return simrunner.Scale(float64(r.Size), float64(r.Size), float64(r.Steps))
}

// Body is the request's JSON body as the benchmark sends it.
func (r Request) Body() string {
	if r.Size == 0 {
		return fmt.Sprintf(`{"model": %q, "prompt": "a lighthouse", "width": 1024, "height": 1024}`, r.Model)
	}
	return fmt.Sprintf(`{"model": %q, "prompt": "a lighthouse", "width": %d, "height": %d, "num_inference_steps": %d}`, r.Model, r.Size, r.Size, r.Steps)
}

func draw(rng *rand.Rand, shares []Share) int {
	u := rng.Float64()
	for _, s := range shares {
		if u < s.Share {
			return s.Value
		}
		u -= s.Share
	}
	return shares[len(shares)-1].Value
}

// Sequence is the request list for a run at rate requests per second:
// Poisson arrivals, a pool uniformly, a model by Zipf popularity; half-way
// the popularity order of every pool's models is reversed. The same shape
// and rate give the same list.
func (s Shape) Sequence(rate float64) []Request {
	rng := rand.New(rand.NewSource(s.Seed))
	zipf := rand.NewZipf(rng, s.ZipfS, 1, uint64(s.Models-1))
	// Sizes come from a stream of their own: the arrivals and models are
	// those of the same shape unmixed.
	sizes := rand.New(rand.NewSource(s.Seed + 7))
	var out []Request
	for t := time.Duration(0); t < s.Duration; {
		t += time.Duration(rng.ExpFloat64() / rate * float64(time.Second))
		rank := int(zipf.Uint64())
		if t >= s.Duration/2 {
			rank = s.Models - 1 - rank
		}
		pool := rng.Intn(s.Pools)
		req := Request{At: t, Pool: pool, Model: fmt.Sprintf("p%d-model-%02d", pool, rank)}
		if s.Mixed {
			req.Size, req.Steps = draw(sizes, Sizes), draw(sizes, Steps)
		}
		out = append(out, req)
	}
	return out
}

// Ceiling is the best hit rate possible for seq: every distinct model must
// be loaded once (a compulsory miss).
func Ceiling(seq []Request) float64 {
	distinct := map[string]bool{}
	for _, r := range seq {
		distinct[r.Model] = true
	}
	return 1 - float64(len(distinct))/float64(len(seq))
}
