package extproc

import (
	"math"
	"sync"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/switchyard/switchyard/internal/bodyfields"
	"github.com/switchyard/switchyard/internal/config"
	"github.com/switchyard/switchyard/internal/contract"
)

// fieldCache holds, for the config being served, each route's compiled
// body extraction: it is built once per config version, not per request.
type fieldCache struct {
	mu     sync.Mutex
	cfg    *config.Config
	routes map[string]*bodyfields.Fields
}

func (c *fieldCache) get(cfg *config.Config, route *config.Route) *bodyfields.Fields {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cfg != cfg {
		c.cfg, c.routes = cfg, map[string]*bodyfields.Fields{}
	}
	f, ok := c.routes[route.Name]
	if !ok {
		f = compileRoute(route)
		c.routes[route.Name] = f
	}
	return f
}

// compileRoute compiles the extraction of the body fields the route's
// expressions read.
func compileRoute(r *config.Route) *bodyfields.Fields {
	return bodyfields.Compile(r.BodyFields(), r.WholeBody())
}

// bodyFromMetadata builds the body fields the route reads from what
// Envoy's json_to_metadata filter extracted (field i under key
// contract.BodyFieldKey(i)), nested as bodyfields.Extract nests them. It
// fails when Envoy did not run, marked the body incomplete, or left a
// field out: the body is then read whole.
func bodyFromMetadata(md *corev3.Metadata, fields [][]string) (map[string]any, bool) {
	got := md.GetFilterMetadata()[contract.BodyNamespace].GetFields()
	if got == nil {
		return nil, false
	}
	if _, ok := got[contract.BodyIncomplete]; ok {
		return nil, false
	}
	body := make(map[string]any, len(fields))
	for i, path := range fields {
		v, ok := scalar(got[contract.BodyFieldKey(i)])
		if !ok || len(path) == 0 {
			return nil, false
		}
		m := body
		for _, k := range path[:len(path)-1] {
			next, ok := m[k].(map[string]any)
			if !ok {
				if _, taken := m[k]; taken {
					return nil, false
				}
				next = map[string]any{}
				m[k] = next
			}
			m = next
		}
		m[path[len(path)-1]] = v
	}
	return body, true
}

// maxExactInt is the largest integer a JSON number carried as a double
// holds exactly.
const maxExactInt = 1 << 53

// scalar is a field's value as bodyfields gives it: a whole number is an
// int64 (so width*height is integer arithmetic), any other number a
// float64. Envoy's metadata carries every number as a double, so a number
// written with a zero fraction (1024.0) arrives as an integer here.
func scalar(v *structpb.Value) (any, bool) {
	switch k := v.GetKind().(type) {
	case *structpb.Value_StringValue:
		return k.StringValue, true
	case *structpb.Value_BoolValue:
		return k.BoolValue, true
	case *structpb.Value_NumberValue:
		n := k.NumberValue
		if n == math.Trunc(n) && math.Abs(n) <= maxExactInt {
			return int64(n), true
		}
		return n, true
	}
	return nil, false
}
