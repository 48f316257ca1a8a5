package supervise_test

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"syscall"
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
	// Without a listener a connection is refused. The port is held by a
	// socket that is bound but not listening: no other test can listen on
	// it meanwhile (a closed listener's port can be taken by any process),
	// and the kernel cannot pick it as a dial's own port (a TCP
	// self-connect).
	closed := boundNotListening(t)
	if err := supervise.Listening(closed)(ctx); err == nil {
		t.Errorf("Listening(%s) passed without a listener", closed)
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

// boundNotListening holds a loopback TCP port with a socket that never
// listens, and returns its address.
func boundNotListening(t *testing.T) string {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(sa.(*syscall.SockaddrInet4).Port))
}
