package envoy_test

import (
	"io"
	"sync"
)

// syncWriter makes a writer safe to read from the test while Envoy's output
// is still being copied into it.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(b []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(b)
}
