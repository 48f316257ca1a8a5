package simrunner

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestOverload(t *testing.T) {
	tests := []struct {
		name         string
		overload     string
		wantStatus   int // of the request beyond the limit
		wantQueued   int64
		wantRejected int64
	}{
		{"queue", OverloadQueue, http.StatusOK, 1, 0},
		{"default is queue", "", http.StatusOK, 1, 0},
		{"reject", OverloadReject, http.StatusServiceUnavailable, 0, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := newGate()
			r := New(Options{Name: "r1", MaxConcurrency: 1, Overload: tt.overload, Sleep: g.sleep})
			ctx := t.Context()
			first := start(t, ctx, r, call{id: 1})
			held := g.next(t)
			second := start(t, ctx, r, call{id: 2})
			if tt.overload == OverloadReject {
				resp := receive(t, second)
				if got := decode(t, resp); resp.Code != tt.wantStatus || got.Error == "" || got.Runner != "r1" {
					t.Errorf("beyond the limit: %d %+v, want %d with an error", resp.Code, got, tt.wantStatus)
				}
				if ct := resp.Header().Get("Content-Type"); ct != "application/json" {
					t.Errorf("Content-Type %q", ct)
				}
			} else {
				eventually(t, "a queued request", func() bool { return r.Stats().Queued == 1 })
			}
			s := r.Stats()
			if s.InFlight != 1 || s.Queued != tt.wantQueued || s.Rejected != tt.wantRejected {
				t.Errorf("while busy: in flight %d queued %d rejected %d, want 1 %d %d", s.InFlight, s.Queued, s.Rejected, tt.wantQueued, tt.wantRejected)
			}
			g.none(t) // the second request is not being served
			held.release <- struct{}{}
			if resp := receive(t, first); resp.Code != http.StatusOK {
				t.Errorf("first: status %d", resp.Code)
			}
			if tt.overload != OverloadReject {
				g.next(t).release <- struct{}{}
				if resp := receive(t, second); resp.Code != tt.wantStatus {
					t.Errorf("second: status %d, want %d", resp.Code, tt.wantStatus)
				}
			}
			want := Stats{Name: "r1", Requests: 2, Rejected: tt.wantRejected, MaxInFlight: 1, Models: []string{}}
			if diff := cmp.Diff(want, r.Stats()); diff != "" {
				t.Errorf("stats (-want +got):\n%s", diff)
			}
		})
	}
}

// Queued requests get slots in arrival order, and never more than
// MaxConcurrency are served at once.
func TestQueueIsFIFO(t *testing.T) {
	const limit, n = 2, 6
	g := newGate()
	r := New(Options{MaxConcurrency: limit, Sleep: g.sleep})
	ctx := t.Context()
	var done []<-chan *httptest.ResponseRecorder
	for id := range n {
		done = append(done, start(t, ctx, r, call{id: id}))
		if id < limit {
			eventually(t, "request in flight", func() bool { return r.Stats().InFlight == int64(id+1) })
		} else {
			eventually(t, "request in the queue", func() bool { return r.Stats().Queued == int64(id-limit+1) })
		}
	}
	// Serving holds the requests being served, oldest first. Each release
	// frees one slot, so the next sleep to start is the queue's oldest.
	serving := []*held{g.next(t), g.next(t)}
	for want := limit; want < n; want++ {
		serving[0].release <- struct{}{}
		h := g.next(t)
		if h.id != want {
			t.Errorf("request %d got the freed slot, want %d", h.id, want)
		}
		if s := r.Stats(); s.InFlight > limit {
			t.Fatalf("%d in flight, limit %d", s.InFlight, limit)
		}
		serving = append(serving[1:], h)
	}
	for _, h := range serving {
		h.release <- struct{}{}
	}
	for i, d := range done {
		if resp := receive(t, d); resp.Code != http.StatusOK {
			t.Errorf("request %d: status %d", i, resp.Code)
		}
	}
	if s := r.Stats(); s.MaxInFlight != limit || s.InFlight != 0 || s.Queued != 0 {
		t.Errorf("max in flight %d, in flight %d, queued %d; want %d 0 0", s.MaxInFlight, s.InFlight, s.Queued, limit)
	}
}

func TestConcurrentMissesShareOneLoad(t *testing.T) {
	const n = 5
	g := newGate()
	r := New(Options{LoadTime: loadTime, InferTime: inferTime, Sleep: g.sleep})
	ctx := t.Context()
	var done []<-chan *httptest.ResponseRecorder
	for id := range n {
		done = append(done, start(t, ctx, r, call{id: id, body: `{"model":"flux"}`}))
	}
	loading := g.next(t)
	if loading.d != loadTime {
		t.Fatalf("first sleep %v, want the load", loading.d)
	}
	eventually(t, "every request waiting for the load", func() bool { return r.Stats().Misses == n })
	g.none(t)
	loading.release <- struct{}{}
	for range n {
		h := g.next(t)
		if h.d != inferTime {
			t.Errorf("request %d slept %v, want inference only", h.id, h.d)
		}
		h.release <- struct{}{}
	}
	for i, d := range done {
		resp := receive(t, d)
		if got := decode(t, resp); resp.Code != http.StatusOK || got.Hit {
			t.Errorf("request %d: %d hit %v, want 200 and a miss", i, resp.Code, got.Hit)
		}
	}
	want := Stats{Name: "simrunner", Requests: n, Misses: n, ColdLoads: 1, MaxInFlight: n, Models: []string{"flux"}}
	if diff := cmp.Diff(want, r.Stats()); diff != "" {
		t.Errorf("stats (-want +got):\n%s", diff)
	}
}

// When the request doing a load goes away, one that waited for it loads.
func TestAbandonedLoadIsTakenOver(t *testing.T) {
	g := newGate()
	r := New(Options{LoadTime: loadTime, InferTime: inferTime, Sleep: g.sleep})
	ctx := t.Context()
	loaderCtx, cancelLoader := context.WithCancel(ctx)
	loader := start(t, loaderCtx, r, call{id: 1, body: `{"model":"flux"}`})
	if h := g.next(t); h.id != 1 || h.d != loadTime {
		t.Fatalf("request %d slept %v, want 1 loading", h.id, h.d)
	}
	waiter := start(t, ctx, r, call{id: 2, body: `{"model":"flux"}`})
	eventually(t, "the second request waiting for the load", func() bool { return r.Stats().Misses == 2 })
	cancelLoader()
	if resp := receive(t, loader); resp.Code != StatusClientClosed {
		t.Errorf("canceled loader: status %d", resp.Code)
	}
	h := g.next(t)
	if h.id != 2 || h.d != loadTime {
		t.Fatalf("request %d slept %v, want 2 loading", h.id, h.d)
	}
	h.release <- struct{}{}
	g.next(t).release <- struct{}{}
	if resp := receive(t, waiter); resp.Code != http.StatusOK {
		t.Errorf("waiter: status %d", resp.Code)
	}
	want := Stats{Name: "simrunner", Requests: 2, Misses: 2, ColdLoads: 1, Canceled: 1, MaxInFlight: 2, Models: []string{"flux"}}
	if diff := cmp.Diff(want, r.Stats()); diff != "" {
		t.Errorf("stats (-want +got):\n%s", diff)
	}
}

func TestCancellationDoesNotLeak(t *testing.T) {
	tests := []struct {
		name  string
		stage func(t *testing.T, g *gate, r *Runner) // waits until the victim is there
	}{
		{"in the queue", func(t *testing.T, g *gate, r *Runner) {
			eventually(t, "the victim in the queue", func() bool { return r.Stats().Queued == 1 })
		}},
		{"loading", func(t *testing.T, g *gate, r *Runner) {}},
		{"inferring", func(t *testing.T, g *gate, r *Runner) {}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := newGate()
			r := New(Options{MaxConcurrency: 1, LoadTime: loadTime, InferTime: inferTime, Sleep: g.sleep})
			ctx := t.Context()
			victimCtx, cancel := context.WithCancel(ctx)
			var blocker *held
			var blocked <-chan *httptest.ResponseRecorder
			victimCall := call{id: 2, body: `{"model":"flux"}`}
			switch tt.name {
			case "in the queue":
				blocked = start(t, ctx, r, call{id: 1})
				blocker = g.next(t)
			case "inferring":
				victimCall.body = ""
			}
			victim := start(t, victimCtx, r, victimCall)
			tt.stage(t, g, r)
			if blocker == nil {
				g.next(t) // the victim's load or inference, never released
			}
			cancel()
			if resp := receive(t, victim); resp.Code != StatusClientClosed {
				t.Errorf("victim: status %d, want %d", resp.Code, StatusClientClosed)
			}
			if blocker != nil {
				blocker.release <- struct{}{}
				receive(t, blocked)
			}
			s := r.Stats()
			if s.InFlight != 0 || s.Queued != 0 || s.Canceled != 1 || s.ColdLoads != 0 {
				t.Errorf("after: in flight %d queued %d canceled %d cold loads %d, want 0 0 1 0", s.InFlight, s.Queued, s.Canceled, s.ColdLoads)
			}
			// The slot is free: the next request is served at once.
			next := start(t, ctx, r, call{id: 3})
			g.next(t).release <- struct{}{}
			if resp := receive(t, next); resp.Code != http.StatusOK {
				t.Errorf("next: status %d", resp.Code)
			}
		})
	}
}

// A queued request that gives up just as its slot is handed over must pass
// the slot on. Racing the two many times visits both orders.
func TestCancelRacesHandOver(t *testing.T) {
	for range 100 {
		g := newGate()
		r := New(Options{MaxConcurrency: 1, Sleep: g.sleep})
		ctx := t.Context()
		first := start(t, ctx, r, call{id: 1})
		h := g.next(t)
		victimCtx, cancel := context.WithCancel(ctx)
		victim := start(t, victimCtx, r, call{id: 2})
		eventually(t, "the victim in the queue", func() bool { return r.Stats().Queued == 1 })
		go cancel()
		h.release <- struct{}{}
		receive(t, first)
		if resp := receive(t, victim); resp.Code == http.StatusOK {
			continue // served before it noticed the cancellation
		}
		// Drain a sleep the victim may have started after being handed the slot.
		select {
		case v := <-g.calls:
			close(v.release)
		default:
		}
		if s := r.Stats(); s.InFlight != 0 || s.Queued != 0 {
			t.Fatalf("in flight %d queued %d, want 0 0", s.InFlight, s.Queued)
		}
	}
}
