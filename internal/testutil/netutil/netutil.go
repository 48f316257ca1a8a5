// Package netutil holds the small network helpers the tests, the stack and
// the benchmarks share.
//
// In the code map (README): a shared test helper.
package netutil

import (
	"net"
	"sync"
)

var (
	mu     sync.Mutex
	handed = map[int]bool{}
)

// FreePort returns a loopback TCP port nothing listens on right now. A
// port is handed out once per process: the kernel may offer a port again
// as soon as its probe listener closes, and two parts of one config must
// not end up on the same port.
func FreePort() (int, error) {
	mu.Lock()
	defer mu.Unlock()
	for {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if !handed[port] {
			handed[port] = true
			return port, nil
		}
	}
}
