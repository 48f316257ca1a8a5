package simrunner

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Overload modes: what a runner does with a request beyond MaxConcurrency.
const (
	OverloadQueue  = "queue"  // wait for a slot, first come first served
	OverloadReject = "reject" // answer 503 at once
)

// Options describe one simulated runner. The zero value is a runner with two
// model slots, no load or inference cost and no concurrency limit.
type Options struct {
	// Name is reported in responses and stats. Default: the address the
	// request arrived on (Serve sets it to the listen address), "simrunner"
	// when there is none (ServeHTTP called directly).
	Name string
	// Slots is how many models the runner holds at once (LRU). Default 2.
	Slots int
	// LoadTime is what loading a model that is not held costs.
	LoadTime time.Duration
	// InferTime is the inference time of a 1024x1024 image, scaled by
	// width*height/1048576 (at least 0.1x) when the body has both, and by
	// num_inference_steps/30 when it has that (Scale); without them a
	// request costs InferTime.
	InferTime time.Duration
	// MaxConcurrency is how many requests are served at once; 0 is no limit.
	MaxConcurrency int
	// Overload is OverloadQueue (default) or OverloadReject.
	Overload string
	// ProvideHints, default true, sets X-Fal-Runner-Hints on every response.
	ProvideHints *bool
	// Sleep waits d or until ctx ends (then it returns ctx.Err()). Tests
	// inject it; the default uses a real timer.
	Sleep func(ctx context.Context, d time.Duration) error
}

// Validate reports every problem with o.
func (o Options) Validate() error {
	var errs []error
	if o.Slots < 0 {
		errs = append(errs, fmt.Errorf("slots %d: must not be negative", o.Slots))
	}
	if o.LoadTime < 0 {
		errs = append(errs, fmt.Errorf("load time %v: must not be negative", o.LoadTime))
	}
	if o.InferTime < 0 {
		errs = append(errs, fmt.Errorf("infer time %v: must not be negative", o.InferTime))
	}
	if o.MaxConcurrency < 0 {
		errs = append(errs, fmt.Errorf("max concurrency %d: must not be negative (0 is no limit)", o.MaxConcurrency))
	}
	switch o.Overload {
	case "", OverloadQueue, OverloadReject:
	default:
		errs = append(errs, fmt.Errorf("overload %q: want %q or %q", o.Overload, OverloadQueue, OverloadReject))
	}
	return errors.Join(errs...)
}

func (o Options) withDefaults() Options {
	if o.Slots == 0 {
		o.Slots = 2
	}
	if o.Overload == "" {
		o.Overload = OverloadQueue
	}
	if o.ProvideHints == nil {
		t := true
		o.ProvideHints = &t
	}
	if o.Sleep == nil {
		o.Sleep = sleep
	}
	return o
}

func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
