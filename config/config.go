package config

import (
	"time"
)

// Defaults applied when the file leaves a field out.
const (
	DefaultGRPC           = "127.0.0.1:18000"
	DefaultAdmin          = "127.0.0.1:18001"
	DefaultRequestHeader  = "x-fal-runner-hint"
	DefaultResponseHeader = "x-fal-runner-hints"
	DefaultMaxConcurrency = 1
	// DefaultRouteTimeout is long because a cold model load plus inference
	// can take minutes; Envoy's own default of 15 s would cut them off.
	DefaultRouteTimeout = 5 * time.Minute
	// DefaultDrainTimeout bounds how long a deregistered runner is kept for
	// its in-flight requests before it is removed anyway.
	DefaultDrainTimeout = 30 * time.Second
)

// OnInvalidBody values.
const (
	InvalidBodyDefault = "default" // evaluate without the body: rules over body do not match
	InvalidBodyReject  = "reject"  // answer 400 with a JSON reason
)

// Config is a validated configuration: every reference resolves, defaults
// are filled in and expressions are compiled. It is immutable once loaded;
// a reload makes a new one.
type Config struct {
	File      string     `json:"file"`
	Listeners []Listener `json:"listeners"`
	Server    Server     `json:"server"`
	Hints     Hints      `json:"hints"`
	Pools     []Pool     `json:"pools"`
	Routes    []Route    `json:"routes"`
}

type Listener struct {
	Name    string `json:"name"`
	Address string `json:"address"`
	Port    int    `json:"port"`
	TLS     *TLS   `json:"tls,omitempty"`
}

type TLS struct {
	CertFile string `json:"cert_file"`
	KeyFile  string `json:"key_file"`
}

type Server struct {
	GRPC         string   `json:"grpc"`
	Admin        string   `json:"admin"`
	DrainTimeout Duration `json:"drain_timeout"`
}

type Hints struct {
	RequestHeaders []string `json:"request_headers"`
	ResponseHeader string   `json:"response_header"`
}

type Pool struct {
	Name           string   `json:"name"`
	MaxConcurrency int      `json:"max_concurrency"`
	Runners        []string `json:"runners"` // static runner addresses, ip:port
}

type Route struct {
	Name          string   `json:"name"`
	Match         Match    `json:"match"`
	Listeners     []string `json:"listeners"` // every listener when the file names none
	HintFrom      *Expr    `json:"hint_from,omitempty"`
	OnInvalidBody string   `json:"on_invalid_body"`
	Timeout       Duration `json:"timeout"`
	Rules         []Rule   `json:"rules"`
}

type Match struct {
	Prefix string `json:"prefix,omitempty"`
	Path   string `json:"path,omitempty"`
}

// Rule sends a request to Pool, or to one of Split's variants, when When
// matches. The last rule of a route has no When.
type Rule struct {
	When     *Expr    `json:"when,omitempty"`
	Pool     string   `json:"pool,omitempty"`
	Split    *Split   `json:"split,omitempty"`
	Fallback []string `json:"fallback,omitempty"`
}

type Split struct {
	StickyKey *Expr     `json:"sticky_key,omitempty"`
	Variants  []Variant `json:"variants"` // sorted by pool name
}

type Variant struct {
	Pool   string `json:"pool"`
	Weight int    `json:"weight"`
}

// Pool returns the named pool.
func (c *Config) Pool(name string) (Pool, bool) {
	for _, p := range c.Pools {
		if p.Name == name {
			return p, true
		}
	}
	return Pool{}, false
}

// DefaultPool is where the route sends a request when no decision is made
// (switchyard unreachable): the last rule's pool, or its heaviest variant.
func (r *Route) DefaultPool() string {
	last := r.Rules[len(r.Rules)-1]
	if last.Split == nil {
		return last.Pool
	}
	best := last.Split.Variants[0]
	for _, v := range last.Split.Variants[1:] {
		if v.Weight > best.Weight {
			best = v
		}
	}
	return best.Pool
}

// Pools lists, sorted and without repeats, every pool the route can send a
// request to: rule pools, split variants and fallbacks.
func (r *Route) Pools() []string {
	set := map[string]bool{}
	for _, rule := range r.Rules {
		if rule.Pool != "" {
			set[rule.Pool] = true
		}
		if rule.Split != nil {
			for _, v := range rule.Split.Variants {
				set[v.Pool] = true
			}
		}
		for _, f := range rule.Fallback {
			set[f] = true
		}
	}
	return sortedKeys(set)
}
