package admin

import (
	"embed"
	"html/template"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/switchyard/switchyard/internal/decisions"
	"github.com/switchyard/switchyard/internal/policy"
)

// Status is what an operator looks at: the pools and their runners, the
// recent decisions, the config being served and the Envoys connected.
// GET /debug/status serves it as JSON, GET / as the status page, and
// `switchyard status` renders it in a terminal: one source for all three.
type Status struct {
	Time      time.Time            `json:"time"`
	Config    ConfigStatus         `json:"config"`
	Pools     []PoolStatus         `json:"pools"`
	Envoys    []EnvoyStatus        `json:"envoys"`
	Published map[string]string    `json:"published"`
	Splits    []policy.SplitStatus `json:"splits,omitempty"`
	// Decisions are the most recent records, newest first. The hit rates
	// are over the Considered records the server holds, at most Kept.
	Decisions  []decisions.Record `json:"decisions"`
	Considered int                `json:"considered"`
	Kept       int                `json:"kept"`
}

// ConfigStatus is the config being served and the last reload problem.
type ConfigStatus struct {
	File       string    `json:"file"`
	Generation int       `json:"generation"`
	LoadedAt   time.Time `json:"loaded_at"`
	// LastError is the last rejected reload's reason ("" when none was
	// rejected since the start); the config kept serving.
	LastError   string     `json:"last_error,omitempty"`
	LastErrorAt *time.Time `json:"last_error_at,omitempty"`
}

// PoolStatus is one pool and its runners.
type PoolStatus struct {
	Name           string         `json:"name"`
	MaxConcurrency int            `json:"max_concurrency"`
	Balancer       string         `json:"load_balancer"`
	Runners        []RunnerStatus `json:"runners"`
}

// RunnerStatus is one runner as the routing state sees it.
type RunnerStatus struct {
	Address  string `json:"address"`
	State    string `json:"state"`
	Source   string `json:"source"`
	InFlight int64  `json:"in_flight"`
	// Queued is the requests in flight beyond the pool's max_concurrency:
	// the runner holds them waiting for a slot. QueuedMs is how long a
	// request sent now would wait for one, as soonest estimates the work
	// it knows is there (0 when no route uses soonest).
	Queued   int64    `json:"queued"`
	QueuedMs float64  `json:"queued_ms"`
	Hints    []string `json:"hints"`
	// Hinted is how many kept decisions chose it for a hinted request,
	// and HitRate the share of those that found the model there.
	Hinted  int      `json:"hinted_decisions"`
	HitRate *float64 `json:"hit_rate,omitempty"`
}

// EnvoyStatus is a connected Envoy and the config versions it applied.
type EnvoyStatus struct {
	Node      string            `json:"node"`
	Connected time.Time         `json:"connected"`
	Acked     map[string]string `json:"acked"`
}

// ReloadStatus is what the server knows of its config's loads.
type ReloadStatus struct {
	Generation  int
	LoadedAt    time.Time
	LastError   string
	LastErrorAt time.Time
}

// recentShown is how many decisions the status shows.
const recentShown = 20

// status assembles the Status from the Options' sources.
func status(o Options) Status {
	cfg := o.Config()
	st := Status{Time: time.Now(), Config: ConfigStatus{File: cfg.File}, Published: map[string]string{}, Envoys: []EnvoyStatus{}}
	if o.Reloads != nil {
		r := o.Reloads()
		st.Config.Generation, st.Config.LoadedAt, st.Config.LastError = r.Generation, r.LoadedAt, r.LastError
		if r.LastError != "" {
			at := r.LastErrorAt
			st.Config.LastErrorAt = &at
		}
	}
	if o.Envoys != nil {
		st.Envoys = o.Envoys()
	}
	if o.Published != nil {
		st.Published = o.Published()
	}
	if o.Splits != nil {
		st.Splits = o.Splits.Splits(cfg)
	}
	all := o.Decisions.List(decisions.Filter{})
	st.Kept, st.Considered = o.Decisions.Len(), len(all)
	st.Decisions = all[:min(len(all), recentShown)]
	hinted, hits := map[string]int{}, map[string]int{}
	for _, r := range all {
		if r.Hint == "" || r.Chosen == nil {
			continue
		}
		hinted[r.Chosen.Runner]++
		if r.Outcome == "hit" {
			hits[r.Chosen.Runner]++
		}
	}
	limits := map[string]int{}
	for _, p := range cfg.Pools {
		limits[p.Name] = p.MaxConcurrency
	}
	byPool := map[string][]RunnerStatus{}
	for _, r := range o.Runners.List() {
		rs := RunnerStatus{Address: r.Address, State: string(r.State), Source: string(r.Source), InFlight: r.InFlight, Hints: []string{}, Hinted: hinted[r.Address]}
		if l, ok := limits[r.Pool]; ok && l > 0 {
			rs.Queued = max(0, r.InFlight-int64(l))
		}
		if o.Hints != nil {
			if h := o.Hints(r.Address); h != nil {
				rs.Hints = h
			}
		}
		if o.Queued != nil {
			rs.QueuedMs = float64(o.Queued(r.Pool, r.Address).Microseconds()) / 1000
		}
		if n := hinted[r.Address]; n > 0 {
			rate := float64(hits[r.Address]) / float64(n)
			rs.HitRate = &rate
		}
		byPool[r.Pool] = append(byPool[r.Pool], rs)
	}
	for _, p := range cfg.Pools {
		rs := byPool[p.Name]
		sort.Slice(rs, func(i, j int) bool { return rs[i].Address < rs[j].Address })
		if rs == nil {
			rs = []RunnerStatus{}
		}
		st.Pools = append(st.Pools, PoolStatus{Name: p.Name, MaxConcurrency: p.MaxConcurrency, Balancer: string(p.LoadBalancer.Policy), Runners: rs})
	}
	return st
}

//go:embed templates/status.html
var templates embed.FS

var statusPage = template.Must(template.New("status.html").Funcs(template.FuncMap{
	"join": strings.Join,
	"pct": func(f *float64) string {
		if f == nil {
			return "—"
		}
		return formatPct(*f)
	},
	"ms": func(m decisions.Millis) string { return formatMs(m.Std()) },
	"ago": func(now, t time.Time) string {
		if t.IsZero() {
			return "—"
		}
		return now.Sub(t).Round(time.Second).String() + " ago"
	},
	"kv": func(m map[string]string) string {
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var parts []string
		for _, k := range keys {
			parts = append(parts, k+" "+m[k])
		}
		return strings.Join(parts, ", ")
	},
}).ParseFS(templates, "templates/status.html"))

// handleStatus serves the status as JSON and as the status page.
func handleStatus(mux *http.ServeMux, g guard, o Options) {
	mux.HandleFunc("GET /debug/status", g.wrap(needRead, func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, status(o))
	}))
	mux.HandleFunc("GET /{$}", g.wrap(needRead, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		if err := statusPage.Execute(w, status(o)); err != nil {
			o.Log.Warn("status page", "error", err)
		}
	}))
}

func formatPct(f float64) string { return strconv.FormatFloat(100*f, 'f', 1, 64) + "%" }

func formatMs(d time.Duration) string {
	return strconv.FormatFloat(float64(d.Microseconds())/1000, 'f', 1, 64) + " ms"
}
