package supervise

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

// probeAttempt bounds one attempt, so that a child that accepts connections
// but never answers still lets the wait notice its deadline or the exit.
const probeAttempt = time.Second

// probeClient opens a fresh connection per attempt: a kept-alive connection
// would outlive the start-up for nothing, and proxies have no business with
// a child on this machine.
var probeClient = &http.Client{Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}

// Listening is a [Probe] that passes once addr accepts TCP connections.
func Listening(addr string) Probe {
	return func(ctx context.Context) error {
		d := net.Dialer{Timeout: probeAttempt}
		c, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return err
		}
		return c.Close()
	}
}

// HTTPOK is a [Probe] that passes once a GET of url answers 200.
func HTTPOK(url string) Probe {
	return func(ctx context.Context) error {
		ctx, cancel := context.WithTimeout(ctx, probeAttempt)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := probeClient.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
			return fmt.Errorf("GET %s answered %d %s", url, resp.StatusCode, bytes.TrimSpace(body))
		}
		return nil
	}
}
