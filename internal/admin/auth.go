package admin

import (
	"log/slog"
	"net/http"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchyard/switchyard/internal/config"
)

// Metrics count what the admin API refused.
type Metrics struct {
	denied *prometheus.CounterVec
}

// NewMetrics registers the admin API's metrics on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{denied: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "switchyard_admin_denied_total",
		Help: "Admin API requests refused by server.admin_auth, by reason (missing, invalid, read_only).",
	}, []string{"reason"})}
	reg.MustRegister(m.denied)
	for _, r := range []string{denyMissing, denyInvalid, denyReadOnly} {
		m.denied.WithLabelValues(r)
	}
	return m
}

const (
	denyMissing  = "missing"   // no bearer token
	denyInvalid  = "invalid"   // a token that is none of the config's
	denyReadOnly = "read_only" // a read token on a call that changes routing
)

// guard wraps an endpoint with the access it needs under the served
// config's server.admin_auth: write (it changes routing), read (a debug or
// list view) or none (health, readiness, metrics). Without admin_auth
// everything is open, as it is on loopback by default.
type guard struct {
	config  func() *config.Config
	metrics *Metrics
	log     *slog.Logger
}

type need int

const (
	needRead need = iota
	needWrite
)

func (g guard) wrap(n need, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		auth := g.config().Server.AdminAuth
		if auth == nil || (n == needRead && !auth.ProtectsReads()) {
			h(w, r)
			return
		}
		if auth.ClientCertificates && r.TLS != nil && len(r.TLS.VerifiedChains) > 0 {
			// A client certificate of server.admin_tls.client_ca_file,
			// verified in the handshake: as good as a write token.
			h(w, r)
			return
		}
		token, ok := bearer(r)
		if !ok {
			g.deny(w, r, http.StatusUnauthorized, denyMissing, "a bearer token (Authorization: Bearer <token>) or a client certificate is required (see server.admin_auth)")
			return
		}
		switch access := auth.Grants(token); {
		case access == config.AccessNone:
			g.deny(w, r, http.StatusUnauthorized, denyInvalid, "the bearer token is not one of server.admin_auth's")
		case n == needWrite && access != config.AccessWrite:
			g.deny(w, r, http.StatusForbidden, denyReadOnly, "a read token cannot change routing (it needs a token of server.admin_auth.token_files)")
		default:
			h(w, r)
		}
	}
}

func (g guard) deny(w http.ResponseWriter, r *http.Request, status int, reason, msg string) {
	if g.metrics != nil {
		g.metrics.denied.WithLabelValues(reason).Inc()
	}
	g.log.Warn("admin request refused", "reason", reason, "method", r.Method, "path", r.URL.Path, "remote", r.RemoteAddr)
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="switchyard"`)
	}
	writeJSON(w, status, map[string]string{"error": "unauthorized", "reason": reason, "message": msg})
}

// bearer reads the request's bearer token.
func bearer(r *http.Request) ([]byte, bool) {
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return nil, false
	}
	token = strings.TrimSpace(token)
	return []byte(token), token != ""
}
