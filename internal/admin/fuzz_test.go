package admin_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// FuzzAdminRequest sends arbitrary requests to the admin API under
// server.admin_auth: no panic and no 5xx; a request without the write
// token never changes the registry; a 2xx to a change comes only with it.
func FuzzAdminRequest(f *testing.F) {
	f.Add("PUT", "/v1/pools/a/runners/127.0.0.1:9001", `{"ttl_seconds": 30}`, "Bearer "+writeToken)
	f.Add("PUT", "/v1/pools/a/runners/127.0.0.1:9001", `{"ttl_seconds": -1}`, "Bearer "+writeToken)
	f.Add("DELETE", "/v1/pools/a/runners/127.0.0.1:9001", ``, "Bearer "+readToken)
	f.Add("PUT", "/v1/pools/a/runners/[::1]:0", `{"ttl_seconds": 1e308}`, "bearer "+writeToken)
	f.Add("GET", "/debug/config", ``, "")
	f.Add("PUT", "/v1/pools/%zz/runners/x", `{`, "Bearer")
	f.Add("POST", "/v1/pools/a/runners/127.0.0.1:9001", `{"ttl_seconds": 30, "x": 1}`, "Bearer "+writeToken+" ")
	srv, runners, _ := authServer(f, true)
	h := srv.Config.Handler
	f.Fuzz(func(t *testing.T, method, path, body, authorization string) {
		if !strings.HasPrefix(path, "/") {
			path = "/" + path
		}
		req, err := http.NewRequest(method, "http://admin"+path, strings.NewReader(body))
		if err != nil {
			return // not a request a client could send
		}
		req.Header.Set("Authorization", authorization)
		before := len(runners.List())
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code >= 500 {
			t.Fatalf("%s %s: %d %s", method, path, w.Code, w.Body.String())
		}
		scheme, tok, _ := strings.Cut(authorization, " ")
		writer := strings.EqualFold(scheme, "bearer") && strings.TrimSpace(tok) == writeToken
		if !writer && len(runners.List()) != before {
			t.Fatalf("%s %s without the write token changed the registry", method, path)
		}
		if !writer && (method == http.MethodPut || method == http.MethodDelete) && w.Code < 300 && strings.HasPrefix(req.URL.Path, "/v1/pools/") {
			t.Fatalf("%s %s answered %d without the write token", method, path, w.Code)
		}
	})
}
