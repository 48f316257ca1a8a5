package simrunner

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// reply is a runner's JSON answer, success or error.
type reply struct {
	Runner   string            `json:"runner"`
	Model    string            `json:"model"`
	Hit      bool              `json:"hit"`
	Path     string            `json:"path"`
	Method   string            `json:"method"`
	Headers  map[string]string `json:"headers"`
	ImageURL string            `json:"image_url"`
	Error    string            `json:"error"`
}

// call is one request to a runner.
type call struct {
	method, path, body string
	header             map[string]string
	id                 int // lets a gate tell requests apart
}

type idKey struct{}

func modelCall(model string) call {
	if model == "" {
		return call{}
	}
	return call{body: `{"model":"` + model + `","prompt":"a cat"}`}
}

// do serves c on h in-process with ctx.
func do(t *testing.T, ctx context.Context, h http.Handler, c call) *httptest.ResponseRecorder {
	t.Helper()
	if c.method == "" {
		c.method = http.MethodPost
	}
	if c.path == "" {
		c.path = "/"
	}
	req := httptest.NewRequestWithContext(context.WithValue(ctx, idKey{}, c.id), c.method, c.path, strings.NewReader(c.body))
	for k, v := range c.header {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

// start serves c in the background; the result arrives on the channel.
func start(t *testing.T, ctx context.Context, h http.Handler, c call) <-chan *httptest.ResponseRecorder {
	out := make(chan *httptest.ResponseRecorder, 1)
	go func() { out <- do(t, ctx, h, c) }()
	return out
}

func decode(t *testing.T, rec *httptest.ResponseRecorder) reply {
	t.Helper()
	var r reply
	if err := json.Unmarshal(rec.Body.Bytes(), &r); err != nil {
		t.Fatalf("response %d %q is not JSON: %v", rec.Code, rec.Body.String(), err)
	}
	return r
}

func receive[T any](t *testing.T, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(2 * time.Second):
		t.Fatal("timed out")
		panic("unreachable")
	}
}

// eventually polls a condition that no event announces (a request joining
// a queue or a load inside the runner).
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// recorder is a Sleep that returns at once and records what it was asked.
type recorder struct {
	mu sync.Mutex
	ds []time.Duration
}

func (r *recorder) sleep(ctx context.Context, d time.Duration) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ds = append(r.ds, d)
	return ctx.Err()
}

func (r *recorder) take() []time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	ds := r.ds
	r.ds = nil
	return ds
}

// gate is a Sleep that blocks each call until the test releases it or the
// request's context ends.
type gate struct{ calls chan *held }

type held struct {
	d       time.Duration
	id      int
	release chan struct{}
}

func newGate() *gate { return &gate{calls: make(chan *held, 64)} }

func (g *gate) sleep(ctx context.Context, d time.Duration) error {
	id, _ := ctx.Value(idKey{}).(int)
	h := &held{d: d, id: id, release: make(chan struct{})}
	g.calls <- h
	select {
	case <-h.release:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (g *gate) next(t *testing.T) *held {
	t.Helper()
	return receive(t, g.calls)
}

// none checks that no call is waiting to be taken.
func (g *gate) none(t *testing.T) {
	t.Helper()
	select {
	case h := <-g.calls:
		t.Fatalf("unexpected sleep of %v by request %d", h.d, h.id)
	default:
	}
}
