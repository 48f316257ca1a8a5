package supervise

import (
	"bytes"
	"io"
	"strings"
	"sync"
)

// teeWriter writes to the in-memory log and to the caller's writer; an error
// from the caller's writer must not stop the copy from the child's pipe (the
// child would block on a full pipe).
type teeWriter struct {
	log *logBuffer
	w   io.Writer
}

func (t teeWriter) Write(b []byte) (int, error) {
	_, _ = t.log.Write(b)
	_, _ = t.w.Write(b)
	return len(b), nil
}

// logBuffer keeps the last max bytes written to it, so a chatty child that
// runs for hours cannot grow the caller without bound.
type logBuffer struct {
	mu        sync.Mutex
	buf       []byte
	max       int
	truncated bool
}

func (l *logBuffer) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf = append(l.buf, b...)
	if len(l.buf) > l.max {
		drop := len(l.buf) - l.max
		// Start at a line if one begins soon, so the first line kept is whole.
		if i := bytes.IndexByte(l.buf[drop:], '\n'); i >= 0 && i < 1024 {
			drop += i + 1
		}
		l.buf = append(l.buf[:0:0], l.buf[drop:]...)
		l.truncated = true
	}
	return len(b), nil
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.truncated {
		return "[... earlier output dropped ...]\n" + string(l.buf)
	}
	return string(l.buf)
}

// tail returns the last n lines, each cut at 300 characters: it goes into
// error messages, where one huge line (a config dump) would bury the rest.
func (l *logBuffer) tail(n int) string {
	s := strings.TrimRight(l.String(), "\n")
	if s == "" {
		return "(no output)"
	}
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	for i, line := range lines {
		if len(line) > 300 {
			lines[i] = line[:300] + " …"
		}
	}
	return strings.Join(lines, "\n")
}
