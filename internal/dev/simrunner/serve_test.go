package simrunner

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestServe(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	s, err := Serve(ctx, "127.0.0.1:0", Options{InferTime: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	addr := s.Addr.String()
	if strings.HasSuffix(addr, ":0") {
		t.Fatalf("listening on %s, want a real port", addr)
	}
	resp, err := http.Get("http://" + addr + "/v1/x")
	if err != nil {
		t.Fatal(err)
	}
	var got reply
	err = json.NewDecoder(resp.Body).Decode(&got)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	if got.Runner != addr || resp.Header.Get(NameHeader) != addr {
		t.Errorf("runner %q, %s %q; want the listen address %s", got.Runner, NameHeader, resp.Header.Get(NameHeader), addr)
	}
	// An empty hint list still travels as an (empty) header.
	if v, ok := resp.Header[HintsHeader]; !ok || len(v) != 1 || v[0] != "" {
		t.Errorf("%s %q present %v, want one empty value", HintsHeader, v, ok)
	}

	// A client that goes away over the wire does not leak the in-flight count.
	slow, err := Serve(ctx, "127.0.0.1:0", Options{InferTime: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	cctx, ccancel := context.WithCancel(ctx)
	req, _ := http.NewRequestWithContext(cctx, http.MethodPost, "http://"+slow.Addr.String()+"/", nil)
	failed := make(chan error, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		failed <- err
	}()
	eventually(t, "the request in flight", func() bool { return slow.Runner.Stats().InFlight == 1 })
	ccancel()
	if err := receive(t, failed); !errors.Is(err, context.Canceled) {
		t.Errorf("client: %v, want canceled", err)
	}
	eventually(t, "the in-flight count back to 0", func() bool { return slow.Runner.Stats().InFlight == 0 })
	if c := slow.Runner.Stats().Canceled; c != 1 {
		t.Errorf("canceled %d, want 1", c)
	}

	// Shutdown lets the request in flight finish.
	inflight := make(chan *http.Response, 1)
	go func() {
		resp, err := http.Get("http://" + addr + "/")
		if err != nil {
			t.Error(err)
			close(inflight)
			return
		}
		resp.Body.Close()
		inflight <- resp
	}()
	eventually(t, "the request in flight", func() bool { return s.Runner.Stats().InFlight == 1 })
	cancel()
	if resp := receive(t, inflight); resp == nil || resp.StatusCode != http.StatusOK {
		t.Errorf("request in flight at shutdown: %v", resp)
	}
	for _, srv := range []*Server{s, slow} {
		if err := receive(t, srv.Done); err != nil {
			t.Errorf("%s: done: %v", srv.Addr, err)
		}
		select {
		case _, open := <-srv.Done:
			if open {
				t.Errorf("%s: Done sent twice", srv.Addr)
			}
		case <-time.After(2 * time.Second):
			t.Errorf("%s: Done not closed", srv.Addr)
		}
	}
	if c, err := net.Dial("tcp", addr); err == nil {
		c.Close()
		t.Errorf("%s still accepts connections", addr)
	}
}

func TestServeErrors(t *testing.T) {
	if _, err := Serve(t.Context(), "127.0.0.1:0", Options{Overload: "drop"}); err == nil || !strings.Contains(err.Error(), `overload "drop"`) {
		t.Errorf("bad options: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if _, err := Serve(t.Context(), ln.Addr().String(), Options{}); err == nil {
		t.Error("port in use: no error")
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		o    Options
		want []string // substrings of the error; none: valid
	}{
		{"zero", Options{}, nil},
		{"full", Options{Name: "x", Slots: 4, LoadTime: time.Second, InferTime: time.Second, MaxConcurrency: 2, Overload: OverloadReject}, nil},
		{"everything wrong", Options{Slots: -1, LoadTime: -1, InferTime: -1, MaxConcurrency: -1, Overload: "drop"},
			[]string{"slots -1", "load time", "infer time", "max concurrency -1", `overload "drop"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.o.Validate()
			if (err != nil) != (tt.want != nil) {
				t.Fatalf("Validate: %v, want error %v", err, tt.want != nil)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
	defer func() {
		if recover() == nil {
			t.Error("New with bad options did not panic")
		}
	}()
	New(Options{Slots: -1})
}

func TestDefaultSleep(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	if err := sleep(ctx, time.Millisecond); err != nil {
		t.Errorf("short sleep: %v", err)
	}
	if err := sleep(ctx, 0); err != nil {
		t.Errorf("zero sleep: %v", err)
	}
	cancel()
	if err := sleep(ctx, time.Hour); !errors.Is(err, context.Canceled) {
		t.Errorf("canceled sleep: %v", err)
	}
}

// A request queued for a slot whose client goes away over the wire leaves
// the queue: it is never started, so it loads no model and takes no GPU time.
func TestQueuedClientGoneOverTheWire(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s, err := Serve(ctx, "127.0.0.1:0", Options{InferTime: time.Hour, MaxConcurrency: 1, Overload: OverloadQueue})
	if err != nil {
		t.Fatal(err)
	}
	post := func(ctx context.Context, model string) chan error {
		done := make(chan error, 1)
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+s.Addr.String()+"/", strings.NewReader(`{"model": "`+model+`"}`))
		go func() {
			resp, err := http.DefaultClient.Do(req)
			if err == nil {
				resp.Body.Close()
			}
			done <- err
		}()
		return done
	}
	hold, release := context.WithCancel(ctx)
	held := post(hold, "a")
	eventually(t, "the first request running", func() bool { return s.Runner.Stats().InFlight == 1 })
	qctx, qcancel := context.WithCancel(ctx)
	queued := post(qctx, "b")
	eventually(t, "the second request queued", func() bool { return s.Runner.Stats().Queued == 1 })
	qcancel()
	if err := receive(t, queued); !errors.Is(err, context.Canceled) {
		t.Errorf("queued client: %v, want canceled", err)
	}
	eventually(t, "the queue empty", func() bool { return s.Runner.Stats().Queued == 0 })
	release()
	receive(t, held)
	eventually(t, "nothing in flight", func() bool { return s.Runner.Stats().InFlight == 0 })
	if st := s.Runner.Stats(); st.Canceled != 2 || st.Hits+st.Misses != 1 || st.ColdLoads != 1 {
		t.Errorf("canceled %d, hits+misses %d, cold loads %d; want 2 (both clients left), 1 and 1 (only the first started)",
			st.Canceled, st.Hits+st.Misses, st.ColdLoads)
	}
}
