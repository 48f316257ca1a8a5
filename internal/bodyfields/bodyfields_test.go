package bodyfields_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/switchyard/switchyard/internal/bodyfields"
)

func TestExtract(t *testing.T) {
	tests := []struct {
		name  string
		paths [][]string
		body  string
		want  map[string]any
		err   error
	}{
		{"ints stay ints", [][]string{{"width"}, {"height"}}, `{"width": 1024, "height": 768, "prompt": "x"}`,
			map[string]any{"width": int64(1024), "height": int64(768)}, nil},
		{"floats and missing", [][]string{{"scale"}, {"seed"}}, `{"scale": 0.5}`, map[string]any{"scale": 0.5}, nil},
		{"nested", [][]string{{"input", "model"}, {"input", "size", "w"}}, `{"input": {"model": "flux", "size": {"w": 8}}}`,
			map[string]any{"input": map[string]any{"model": "flux", "size": map[string]any{"w": int64(8)}}}, nil},
		{"special characters in keys", [][]string{{"a.b"}, {"x*"}, {"@this"}}, `{"a.b": 1, "x*": 2, "@this": 3, "a": {"b": 9}}`,
			map[string]any{"a.b": int64(1), "x*": int64(2), "@this": int64(3)}, nil},
		{"arrays and objects as values", [][]string{{"loras"}}, `{"loras": [{"scale": 1}, {"scale": 0.5}]}`,
			map[string]any{"loras": []any{map[string]any{"scale": int64(1)}, map[string]any{"scale": 0.5}}}, nil},
		{"no path through arrays", [][]string{{"items", "0"}}, `{"items": ["a"]}`, map[string]any{}, nil},
		{"wrong types pass through", [][]string{{"width"}}, `{"width": "wide"}`, map[string]any{"width": "wide"}, nil},
		{"null", [][]string{{"model"}}, `{"model": null}`, map[string]any{"model": nil}, nil},
		{"big integer becomes float", [][]string{{"n"}}, `{"n": 123456789012345678901234567890}`, map[string]any{"n": 1.2345678901234568e+29}, nil},
		{"not json", [][]string{{"width"}}, `width=1024`, nil, bodyfields.ErrNotJSON},
		{"truncated json", [][]string{{"width"}}, `{"width": 10`, nil, bodyfields.ErrNotJSON},
		{"array body", [][]string{{"width"}}, `[1, 2]`, nil, bodyfields.ErrNotJSON},
		{"empty body", [][]string{{"width"}}, ``, nil, bodyfields.ErrNotJSON},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := bodyfields.Compile(tt.paths, false).Extract([]byte(tt.body))
			if !errors.Is(err, tt.err) {
				t.Fatalf("err = %v, want %v", err, tt.err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got)\n%s", diff)
			}
		})
	}
}

func TestWholeBody(t *testing.T) {
	got, err := bodyfields.Compile(nil, true).Extract([]byte(`{"a": [1, 2.5], "b": {"c": true}}`))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"a": []any{int64(1), 2.5}, "b": map[string]any{"c": true}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got)\n%s", diff)
	}
}

// FuzzExtract checks extraction against a full decode with encoding/json:
// same field, same value, for any body and key.
func FuzzExtract(f *testing.F) {
	f.Add([]byte(`{"width": 1024, "height": 768}`), "width")
	f.Add([]byte(`{"a.b": {"c": [1, "x", null]}}`), "a.b")
	f.Add([]byte(`{"k": "\u00e9\"\\"}`), "k")
	f.Add([]byte(`not json`), "x")
	f.Add([]byte(`{"x": 1e400}`), "x")
	f.Fuzz(func(t *testing.T, body []byte, key string) {
		got, err := bodyfields.Compile([][]string{{key}}, false).Extract(body)
		var full map[string]any
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.UseNumber()
		jerr := dec.Decode(&full)
		if jerr == nil {
			if _, err := dec.Token(); !errors.Is(err, io.EOF) {
				jerr = errors.New("trailing data")
			}
		}
		if err != nil {
			if jerr == nil && full != nil {
				t.Fatalf("Extract refused a body encoding/json accepts: %v", err)
			}
			return
		}
		if jerr != nil || full == nil {
			return // gjson is laxer on some inputs (e.g. trailing whitespace forms); nothing to compare
		}
		want, ok := full[key]
		if _, present := got[key]; present != ok {
			// Duplicate keys: gjson takes the first, encoding/json the last.
			if !strings.Contains(string(body), fmt.Sprintf("%q", key)) {
				t.Fatalf("key %q present = %v, want %v", key, present, ok)
			}
			return
		}
		if ok && !equalJSON(got[key], want) && !hasDuplicateKey(body, key) {
			t.Fatalf("key %q = %#v, want %#v", key, got[key], want)
		}
	})
}

func hasDuplicateKey(body []byte, key string) bool {
	k, _ := json.Marshal(key)
	return bytes.Count(body, k) > 1
}

// equalJSON compares an extracted value with a json.Number-decoded one.
func equalJSON(got, want any) bool {
	switch w := want.(type) {
	case json.Number:
		switch g := got.(type) {
		case int64:
			return w.String() == fmt.Sprint(g) || strings.TrimLeft(w.String(), "-0") == strings.TrimLeft(fmt.Sprint(g), "-0")
		case float64:
			f, err := w.Float64()
			return err != nil || f == g
		}
		return false
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok || len(g) > len(w) {
			return false
		}
		for k, v := range g {
			if !equalJSON(v, w[k]) {
				return false
			}
		}
		return true
	case []any:
		g, ok := got.([]any)
		if !ok || len(g) != len(w) {
			return false
		}
		for i := range g {
			if !equalJSON(g[i], w[i]) {
				return false
			}
		}
		return true
	}
	return cmp.Equal(got, want)
}

// body returns a JSON request of about size bytes whose fields come last,
// after a base64-like image payload.
func body(size int) []byte {
	pad := size - 100
	var b bytes.Buffer
	b.WriteString(`{"image": "`)
	b.WriteString(strings.Repeat("QUJD", pad/4))
	b.WriteString(`", "prompt": "a cat", "width": 1024, "height": 768}`)
	return b.Bytes()
}

func benchmarkExtract(b *testing.B, size int) {
	f := bodyfields.Compile([][]string{{"width"}, {"height"}}, false)
	data := body(size)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		m, err := f.Extract(data)
		if err != nil || m["width"] != int64(1024) {
			b.Fatal(err, m)
		}
	}
}

func BenchmarkExtract4KB(b *testing.B) { benchmarkExtract(b, 4<<10) }
func BenchmarkExtract1MB(b *testing.B) { benchmarkExtract(b, 1<<20) }

// The full decode extraction avoids, for comparison.
func BenchmarkUnmarshal1MB(b *testing.B) {
	data := body(1 << 20)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		var m map[string]any
		if err := json.Unmarshal(data, &m); err != nil {
			b.Fatal(err)
		}
	}
}
