package affinity

import (
	"slices"
	"strings"
)

// Bounds on what a runner may report.
const (
	// MaxHintLen is the longest hint accepted, in bytes.
	MaxHintLen = 256
	// DefaultMaxPerRunner is how many hints one runner keeps by default, and
	// the cap ParseHints applies.
	DefaultMaxPerRunner = 64
)

// hintChar is the safe set: ASCII letters, digits and . _ - : / @ + =.
// It covers model ids ("black-forest-labs/FLUX.1-schnell"), versions
// ("sdxl@v2", "lora:user=42") and base64url-ish keys, and leaves out what
// could confuse a header, a log line or a metric label: spaces, commas,
// quotes, control characters and anything outside ASCII.
var hintChar = func() (t [256]bool) {
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
	}
	for c := 'A'; c <= 'Z'; c++ {
		t[c] = true
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for _, c := range "._-:/@+=" {
		t[c] = true
	}
	return t
}()

// ValidHint reports whether s may be used as a hint: 1 to MaxHintLen bytes,
// each an ASCII letter, a digit or one of . _ - : / @ + =.
func ValidHint(s string) bool {
	if len(s) == 0 || len(s) > MaxHintLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !hintChar[s[i]] {
			return false
		}
	}
	return true
}

// ParseHints parses an X-Fal-Runner-Hints value: comma-separated hints,
// spaces and tabs around each trimmed. Empty and invalid items are dropped,
// duplicates are kept once, and at most DefaultMaxPerRunner hints are
// returned (the first ones). It returns nil when nothing is left.
//
// The returned strings share memory with header; clone them to keep them
// past the header (Index does).
func ParseHints(header string) []string {
	return appendHints(nil, header, DefaultMaxPerRunner)
}

// appendHints appends to dst the hints of header, at most max of them. The
// work is linear in len(header) plus max², whatever the header holds.
func appendHints(dst []string, header string, max int) []string {
	start := len(dst)
	for len(header) > 0 && len(dst)-start < max {
		item := header
		if i := strings.IndexByte(header, ','); i >= 0 {
			item, header = header[:i], header[i+1:]
		} else {
			header = ""
		}
		item = trimOWS(item)
		if !ValidHint(item) || slices.Contains(dst[start:], item) {
			continue
		}
		dst = append(dst, item)
	}
	return dst
}

// trimOWS trims HTTP optional whitespace (space and tab).
func trimOWS(s string) string {
	for len(s) > 0 && (s[0] == ' ' || s[0] == '\t') {
		s = s[1:]
	}
	for len(s) > 0 && (s[len(s)-1] == ' ' || s[len(s)-1] == '\t') {
		s = s[:len(s)-1]
	}
	return s
}
