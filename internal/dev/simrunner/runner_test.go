package simrunner

import (
	stdcmp "cmp"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

const (
	loadTime  = 10 * time.Second
	inferTime = time.Second
)

func TestModelCache(t *testing.T) {
	tests := []struct {
		name      string
		slots     int
		models    []string // "" is a request without a model
		wantHits  []bool
		wantHints []string // X-Fal-Runner-Hints of each response
		want      Stats
	}{
		{
			name:      "repeat",
			models:    []string{"a", "a", "a"},
			wantHits:  []bool{false, true, true},
			wantHints: []string{"a", "a", "a"},
			want:      Stats{Requests: 3, Hits: 2, Misses: 1, ColdLoads: 1, MaxInFlight: 1, Models: []string{"a"}},
		},
		{
			name:      "least recently used goes",
			models:    []string{"a", "b", "c", "a"},
			wantHits:  []bool{false, false, false, false},
			wantHints: []string{"a", "b,a", "c,b", "a,c"},
			want:      Stats{Requests: 4, Misses: 4, ColdLoads: 4, Evictions: 2, MaxInFlight: 1, Models: []string{"a", "c"}},
		},
		{
			name:      "a hit refreshes recency",
			models:    []string{"a", "b", "a", "c", "a", "b"},
			wantHits:  []bool{false, false, true, false, true, false},
			wantHints: []string{"a", "b,a", "a,b", "c,a", "a,c", "b,a"},
			want:      Stats{Requests: 6, Hits: 2, Misses: 4, ColdLoads: 4, Evictions: 2, MaxInFlight: 1, Models: []string{"b", "a"}},
		},
		{
			name:      "no model costs no load",
			models:    []string{"", "a", ""},
			wantHits:  []bool{false, false, false},
			wantHints: []string{"", "a", "a"},
			want:      Stats{Requests: 3, Misses: 1, ColdLoads: 1, MaxInFlight: 1, Models: []string{"a"}},
		},
		{
			name:      "one slot",
			slots:     1,
			models:    []string{"a", "b", "b", "a"},
			wantHits:  []bool{false, false, true, false},
			wantHints: []string{"a", "b", "b", "a"},
			want:      Stats{Requests: 4, Hits: 1, Misses: 3, ColdLoads: 3, Evictions: 2, MaxInFlight: 1, Models: []string{"a"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &recorder{}
			r := New(Options{Name: "r1", Slots: tt.slots, LoadTime: loadTime, InferTime: inferTime, Sleep: rec.sleep})
			for i, m := range tt.models {
				resp := do(t, t.Context(), r, modelCall(m))
				if resp.Code != http.StatusOK {
					t.Fatalf("request %d: status %d: %s", i, resp.Code, resp.Body)
				}
				got := decode(t, resp)
				if got.Model != m || got.Hit != tt.wantHits[i] || got.Runner != "r1" {
					t.Errorf("request %d (%q): runner %q model %q hit %v, want r1 %q %v", i, m, got.Runner, got.Model, got.Hit, m, tt.wantHits[i])
				}
				if h := resp.Header().Get(HintsHeader); h != tt.wantHints[i] {
					t.Errorf("request %d (%q): hints %q, want %q", i, m, h, tt.wantHints[i])
				}
				wantSleeps := []time.Duration{inferTime}
				if m != "" && !tt.wantHits[i] {
					wantSleeps = []time.Duration{loadTime, inferTime}
				}
				if diff := cmp.Diff(wantSleeps, rec.take()); diff != "" {
					t.Errorf("request %d (%q): sleeps (-want +got):\n%s", i, m, diff)
				}
			}
			tt.want.Name = "r1"
			if diff := cmp.Diff(tt.want, r.Stats()); diff != "" {
				t.Errorf("stats (-want +got):\n%s", diff)
			}
		})
	}
}

func TestRequestFields(t *testing.T) {
	tests := []struct {
		name      string
		call      call
		wantModel string
	}{
		{"model in body", call{body: `{"model":"flux","prompt":"x"}`}, "flux"},
		{"hint header only", call{header: map[string]string{HintHeader: "sdxl"}}, "sdxl"},
		{"body wins over header", call{body: `{"model":"flux"}`, header: map[string]string{HintHeader: "sdxl"}}, "flux"},
		{"not JSON, header", call{body: `model=flux`, header: map[string]string{HintHeader: "sdxl"}}, "sdxl"},
		{"not JSON", call{body: `{"model":`}, ""},
		{"model not a string", call{body: `{"model":7}`, header: map[string]string{HintHeader: "sdxl"}}, "sdxl"},
		{"JSON array", call{body: `["flux"]`}, ""},
		{"empty body", call{method: http.MethodGet, path: "/health"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := New(Options{Name: "r1", Sleep: (&recorder{}).sleep})
			c := tt.call
			c.header = map[string]string{"X-User-Id": "u1", "Content-Type": "application/json"}
			for k, v := range tt.call.header {
				c.header[k] = v
			}
			resp := do(t, t.Context(), r, c)
			if resp.Code != http.StatusOK {
				t.Fatalf("status %d: %s", resp.Code, resp.Body)
			}
			got := decode(t, resp)
			if got.Model != tt.wantModel {
				t.Errorf("model %q, want %q", got.Model, tt.wantModel)
			}
			wantMethod, wantPath := stdcmp.Or(c.method, http.MethodPost), stdcmp.Or(c.path, "/")
			if got.Method != wantMethod || got.Path != wantPath {
				t.Errorf("%s %s, want %s %s", got.Method, got.Path, wantMethod, wantPath)
			}
			wantHeaders := map[string]string{"x-user-id": "u1"}
			if h, ok := tt.call.header[HintHeader]; ok {
				wantHeaders["x-fal-runner-hint"] = h
			}
			if diff := cmp.Diff(wantHeaders, got.Headers); diff != "" {
				t.Errorf("echoed headers (-want +got):\n%s", diff)
			}
			if got := resp.Header().Get(NameHeader); got != "r1" {
				t.Errorf("%s %q, want r1", NameHeader, got)
			}
		})
	}
}

// An image_url in the body comes back with the work done appended, so a
// pipeline's chain of steps shows in its last answer; without one, none.
func TestImageURLAnswer(t *testing.T) {
	r := New(Options{Name: "r1", Sleep: (&recorder{}).sleep})
	got := decode(t, do(t, t.Context(), r, call{path: "/v1/remove-background", body: `{"image_url": "s3://cat.png+upscale"}`}))
	if got.ImageURL != "s3://cat.png+upscale+remove-background" {
		t.Errorf("image_url %q", got.ImageURL)
	}
	if got := decode(t, do(t, t.Context(), r, modelCall("flux"))); got.ImageURL != "" {
		t.Errorf("image_url %q without one in the body", got.ImageURL)
	}
}

func TestInferTimeScalesWithPixels(t *testing.T) {
	tests := []struct {
		name string
		body string
		want time.Duration
	}{
		{"no size", `{"prompt":"x"}`, inferTime},
		{"1024x1024", `{"width":1024,"height":1024}`, inferTime},
		{"2048x1024", `{"width":2048,"height":1024}`, 2 * inferTime},
		{"512x512", `{"width":512,"height":512}`, inferTime / 4},
		{"tiny is a tenth", `{"width":64,"height":64}`, inferTime / 10},
		{"width only", `{"width":2048}`, inferTime},
		{"negative", `{"width":-2048,"height":1024}`, inferTime},
		{"not numbers", `{"width":"2048","height":"1024"}`, inferTime},
		{"fractional", `{"width":1536.0,"height":1024}`, inferTime * 3 / 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &recorder{}
			r := New(Options{InferTime: inferTime, LoadTime: loadTime, Sleep: rec.sleep})
			if resp := do(t, t.Context(), r, call{body: tt.body}); resp.Code != http.StatusOK {
				t.Fatalf("status %d", resp.Code)
			}
			if diff := cmp.Diff([]time.Duration{tt.want}, rec.take()); diff != "" {
				t.Errorf("sleeps (-want +got):\n%s", diff)
			}
		})
	}
}

func TestHintsOnEveryResponse(t *testing.T) {
	no := false
	tests := []struct {
		name      string
		hints     *bool
		wantHints []string // nil: header absent
	}{
		{"default", nil, []string{"b,a"}},
		{"off", &no, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := newGate()
			r := New(Options{MaxConcurrency: 1, Overload: OverloadReject, ProvideHints: tt.hints, Sleep: g.sleep})
			// Load a and b, then hold the only slot with a request for a.
			ctx := t.Context()
			for _, m := range []string{"b", "a"} {
				done := start(t, ctx, r, modelCall(m))
				g.next(t).release <- struct{}{} // load
				g.next(t).release <- struct{}{} // inference
				receive(t, done)
			}
			busy := start(t, ctx, r, modelCall("b"))
			busyInfer := g.next(t)
			check := func(name string, resp *httptest.ResponseRecorder, status int) {
				t.Helper()
				if resp.Code != status {
					t.Errorf("%s: status %d, want %d: %s", name, resp.Code, status, resp.Body)
				}
				if diff := cmp.Diff(tt.wantHints, resp.Header().Values(HintsHeader)); diff != "" {
					t.Errorf("%s: %s (-want +got):\n%s", name, HintsHeader, diff)
				}
			}
			for _, c := range []struct {
				name   string
				call   call
				status int
			}{
				{"rejected", modelCall("a"), http.StatusServiceUnavailable},
				{"stats", call{method: http.MethodGet, path: "/_sim/stats"}, http.StatusOK},
				{"metrics", call{method: http.MethodGet, path: "/_sim/metrics"}, http.StatusOK},
				{"unknown own", call{method: http.MethodGet, path: "/_sim/nope"}, http.StatusNotFound},
				{"wrong method", call{method: http.MethodGet, path: "/_sim/reset"}, http.StatusMethodNotAllowed},
				{"reset", call{method: http.MethodPost, path: "/_sim/reset"}, http.StatusOK},
			} {
				check(c.name, do(t, ctx, r, c.call), c.status)
			}
			busyInfer.release <- struct{}{}
			resp := receive(t, busy)
			check("served", resp, http.StatusOK)
			if got := decode(t, resp); !got.Hit {
				t.Errorf("served: hit false, want true")
			}

			r.maxBody = 1 << 10
			check("body too large", do(t, ctx, r, call{body: strings.Repeat("x", 1<<10+1)}), http.StatusRequestEntityTooLarge)
			canceledCtx, cancel := context.WithCancel(ctx)
			cancel()
			canceled := start(t, canceledCtx, r, modelCall("b"))
			g.next(t) // the inference, which returns at once
			check("canceled", receive(t, canceled), StatusClientClosed)
		})
	}
}

func TestEmptyRunnerSendsEmptyHints(t *testing.T) {
	r := New(Options{Sleep: (&recorder{}).sleep})
	resp := do(t, t.Context(), r, call{})
	if diff := cmp.Diff([]string{""}, resp.Header().Values(HintsHeader)); diff != "" {
		t.Errorf("%s (-want +got):\n%s", HintsHeader, diff)
	}
}

// The runner's own cost per request, which benchmarks driving many
// simulated runners pay on top of the simulated times.
func BenchmarkServeHit(b *testing.B) {
	r := New(Options{Sleep: func(context.Context, time.Duration) error { return nil }})
	body := `{"model":"flux","prompt":"a cat","width":1024,"height":1024}`
	b.ReportAllocs()
	for b.Loop() {
		req := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(body))
		req.Header.Set(HintHeader, "flux")
		r.ServeHTTP(httptest.NewRecorder(), req)
	}
}
