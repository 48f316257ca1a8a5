package integration

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/dev/simrunner"
)

// rawConn is one raw TCP connection to the edge.
type rawConn struct {
	t    *testing.T
	conn *net.TCPConn
	br   *bufio.Reader
}

func dialEdge(t *testing.T, s *Stack) *rawConn {
	t.Helper()
	u, err := url.Parse(s.EdgeURL)
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", u.Host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawConn{t: t, conn: c.(*net.TCPConn), br: bufio.NewReader(c)}
}

func (c *rawConn) write(s string) {
	c.t.Helper()
	if _, err := c.conn.Write([]byte(s)); err != nil {
		c.t.Fatal(err)
	}
}

// next reads one response (its status) within a few seconds.
func (c *rawConn) next() (int, error) {
	if err := c.conn.SetReadDeadline(time.Now().Add(4 * time.Second)); err != nil {
		return 0, err
	}
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		return 0, err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, err
}

// closed asserts that Envoy closed the connection: the next read is EOF.
func (c *rawConn) closed() {
	c.t.Helper()
	// A reset is a close too: Envoy closes with part of an oversized
	// request still unread, and the kernel then answers with RST.
	if _, err := c.next(); !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) && !errors.Is(err, syscall.ECONNRESET) {
		c.t.Errorf("after the answer: %v, want the connection closed", err)
	}
}

const okRequest = "GET / HTTP/1.1\r\nHost: edge\r\n\r\n"

// Malformed HTTP/1.1 requests get Envoy's own 4xx and a closed connection;
// other connections are unaffected.
func TestMalformedRequests(t *testing.T) {
	rs := runnersNamed(t, simrunner.Options{}, "r1")
	s := NewStack(t, StackConfig{Body: poolsYAML(poolSpec{name: "p", runners: rs}) + `
routes:
  - name: all
    match: {prefix: /}
    rules: [{pool: p}]
`})
	var many strings.Builder
	for i := range 101 { // Envoy's default limit is 100 headers
		many.WriteString("x-h" + strings.Repeat("i", i+1) + ": v\r\n")
	}
	tests := []struct {
		name, req string
		want      int
	}{
		{"control character 0x01 in a header", "GET / HTTP/1.1\r\nHost: edge\r\nx-fal-runner-hint: a\x01b\r\n\r\n", 400},
		{"DEL 0x7f in a header", "GET / HTTP/1.1\r\nHost: edge\r\nx-fal-runner-hint: a\x7fb\r\n\r\n", 400},
		{"a 100 KB header", "GET / HTTP/1.1\r\nHost: edge\r\nx-big: " + strings.Repeat("a", 100<<10) + "\r\n\r\n", 431},
		{"101 headers", "GET / HTTP/1.1\r\nHost: edge\r\n" + many.String() + "\r\n", 431},
		{"request line without method and version", "GARBAGE\r\nHost: edge\r\n\r\n", 400},
		{"space in the path", "GET /a b HTTP/1.1\r\nHost: edge\r\n\r\n", 400},
		{"unknown HTTP version", "GET / HTTP/9.9\r\nHost: edge\r\n\r\n", 426},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			bad := dialEdge(t, s)
			bad.write(tc.req)
			if got, err := bad.next(); err != nil || got != tc.want {
				t.Fatalf("status %d, err %v; want %d", got, err, tc.want)
			}
			bad.closed()
			good := dialEdge(t, s)
			good.write(okRequest)
			if got, err := good.next(); err != nil || got != http.StatusOK {
				t.Errorf("a valid request on another connection: %d, %v", got, err)
			}
		})
	}

	// What Envoy cannot answer with a 4xx: the body cases.
	t.Run("truncated body, then half-close", func(t *testing.T) {
		c := dialEdge(t, s)
		c.write("POST / HTTP/1.1\r\nHost: edge\r\nContent-Length: 100\r\n\r\n0123456789")
		if err := c.conn.CloseWrite(); err != nil {
			t.Fatal(err)
		}
		// Envoy does not half-close downstream HTTP/1: it resets the
		// stream and closes without an answer.
		c.closed()
	})
	t.Run("truncated body, client waits", func(t *testing.T) {
		c := dialEdge(t, s)
		c.write("POST / HTTP/1.1\r\nHost: edge\r\nContent-Length: 100\r\n\r\n0123456789")
		// The answer is a 408 after the request timeout (2 min), too
		// slow for this test: within a few seconds there is none.
		var ne net.Error
		if _, err := c.next(); !errors.As(err, &ne) || !ne.Timeout() {
			t.Errorf("%v, want no answer yet", err)
		}
	})
	t.Run("body larger than declared", func(t *testing.T) {
		c := dialEdge(t, s)
		// The first 5 bytes are the body; the rest is read as the next
		// request, which is malformed: the declared request is answered,
		// then the excess gets a 400 and the connection is closed.
		c.write("POST / HTTP/1.1\r\nHost: edge\r\nContent-Length: 5\r\n\r\n0123456789abcdefghij\r\n\r\n")
		if got, err := c.next(); err != nil || got != http.StatusOK {
			t.Fatalf("the declared request: %d, %v", got, err)
		}
		if got, err := c.next(); err != nil || got != http.StatusBadRequest {
			t.Fatalf("the excess bytes: %d, %v; want 400", got, err)
		}
		c.closed()
	})
	t.Run("keep-alive unaffected by a valid request", func(t *testing.T) {
		c := dialEdge(t, s)
		for i := range 2 {
			c.write(okRequest)
			if got, err := c.next(); err != nil || got != http.StatusOK {
				t.Fatalf("request %d on one connection: %d, %v", i, got, err)
			}
		}
	})
	if got := s.EnvoyStats()["http.public.downstream_rq_4xx"]; got < uint64(len(tests)) {
		t.Errorf("downstream_rq_4xx = %d, want at least %d", got, len(tests))
	}
}
