// Package bodyfields pulls named fields out of a JSON request body without
// decoding the rest of it: a multi-megabyte body of base64 image data costs
// one scan, not an allocation per byte. Its output is what CEL expressions
// see as `body`.
//
// In the code map (README), the request path:
//
//	Envoy ──(ext_proc, body)──▶ extproc ─▶ bodyfields ─▶ policy (CEL's body)
package bodyfields

import (
	"errors"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"
	"unsafe"

	"github.com/buger/jsonparser"
	"github.com/tidwall/gjson"
)

// ErrNotJSON means the body is not a JSON object.
var ErrNotJSON = errors.New("request body is not a JSON object")

// ErrNoBody means a route that reads the body got a request without one.
var ErrNoBody = errors.New("request has no body")

// OverLimit says a request's content-length header announces more than
// limit bytes (false when it is absent or unreadable: the body's own size
// decides then).
func OverLimit(contentLength string, limit int) bool {
	n, err := strconv.ParseInt(strings.TrimSpace(contentLength), 10, 64)
	return err == nil && n > int64(limit)
}

// TooLargeMessage is the message of the 413 (body_too_large) for a body
// over limit bytes, the same from Envoy, switchyard and its module.
func TooLargeMessage(limit int) string {
	return "request body over " + strconv.Itoa(limit) + " bytes (server.max_body_bytes)"
}

// Fields is a compiled set of field paths to extract.
type Fields struct {
	paths [][]string
	// byTop groups the paths by their top-level key, so one pass over the
	// body's top-level object finds them all.
	byTop map[string][][]string
	whole bool
	// byIndexKey: a key looks like an array index to jsonparser.
	byIndexKey bool
}

// Compile prepares the extraction of paths (each a chain of object keys).
// With whole set, Extract decodes the entire body instead.
func Compile(paths [][]string, whole bool) *Fields {
	f := &Fields{paths: paths, whole: whole, byTop: map[string][][]string{}}
	for _, p := range paths {
		if len(p) > 0 {
			f.byTop[p[0]] = append(f.byTop[p[0]], p[1:])
		}
		for _, k := range p {
			f.byIndexKey = f.byIndexKey || strings.HasPrefix(k, "[")
		}
	}
	return f
}

// escape quotes the characters gjson's path syntax gives meaning to.
func escape(key string) string {
	var b strings.Builder
	for _, r := range key {
		switch r {
		case '.', '*', '?', '|', '#', '@', '\\', '!', '=', '<', '>', '%', ':':
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// Extract returns the fields of body as nested maps: for paths [a b] and
// [c] it returns {"a": {"b": v1}, "c": v2}. Missing fields are absent.
// Integers stay int64 (so width*height is integer arithmetic); other
// numbers are float64. A body that is not a JSON object is ErrNotJSON.
func (f *Fields) Extract(body []byte) (map[string]any, error) {
	if len(body) == 0 || !gjson.ValidBytes(body) {
		return nil, ErrNotJSON
	}
	// The body is only read while this call runs, and every string kept is
	// copied out (convert), so it need not be copied into a string first.
	root := gjson.Parse(unsafe.String(&body[0], len(body)))
	if !root.IsObject() {
		return nil, ErrNotJSON
	}
	if f.whole {
		v, _ := convert(root).(map[string]any)
		return v, nil
	}
	if f.byIndexKey {
		return f.extractForEach(root), nil
	}
	// Each path's value is found with jsonparser, which skips the values
	// in between (a base64 image, say) at memory-scan speed, and converted
	// with gjson as the whole-body path converts. The first occurrence of
	// a key counts, as in extractForEach.
	out := make(map[string]any, len(f.paths))
	for _, p := range f.paths {
		if len(p) == 0 {
			continue
		}
		v, vt, end, err := jsonparser.Get(body, p...)
		if err != nil || vt == jsonparser.NotExist {
			continue
		}
		raw := v
		if vt == jsonparser.String {
			raw = body[end-len(v)-2 : end] // with its quotes, for gjson
		}
		set(out, p, convert(gjson.ParseBytes(raw)))
	}
	return out, nil
}

// extractForEach reads the fields in one pass over the top-level object
// with gjson alone: for paths with a key jsonparser would take for an array
// index ("[0]").
func (f *Fields) extractForEach(root gjson.Result) map[string]any {
	out := make(map[string]any, len(f.byTop))
	missing := len(f.byTop)
	root.ForEach(func(k, v gjson.Result) bool {
		key := k.String()
		rests, ok := f.byTop[key]
		if !ok {
			return true
		}
		if _, done := out[key]; done {
			return true // a repeated key: the first one counts
		}
		for _, rest := range rests {
			if len(rest) == 0 {
				out[key] = convert(v)
				continue
			}
			if nested, ok := lookup(v, rest); ok {
				set(out, append([]string{key}, rest...), convert(nested))
			}
		}
		missing--
		return missing > 0
	})
	return out
}

// lookup follows object keys only: a body field path never indexes an array.
func lookup(v gjson.Result, path []string) (gjson.Result, bool) {
	for _, k := range path {
		if !v.IsObject() {
			return gjson.Result{}, false
		}
		v = v.Get(escape(k))
		if !v.Exists() {
			return gjson.Result{}, false
		}
	}
	return v, true
}

// Assemble nests the values of paths as Extract nests them, where
// value(i) gives path i's value (false when it has none, as a field Envoy
// could not extract). It fails when a value is missing or when one path's
// value sits where another path needs an object.
func Assemble(paths [][]string, value func(i int) (any, bool)) (map[string]any, bool) {
	body := make(map[string]any, len(paths))
	for i, path := range paths {
		v, ok := value(i)
		if !ok || len(path) == 0 {
			return nil, false
		}
		m := body
		for _, k := range path[:len(path)-1] {
			next, ok := m[k].(map[string]any)
			if !ok {
				if _, taken := m[k]; taken {
					return nil, false
				}
				next = map[string]any{}
				m[k] = next
			}
			m = next
		}
		m[path[len(path)-1]] = v
	}
	return body, true
}

// maxExactInt is the largest integer a double holds exactly.
const maxExactInt = 1 << 53

// Number is a JSON number carried as a double (as Envoy's metadata carries
// every number) as Extract gives it: a whole number an int64, any other a
// float64. A number written with a zero fraction (1024.0) is whole.
func Number(n float64) any {
	if n == math.Trunc(n) && math.Abs(n) <= maxExactInt {
		return int64(n)
	}
	return n
}

func set(m map[string]any, path []string, v any) {
	for _, k := range path[:len(path)-1] {
		next, ok := m[k].(map[string]any)
		if !ok {
			next = map[string]any{}
			m[k] = next
		}
		m = next
	}
	m[path[len(path)-1]] = v
}

// validUTF8 copies s, each byte that is not UTF-8 replaced by U+FFFD, as
// encoding/json (and so every other JSON reader of the request) sees it.
func validUTF8(s string) string {
	if utf8.ValidString(s) {
		return strings.Clone(s)
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 {
			b.WriteRune(utf8.RuneError)
		} else {
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	return b.String()
}

func convert(r gjson.Result) any {
	switch r.Type {
	case gjson.String:
		return validUTF8(r.String())
	case gjson.True:
		return true
	case gjson.False:
		return false
	case gjson.Null:
		return nil
	case gjson.Number:
		if n, err := strconv.ParseInt(r.Raw, 10, 64); err == nil {
			return n
		}
		return r.Float()
	}
	if r.IsArray() {
		var out []any
		r.ForEach(func(_, v gjson.Result) bool {
			out = append(out, convert(v))
			return true
		})
		if out == nil {
			out = []any{}
		}
		return out
	}
	out := map[string]any{}
	r.ForEach(func(k, v gjson.Result) bool {
		out[validUTF8(k.String())] = convert(v)
		return true
	})
	return out
}
