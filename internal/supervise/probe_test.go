package supervise_test

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/internal/supervise"
)

func TestProbes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	if err := supervise.Listening(addr)(ctx); err != nil {
		t.Errorf("Listening(%s) with a listener: %v", addr, err)
	}
	lis.Close()
	// Without a listener a connection is refused. Once in a long while a
	// dial to a free local port connects to itself (TCP simultaneous
	// open, source port = destination port), so one refusal in three
	// attempts is what proves the probe fails.
	refused := false
	for range 3 {
		if err := supervise.Listening(addr)(ctx); err != nil {
			refused = true
			break
		}
	}
	if !refused {
		t.Errorf("Listening(%s) passed three times without a listener", addr)
	}

	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/busy" {
			http.Error(w, "INITIALIZING", http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	if err := supervise.HTTPOK(srv.URL + "/ok")(ctx); err != nil {
		t.Errorf("HTTPOK on a 200: %v", err)
	}
	err = supervise.HTTPOK(srv.URL + "/busy")(ctx)
	if err == nil || !strings.Contains(err.Error(), "503") || !strings.Contains(err.Error(), "INITIALIZING") {
		t.Errorf("HTTPOK on a 503 = %v", err)
	}
}
