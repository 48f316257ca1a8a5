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
}

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
	return float64(s.Pools*s.RunnersPerPool*s.MaxConcurrency) / s.InferTime.Seconds()
}

// Request is one request of a sequence.
type Request struct {
	At    time.Duration // from the start
	Pool  int
	Model string
}

// Sequence is the request list for a run at rate requests per second:
// Poisson arrivals, a pool uniformly, a model by Zipf popularity; half-way
// the popularity order of every pool's models is reversed. The same shape
// and rate give the same list.
func (s Shape) Sequence(rate float64) []Request {
	rng := rand.New(rand.NewSource(s.Seed))
	zipf := rand.NewZipf(rng, s.ZipfS, 1, uint64(s.Models-1))
	var out []Request
	for t := time.Duration(0); t < s.Duration; {
		t += time.Duration(rng.ExpFloat64() / rate * float64(time.Second))
		rank := int(zipf.Uint64())
		if t >= s.Duration/2 {
			rank = s.Models - 1 - rank
		}
		pool := rng.Intn(s.Pools)
		out = append(out, Request{At: t, Pool: pool, Model: fmt.Sprintf("p%d-model-%02d", pool, rank)})
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
