package extproc

import (
	"sync"

	"github.com/switchyard/switchyard/internal/bodyfields"
	"github.com/switchyard/switchyard/internal/config"
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

// compileRoute collects the body fields every expression of the route reads.
func compileRoute(r *config.Route) *bodyfields.Fields {
	var paths [][]string
	whole := false
	for _, e := range r.Exprs() {
		paths = append(paths, e.BodyPaths...)
		whole = whole || e.WholeBody
	}
	return bodyfields.Compile(paths, whole)
}
