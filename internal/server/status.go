package server

import (
	"errors"
	"strings"
	"sync"
	"time"

	"github.com/switchyard/switchyard/internal/admin"
	"github.com/switchyard/switchyard/internal/config"
)

// loads remembers the config's loads for the status page: how many have
// served, since when, and the last file rejected and why.
type loads struct {
	mu sync.Mutex
	st admin.ReloadStatus
}

func (l *loads) loaded() {
	l.mu.Lock()
	l.st.Generation++
	l.st.LoadedAt = time.Now()
	l.mu.Unlock()
}

func (l *loads) rejected(err error) {
	msg := err.Error()
	var cerr *config.Error
	if errors.As(err, &cerr) {
		var ps []string
		for _, p := range cerr.Problems {
			ps = append(ps, p.String())
		}
		msg = strings.Join(ps, "; ")
	}
	l.mu.Lock()
	l.st.LastError, l.st.LastErrorAt = msg, time.Now()
	l.mu.Unlock()
}

func (l *loads) status() admin.ReloadStatus {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.st
}

// envoys is the connected Envoys as the status shows them.
func (s *Server) envoys() []admin.EnvoyStatus {
	out := []admin.EnvoyStatus{}
	if s.acks == nil {
		return out
	}
	for _, e := range s.acks.Envoys() {
		out = append(out, admin.EnvoyStatus{Node: e.Node, Connected: e.Connected, Acked: e.Acked})
	}
	return out
}

// published is the versions published, by resource type named as the
// Envoys' acknowledgements name it ("Cluster", not its type URL), so the
// two read side by side.
func (s *Server) published() map[string]string {
	out := map[string]string{}
	for typ, v := range s.pub.Versions() {
		out[typ[strings.LastIndexByte(typ, '.')+1:]] = v
	}
	return out
}

// queued is the work queued on a runner, as soonest estimates it.
func (s *Server) queued(pool, addr string) time.Duration {
	limit := 1
	if p, ok := s.current.Load().Pool(pool); ok {
		limit = p.MaxConcurrency
	}
	return s.engine.Queued(addr, limit)
}
