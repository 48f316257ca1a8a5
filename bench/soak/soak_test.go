package soak_test

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/bench/soak"
)

// A short soak through the real stack: every sample taken, the requests
// answered, the figures read from both processes.
func TestShortSoak(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	r, err := soak.Run(ctx, soak.Options{Duration: 8 * time.Second, Rate: 100, Samples: 3, Log: os.Stderr})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Samples) != 3 {
		t.Fatalf("%d samples, want 3", len(r.Samples))
	}
	last := r.Samples[2]
	if last.Requests < 700 || last.Failed != 0 || last.DistinctHints < last.Requests {
		t.Errorf("last sample %+v: want ~800 requests, none failed, a hint each", last)
	}
	for i, s := range r.Samples {
		if s.SwitchyardRSSMiB <= 0 || s.EnvoyRSSMiB <= 0 || s.Goroutines <= 0 || s.XDSStreams != 1 {
			t.Errorf("sample %d %+v: a figure was not read", i, s)
		}
	}
	if last.RunnerChanges == 0 {
		t.Error("no runner registered or drained")
	}
	if md := r.Markdown(); !strings.Contains(md, "From the first sample to the last") {
		t.Errorf("markdown:\n%s", md)
	}
}
