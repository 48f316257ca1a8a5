package stack

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"

	"go.yaml.in/yaml/v3"

	"github.com/switchyard/switchyard/internal/config"
	"github.com/switchyard/switchyard/internal/dev/natsserver"
)

// EdgePortStep is how far apart the edges' ports are: edge k (from 1)
// listens on each configured port plus (k-1)·EdgePortStep, for Envoy's
// listeners and switchyard's gRPC, admin and pipelines ports alike.
const EdgePortStep = 100

// EdgesOptions configure StartEdges.
type EdgesOptions struct {
	// Options are each edge's; the simulated runners are started once,
	// by edge 1, and shared. Log and EnvoyLog are replaced per edge by
	// LogFor.
	Options
	// N is the number of edges, at least 1.
	N int
	// Dir receives each edge's config (edge-K.yaml) and NATS's store.
	Dir string
	// LogFor gives edge k's switchyard log and Envoy log.
	LogFor func(k int) (*slog.Logger, io.Writer)
	// Isolated leaves the cluster section out: N independent edges, for
	// comparison (no NATS is started).
	Isolated bool
	// Port, when set, gives edge k's port for a port of the config (edge
	// 1 keeps the config's); by default it is the port plus
	// (k-1)·EdgePortStep. Benchmarks and tests pass free ports here.
	Port func(k, port int) int
}

// Edges is several edges (Envoy + switchyard each) in front of the same
// runners, sharing runner state through one NATS server embedded in the
// process.
type Edges struct {
	Edges []*Stack
	NATS  *natsserver.Server
}

// StartEdges starts NATS, then N edges, and returns once a request can go
// through each one's Envoy.
func StartEdges(ctx context.Context, o EdgesOptions) (*Edges, error) {
	if o.N < 1 {
		return nil, fmt.Errorf("edges: %d, want at least 1", o.N)
	}
	if _, err := config.Load(o.ConfigPath); err != nil {
		return nil, err
	}
	raw, err := os.ReadFile(o.ConfigPath)
	if err != nil {
		return nil, err
	}
	e := &Edges{}
	natsURL := ""
	if !o.Isolated {
		if e.NATS, err = natsserver.Start(natsserver.Options{StoreDir: filepath.Join(o.Dir, "nats")}); err != nil {
			return nil, err
		}
		natsURL = e.NATS.URL()
	}
	for k := 1; k <= o.N; k++ {
		path := filepath.Join(o.Dir, fmt.Sprintf("edge-%d.yaml", k))
		data, err := edgeConfig(raw, k, natsURL, o.Port)
		if err == nil {
			err = os.WriteFile(path, data, 0o644)
		}
		if err != nil {
			e.Stop()
			return nil, fmt.Errorf("edge %d config: %w", k, err)
		}
		eo := o.Options
		eo.ConfigPath = path
		eo.Simulate = o.Simulate && k == 1
		if k > 1 {
			eo.EnvoyAdminPort = 0
		}
		if o.LogFor != nil {
			eo.Log, eo.EnvoyLog = o.LogFor(k)
		}
		st, err := Start(ctx, eo)
		if err != nil {
			e.Stop()
			return nil, fmt.Errorf("edge %d: %w", k, err)
		}
		e.Edges = append(e.Edges, st)
	}
	return e, nil
}

// edgeConfig is the user's config for edge k: every port moved by
// (k-1)·EdgePortStep and, unless natsURL is empty, a cluster section naming
// the shared NATS and the replica edge-k. Comments are not kept.
func edgeConfig(raw []byte, k int, natsURL string, portFor func(k, port int) int) ([]byte, error) {
	var doc map[string]any
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		return nil, err
	}
	move := func(p int) int {
		switch {
		case k == 1:
			return p
		case portFor != nil:
			return portFor(k, p)
		}
		return p + (k-1)*EdgePortStep
	}
	if ls, ok := doc["listeners"].([]any); ok {
		for _, l := range ls {
			if lm, ok := l.(map[string]any); ok {
				if p, ok := lm["port"].(int); ok {
					lm["port"] = move(p)
				}
			}
		}
	}
	srv, _ := doc["server"].(map[string]any)
	if srv == nil {
		srv = map[string]any{}
		doc["server"] = srv
	}
	for key, def := range map[string]string{"grpc": config.DefaultGRPC, "admin": config.DefaultAdmin, "pipelines": config.DefaultPipelines} {
		hp, _ := srv[key].(string)
		if hp == "" {
			hp = def
		}
		host, port, err := net.SplitHostPort(hp)
		if err != nil {
			return nil, fmt.Errorf("server.%s: %w", key, err)
		}
		n, err := strconv.Atoi(port)
		if err != nil {
			return nil, fmt.Errorf("server.%s: %w", key, err)
		}
		srv[key] = net.JoinHostPort(host, strconv.Itoa(move(n)))
	}
	if natsURL != "" {
		doc["cluster"] = map[string]any{"nats": []string{natsURL}, "replica": fmt.Sprintf("edge-%d", k)}
	}
	return yaml.Marshal(doc)
}

// Wait blocks until ctx ends (nil) or a component of any edge stops on its
// own (its error).
func (e *Edges) Wait(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, len(e.Edges))
	for k, st := range e.Edges {
		go func() {
			if err := st.Wait(ctx); err != nil {
				errc <- fmt.Errorf("edge %d: %w", k+1, err)
				return
			}
			errc <- nil
		}()
	}
	return <-errc
}

// Stop stops every edge, then NATS.
func (e *Edges) Stop() error {
	var errs []error
	for _, st := range e.Edges {
		errs = append(errs, st.Stop())
	}
	if e.NATS != nil {
		e.NATS.Stop()
	}
	return errors.Join(errs...)
}
