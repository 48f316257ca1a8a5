package decisions

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf16"
)

// Record is one request's decision and, once Envoy reported it, its end.
// The fields set at decision time do not change afterwards; End is set
// once, under the Ring's lock (read records through Ring.List, which
// copies them).
// How a request's body fields were read (Record.Body).
const (
	BodyNone   = "none"   // the rules read no body
	BodyFields = "fields" // extracted by Envoy
	BodyWhole  = "whole"  // the whole body read by switchyard (or its module)
)

type Record struct {
	ID    uint64    `json:"id"`
	Time  time.Time `json:"time"`
	Route string    `json:"route"`
	// Rule is the index of the rule that matched in the route's rules;
	// When is its condition as written ("" for the default rule).
	Rule     int      `json:"rule"`
	When     string   `json:"when,omitempty"`
	Pool     string   `json:"pool"`
	Variant  string   `json:"variant,omitempty"`
	Fallback []string `json:"fallback,omitempty"`
	// Hint is the request's hint ("" for none) and HintSource where it
	// came from: the request header's name, or "hint_from".
	Hint       string `json:"hint,omitempty"`
	HintSource string `json:"hint_source,omitempty"`
	// Outcome is the hint outcome (hit, miss, busy, none); Queued says the
	// request waits for a busy warm runner.
	Outcome string `json:"outcome"`
	Queued  bool   `json:"queued,omitempty"`
	// Policy is the hint policy that ranked the runners.
	Policy string `json:"policy"`
	// Cost is the request's size from the route's cost expression (0 for
	// none): the soonest policy priced it at its pool's time per unit.
	Cost float64 `json:"cost,omitempty"`
	// Body says how the route's body fields were read: BodyNone,
	// BodyFields or BodyWhole.
	Body string `json:"body"`
	// Chosen and RunnerUp are the first two runners of the ranking; nil
	// when Envoy's own balancer picks or the pool had no runner.
	Chosen   *Candidate `json:"chosen,omitempty"`
	RunnerUp *Candidate `json:"runner_up,omitempty"`
	// HintAge is how long ago the chosen runner last reported its hints
	// (or was marked loading): the age of what the pick knew of it. Zero
	// when nothing was known of it.
	HintAge Millis `json:"hint_age_ms,omitempty"`
	// Decide is the time switchyard spent on the request before answering
	// Envoy: reading what it sent, evaluating the rules, picking runners.
	Decide Millis `json:"decide_ms"`
	// End is what Envoy's access log reported when the request ended; nil
	// until then.
	End *End `json:"end,omitempty"`
}

// Candidate is one ranked runner and why it ranked there.
type Candidate struct {
	Runner   string `json:"runner"`
	InFlight int64  `json:"in_flight"`
	// Warm says the runner holds the hint (reported, or a request for it
	// was sent there).
	Warm bool `json:"warm"`
	Busy bool `json:"busy"`
	// Wait is the work ahead of the request on the runner and Predicted
	// the expected time to its response (soonest only; zero otherwise).
	Wait      Millis `json:"wait_ms,omitempty"`
	Predicted Millis `json:"predicted_ms,omitempty"`
	// Why says it in words: "warm, free", "warm, 2 in flight, wait 1.2s",
	// "cold: model load", "busy".
	Why string `json:"why"`
}

// End is how the request ended, as Envoy reported it.
type End struct {
	// Status is the HTTP status sent to the client; 0 when none was.
	Status int `json:"status"`
	// Runner is the runner that answered ("" when none did).
	Runner string `json:"runner,omitempty"`
	// Elapsed is the time from the request's start to the response
	// headers.
	Elapsed Millis `json:"elapsed_ms"`
	// PredictionError is Elapsed minus the chosen runner's prediction,
	// when soonest predicted and that runner answered.
	PredictionError *Millis `json:"prediction_error_ms,omitempty"`
	// Unreported says no report came within the route's timeout and
	// grace: the request was taken as ended.
	Unreported bool `json:"unreported,omitempty"`
}

// Millis is a duration shown in JSON as milliseconds (three decimals).
type Millis time.Duration

func (m Millis) MarshalJSON() ([]byte, error) {
	return strconv.AppendFloat(nil, float64(time.Duration(m).Microseconds())/1000, 'f', -1, 64), nil
}

func (m *Millis) UnmarshalJSON(b []byte) error {
	var f float64
	if err := json.Unmarshal(b, &f); err != nil {
		return err
	}
	*m = Millis(f * float64(time.Millisecond))
	return nil
}

// Std is m as a time.Duration.
func (m Millis) Std() time.Duration { return time.Duration(m) }

// Filter selects records; empty fields match any.
type Filter struct {
	Route, Pool, Runner, Outcome string
	// Limit caps how many are returned, newest first; 0 means all kept.
	Limit int
}

func (f Filter) match(r *Record) bool {
	if f.Route != "" && r.Route != f.Route {
		return false
	}
	if f.Pool != "" && r.Pool != f.Pool {
		return false
	}
	if f.Outcome != "" && r.Outcome != f.Outcome {
		return false
	}
	if f.Runner != "" {
		served := r.End != nil && r.End.Runner == f.Runner
		chosen := r.Chosen != nil && r.Chosen.Runner == f.Runner
		if !served && !chosen {
			return false
		}
	}
	return true
}

// Ring keeps the last N records. It is safe for concurrent use; a nil or
// zero-sized Ring keeps nothing.
type Ring struct {
	mu   sync.Mutex
	buf  []*Record
	next uint64 // ID of the next record added
}

// NewRing keeps the last n records (none when n <= 0).
func NewRing(n int) *Ring {
	if n <= 0 {
		return &Ring{}
	}
	return &Ring{buf: make([]*Record, n), next: 1}
}

// Add keeps r, giving it the next ID, and drops the oldest record when
// the ring is full.
func (g *Ring) Add(r *Record) {
	if g == nil || len(g.buf) == 0 {
		return
	}
	g.mu.Lock()
	r.ID = g.next
	g.buf[g.next%uint64(len(g.buf))] = r
	g.next++
	g.mu.Unlock()
}

// Finish sets r's end. A record no longer kept is still finished (the
// caller may read it), under the same lock readers copy under.
func (g *Ring) Finish(r *Record, e End) {
	if g == nil {
		r.End = &e
		return
	}
	g.mu.Lock()
	r.End = &e
	g.mu.Unlock()
}

// Len is how many records the ring can keep.
func (g *Ring) Len() int {
	if g == nil {
		return 0
	}
	return len(g.buf)
}

// List returns copies of the kept records f selects, newest first.
func (g *Ring) List(f Filter) []Record {
	out := []Record{}
	if g == nil || len(g.buf) == 0 {
		return out
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	n := uint64(len(g.buf))
	for id := g.next - 1; id >= 1 && id+n >= g.next; id-- {
		r := g.buf[id%n]
		if r == nil || !f.match(r) {
			continue
		}
		c := *r
		if r.End != nil {
			e := *r.End
			c.End = &e
		}
		out = append(out, c)
		if f.Limit > 0 && len(out) == f.Limit {
			break
		}
	}
	return out
}

// Header renders r as one line of JSON fit for an HTTP header value:
// compact, and ASCII only (anything else escaped as \uXXXX).
func Header(r *Record) string {
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(r); err != nil {
		return "{}" // a Record always encodes
	}
	s := strings.TrimSuffix(b.String(), "\n")
	ascii := true
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			ascii = false
			break
		}
	}
	if ascii {
		return s
	}
	var out strings.Builder
	for _, c := range s {
		if c < 0x80 {
			out.WriteRune(c)
			continue
		}
		for _, u := range utf16.Encode([]rune{c}) {
			fmt.Fprintf(&out, `\u%04x`, u)
		}
	}
	return out.String()
}
