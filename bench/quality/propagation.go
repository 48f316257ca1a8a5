package quality

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/switchyard/switchyard/internal/cluster"
	"github.com/switchyard/switchyard/internal/dev/simrunner"
	"github.com/switchyard/switchyard/internal/dev/stack"
)

// Propagation is how long what one edge learns takes to be known at another
// (two edges sharing state through NATS): a runner registered through edge
// 1's admin API until edge 2 lists it, and a hint a runner reported on a
// response through edge 1 until edge 2 lists it for the runner. Each
// sample is timed from the call at edge 1 returning to edge 2's admin API
// answering with it, polled every millisecond. Samples are spaced by
// quiet, so each is one change on its own: back-to-back changes are
// batched, one write per cluster.FlushInterval at most.
type Propagation struct {
	Samples         int     `json:"samples"`
	RegistrationP50 float64 `json:"registration_p50_ms"`
	RegistrationP99 float64 `json:"registration_p99_ms"`
	HintP50         float64 `json:"hint_p50_ms"`
	HintP99         float64 `json:"hint_p99_ms"`
}

// MeasurePropagation takes samples of each kind.
func MeasurePropagation(ctx context.Context, samples int) (*Propagation, error) {
	dir, err := os.MkdirTemp("", "switchyard-propagation-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	cfg := fmt.Sprintf(`listeners: [{name: public, address: 127.0.0.1, port: %d}]
server: {grpc: 127.0.0.1:%d, admin: 127.0.0.1:%d}
pools:
  - {name: gpu, runners: [{address: 127.0.0.1:%d}]}
  - {name: spare}
routes:
  - {name: gen, match: {prefix: /}, rules: [{pool: gpu}]}
`, freePort(), freePort(), freePort(), freePort())
	path := filepath.Join(dir, "switchyard.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		return nil, err
	}
	es, err := stack.StartEdges(ctx, stack.EdgesOptions{
		Options: stack.Options{ConfigPath: path, Simulate: true, Sim: simrunner.Options{Slots: samples + 1, LoadTime: time.Millisecond, InferTime: time.Millisecond}},
		N:       2, Dir: dir, Port: func(int, int) int { return freePort() },
	})
	if err != nil {
		return nil, err
	}
	defer es.Stop()
	a, b := es.Edges[0], es.Edges[1]
	runner := es.Edges[0].Runners[0].Addr.String()
	var reg, hint []time.Duration
	for i := range samples {
		// Registered in a pool no route uses: nothing listens there.
		addr := fmt.Sprintf("127.0.0.2:%d", 20000+i)
		if err := call(ctx, http.MethodPut, a.AdminURL+"/v1/pools/spare/runners/"+addr, `{"ttl_seconds": 300}`); err != nil {
			return nil, err
		}
		d, err := waitListed(ctx, b.AdminURL, func(r listed) bool { return r.Address == addr })
		if err != nil {
			return nil, fmt.Errorf("registration %d: %w", i, err)
		}
		reg = append(reg, d)
		pause(ctx)

		model := fmt.Sprintf("model-%d", i)
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, a.EdgeURL+"/gen", strings.NewReader(`{}`))
		req.Header.Set("x-fal-runner-hint", model)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return nil, err
		}
		resp.Body.Close()
		d, err = waitListed(ctx, b.AdminURL, func(r listed) bool { return r.Address == runner && slices.Contains(r.Hints, model) })
		if err != nil {
			return nil, fmt.Errorf("hint %d: %w", i, err)
		}
		hint = append(hint, d)
		pause(ctx)
	}
	p := &Propagation{Samples: samples}
	p.RegistrationP50, p.RegistrationP99 = quantileMs(reg, 0.5), quantileMs(reg, 0.99)
	p.HintP50, p.HintP99 = quantileMs(hint, 0.5), quantileMs(hint, 0.99)
	return p, nil
}

type listed struct {
	Address string   `json:"address"`
	Hints   []string `json:"hints"`
}

// waitListed polls an edge's runner list until a runner matches, and
// returns how long that took.
func waitListed(ctx context.Context, adminURL string, match func(listed) bool) (time.Duration, error) {
	start := time.Now()
	for time.Since(start) < 10*time.Second {
		resp, err := http.Get(adminURL + "/v1/runners")
		if err != nil {
			return 0, err
		}
		var list struct {
			Runners []listed `json:"runners"`
		}
		err = json.NewDecoder(resp.Body).Decode(&list)
		resp.Body.Close()
		if err != nil {
			return 0, err
		}
		if slices.ContainsFunc(list.Runners, match) {
			return time.Since(start), nil
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(time.Millisecond):
		}
	}
	return 0, fmt.Errorf("not seen at %s within 10s", adminURL)
}

func call(ctx context.Context, method, url, body string) error {
	req, err := http.NewRequestWithContext(ctx, method, url, strings.NewReader(body))
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s %s: %s", method, url, resp.Status)
	}
	return nil
}

func quantileMs(ds []time.Duration, q float64) float64 {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return float64(s[min(len(s)-1, int(q*float64(len(s))))].Microseconds()) / 1000
}

// pause lets an edge's writes settle between samples.
func pause(ctx context.Context) {
	select {
	case <-ctx.Done():
	case <-time.After(2 * cluster.FlushInterval):
	}
}
