package overhead

import (
	"bytes"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// goRouter is fal's "router app" pattern written in Go, the way a Go team
// would: net/http, the JSON body decoded into a struct with encoding/json,
// and an httputil.ReverseProxy per backend over one keep-alive transport.
// It picks the backend by the same rules as the switchyard routes.
type goRouter struct {
	small, large *httputil.ReverseProxy
}

func newGoRouter(small, large *url.URL) *goRouter {
	tr := &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: 2 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        1000,
		MaxIdleConnsPerHost: 1000,
		IdleConnTimeout:     90 * time.Second,
	}
	proxy := func(target *url.URL) *httputil.ReverseProxy {
		return &httputil.ReverseProxy{
			Rewrite: func(pr *httputil.ProxyRequest) {
				pr.SetURL(target)
				pr.SetXForwarded()
			},
			Transport: tr,
		}
	}
	return &goRouter{small: proxy(small), large: proxy(large)}
}

func (g *goRouter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.URL.Path, "/hdr/") {
		// Headers only: the body streams through unread.
		px, err := strconv.ParseInt(r.Header.Get("X-Pixels"), 10, 64)
		g.pick(err == nil && px <= smallLimit).ServeHTTP(w, r)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 64<<20))
	if err != nil {
		http.Error(w, "reading body: "+err.Error(), http.StatusBadRequest)
		return
	}
	var in struct {
		Width  *int64 `json:"width"`
		Height *int64 `json:"height"`
	}
	small := json.Unmarshal(body, &in) == nil && in.Width != nil && in.Height != nil && *in.Width**in.Height <= smallLimit
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.ContentLength = int64(len(body))
	g.pick(small).ServeHTTP(w, r)
}

func (g *goRouter) pick(small bool) *httputil.ReverseProxy {
	if small {
		return g.small
	}
	return g.large
}
