package admin

import (
	"errors"
	"net/http"

	"github.com/switchyard/switchyard/internal/config"
	"github.com/switchyard/switchyard/internal/policy"
)

// Splits is what the API needs of the routing policy's splits: how each
// stands, and an operator's enabling or disabling of a variant.
type Splits interface {
	Splits(cfg *config.Config) []policy.SplitStatus
	SetVariant(cfg *config.Config, route, pool string, enabled bool) error
}

// handleSplits serves GET /debug/splits and the calls that put a variant
// back in its route's splits or take it out (write access).
func handleSplits(mux *http.ServeMux, g guard, o Options) {
	if o.Splits == nil {
		return
	}
	mux.HandleFunc("GET /debug/splits", g.wrap(needRead, func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"splits": o.Splits.Splits(o.Config())})
	}))
	set := func(enabled bool) http.HandlerFunc {
		return g.wrap(needWrite, func(w http.ResponseWriter, r *http.Request) {
			route, pool := r.PathValue("route"), r.PathValue("pool")
			err := o.Splits.SetVariant(o.Config(), route, pool, enabled)
			switch {
			case errors.Is(err, policy.ErrNoSuchVariant):
				writeError(w, http.StatusNotFound, err)
				return
			case errors.Is(err, policy.ErrLastVariant):
				writeError(w, http.StatusConflict, err)
				return
			case err != nil:
				writeError(w, http.StatusInternalServerError, err)
				return
			}
			state := map[bool]string{true: "enabled", false: "disabled"}[enabled]
			o.Log.Info("split variant "+state+" by an operator", "route", route, "pool", pool)
			for _, s := range o.Splits.Splits(o.Config()) {
				if s.Route == route {
					writeJSON(w, http.StatusOK, s)
					return
				}
			}
			writeJSON(w, http.StatusOK, map[string]string{"status": state})
		})
	}
	mux.HandleFunc("POST /v1/routes/{route}/variants/{pool}/enable", set(true))
	mux.HandleFunc("POST /v1/routes/{route}/variants/{pool}/disable", set(false))
}
