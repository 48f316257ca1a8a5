package supervise

import (
	"strings"
	"testing"
)

func TestLogBufferKeepsTheEnd(t *testing.T) {
	l := &logBuffer{max: 64}
	if got := l.tail(3); got != "(no output)" {
		t.Errorf("tail of nothing = %q", got)
	}
	for i := range 20 {
		_, _ = l.Write([]byte(strings.Repeat(string(rune('a'+i)), 9) + "\n"))
	}
	s := l.String()
	const marker = "[... earlier output dropped ...]\n"
	body, ok := strings.CutPrefix(s, marker)
	if !ok {
		t.Fatalf("String() does not say output was dropped: %q", s)
	}
	if len(body) > 64 {
		t.Errorf("kept %d bytes, want at most 64", len(body))
	}
	// Whole lines only, ending with the last one written.
	lines := strings.Split(strings.TrimSuffix(body, "\n"), "\n")
	for _, line := range lines {
		if len(line) != 9 {
			t.Errorf("kept a partial line %q", line)
		}
	}
	if last := lines[len(lines)-1]; last != strings.Repeat("t", 9) {
		t.Errorf("last line kept = %q", last)
	}
	if got, want := l.tail(2), strings.Repeat("s", 9)+"\n"+strings.Repeat("t", 9); got != want {
		t.Errorf("tail(2) = %q, want %q", got, want)
	}
}

func TestLogTailCutsLongLines(t *testing.T) {
	l := &logBuffer{max: 1 << 20}
	_, _ = l.Write([]byte("short\n" + strings.Repeat("x", 1000) + "\n\n"))
	got := l.tail(5)
	want := "short\n" + strings.Repeat("x", 300) + " …"
	if got != want {
		t.Errorf("tail = %q, want %q", got, want)
	}
}
