package policy

import (
	"math"
	"math/rand/v2"
	"strconv"

	"github.com/cespare/xxhash/v2"
	"github.com/google/cel-go/common/types"

	"github.com/switchyard/switchyard/internal/affinity"
	"github.com/switchyard/switchyard/internal/config"
)

// activation is what expressions see. A body that was not read, or is not
// JSON, is an empty object: rules over its fields do not match.
func activation(req Request) map[string]any {
	body := req.Body
	if body == nil {
		body = map[string]any{}
	}
	headers := req.Headers
	if headers == nil {
		headers = map[string]string{}
	}
	return map[string]any{
		config.VarBody:    body,
		config.VarHeaders: headers,
		config.VarPath:    req.Path,
		config.VarMethod:  req.Method,
	}
}

// evalBool is false when the expression cannot be evaluated (a missing
// field, a wrong type): such a rule does not match.
func evalBool(e *config.Expr, act map[string]any) bool {
	v, _, err := e.Program.Eval(act)
	if err != nil {
		return false
	}
	b, ok := v.(types.Bool)
	return ok && bool(b)
}

// evalString is the expression's result when it is a string.
func evalString(e *config.Expr, act map[string]any) (string, bool) {
	v, _, err := e.Program.Eval(act)
	if err != nil {
		return "", false
	}
	s, ok := v.(types.String)
	return string(s), ok
}

// evalUnits is a cost expression's result as a positive size; 0 when it
// cannot be evaluated or is not a positive finite number.
func evalUnits(e *config.Expr, act map[string]any) float64 {
	v, _, err := e.Program.Eval(act)
	if err != nil {
		return 0
	}
	var f float64
	switch x := v.(type) {
	case types.Double:
		f = float64(x)
	case types.Int:
		f = float64(x)
	case types.Uint:
		f = float64(x)
	default:
		return 0
	}
	if f <= 0 || math.IsInf(f, 0) || math.IsNaN(f) {
		return 0
	}
	return f
}

// evalKey renders a string or integer result; ok is false otherwise.
func evalKey(e *config.Expr, act map[string]any) (string, bool) {
	v, _, err := e.Program.Eval(act)
	if err != nil {
		return "", false
	}
	switch x := v.(type) {
	case types.String:
		return string(x), true
	case types.Int:
		return strconv.FormatInt(int64(x), 10), true
	case types.Uint:
		return strconv.FormatUint(uint64(x), 10), true
	}
	return "", false
}

// hint is the first configured hint header present, else the route's
// hint_from, and where it came from. Invalid values are ignored.
func hint(cfg *config.Config, route *config.Route, req Request, act map[string]any) (value, source string) {
	for _, name := range cfg.Hints.RequestHeaders {
		if v, ok := req.Headers[name]; ok {
			if affinity.ValidHint(v) {
				return v, name
			}
			return "", ""
		}
	}
	if route.HintFrom != nil {
		if v, ok := evalString(route.HintFrom, act); ok && affinity.ValidHint(v) {
			return v, HintFromSource
		}
	}
	return "", ""
}

// HintFromSource is a decision's HintSource when the route's hint_from
// gave the hint.
const HintFromSource = "hint_from"

// variant picks a split's pool: by weighted rendezvous hashing of the
// sticky key when there is one (a key keeps its variant while the weights
// stay, and a weight change moves only the keys it must: a variant that
// leaves the split takes only its own keys elsewhere), else at random. The
// weights are the variants' current ones (guards); it returns the chosen
// variant.
func (e *Engine) variant(route string, rule int, s *config.Split, act map[string]any) config.Variant {
	var buf [8]int
	ws := buf[:0]
	if s.Guarded() || e.guards.tracked.Load() > 0 {
		ws = e.guards.weights(route, rule, s, e.now(), ws)
	} else {
		for _, v := range s.Variants {
			ws = append(ws, v.Weight)
		}
	}
	total := 0
	for _, w := range ws {
		total += w
	}
	if total == 0 {
		// Every variant out (a guard cannot do this; a config change
		// may): the configured weights.
		ws = ws[:0]
		for _, v := range s.Variants {
			ws = append(ws, v.Weight)
			total += v.Weight
		}
	}
	if s.StickyKey != nil {
		if key, ok := evalKey(s.StickyKey, act); ok {
			return s.Variants[rendezvous(s.Variants, ws, key)]
		}
	}
	n := rand.IntN(total)
	for i, w := range ws {
		if n < w {
			return s.Variants[i]
		}
		n -= w
	}
	return s.Variants[len(s.Variants)-1]
}

// rendezvous gives each variant the score weight / -ln(u), u uniform in
// (0, 1) from a hash of key and variant; the highest score wins, which
// picks each variant with probability proportional to its weight. Variants
// of weight 0 are out. It returns the winner's index.
func rendezvous(vs []config.Variant, ws []int, key string) int {
	best, bestScore := 0, -1.0
	for i, v := range vs {
		if ws[i] == 0 {
			continue
		}
		// A fixed hash (not a per-process seed): a key keeps its variant
		// across restarts and across edges.
		h := xxhash.New()
		h.WriteString(key)
		h.Write([]byte{0})
		h.WriteString(v.Pool)
		u := (float64(h.Sum64()>>11) + 0.5) / (1 << 53)
		score := float64(ws[i]) / -math.Log(u)
		if score > bestScore {
			best, bestScore = i, score
		}
	}
	return best
}
