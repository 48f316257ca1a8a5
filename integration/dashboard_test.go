package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/dev/simrunner"
)

// The Grafana dashboard of docker-compose's observe profile
// (deploy/grafana/dashboards/switchyard.json) queries only series that a
// real switchyard and its Envoy expose, with the labels its queries match
// on and group by: two edges sharing state through NATS, the soonest policy
// with hints from the body, a hit, a miss, a queued pick, a request without
// a hint, two pools and a NACKed listener, then edge A's /metrics and its
// Envoy's /stats/prometheus against every series the dashboard selects. The
// queries are read by Prometheus's PromQL parser in the deployment checks'
// module (integration/deploy/cmd/dashboard-metrics), so that Prometheus's
// module stays out of this one's go.mod.
func TestDashboardMetricsExist(t *testing.T) {
	queried := make(chan dashboardMetrics, 1)
	go func() { queried <- readDashboardMetrics() }()

	gpu := runnersNamed(t, simrunner.Options{LoadTime: 300 * time.Millisecond, InferTime: 2 * time.Second, Slots: 2}, "gpu-1", "gpu-2", "gpu-3")
	big := runnersNamed(t, simrunner.Options{}, "big-1")
	_, a, b := edges(t, poolsYAML(poolSpec{name: "gpu", maxConcurrency: 1, runners: gpu}, poolSpec{name: "big", maxConcurrency: 1, runners: big})+`
hints: {policy: soonest}
routes:
  - name: gen
    match: {prefix: /}
    hint_from: body.model
    rules:
      - when: body.width * body.height <= 1048576
        pool: gpu
      - pool: big
`)

	// A miss, then hits on the runner that loaded the model: soonest
	// learns the pool's times and predicts each hit.
	const tiny = `{"model": "flux-dev", "width": 64, "height": 64}`
	first := a.MustDo(http.MethodPost, "/gen", nil, tiny)
	if first.Status != http.StatusOK || first.Header.Get("x-switchyard-hint") != "miss" {
		t.Fatalf("first request: %d %q, want 200 and a miss", first.Status, first.Header.Get("x-switchyard-hint"))
	}
	warm := first.Runner()
	for range 8 {
		a.Settle(0)
		if r := a.MustDo(http.MethodPost, "/gen", nil, tiny); r.Status != http.StatusOK {
			t.Fatalf("hit: status %d", r.Status)
		}
	}
	a.Settle(0)
	// The warm runner busy for 2 s: the next request queues on it rather
	// than load the model elsewhere.
	var warmRunner *TestRunner
	for _, r := range gpu {
		if r.Stats().Name == warm {
			warmRunner = r
		}
	}
	long := make(chan Reply, 1)
	go func() {
		r, _ := a.Do(http.MethodPost, "/gen", nil, `{"model": "flux-dev", "width": 1024, "height": 1024}`)
		long <- r
	}()
	Eventually(t, 5*time.Second, "the warm runner busy", func() bool { return warmRunner.Stats().InFlight == 1 })
	if r := a.MustDo(http.MethodPost, "/gen", nil, tiny); r.Status != http.StatusOK {
		t.Fatalf("request behind the busy runner: status %d", r.Status)
	}
	<-long
	if a.Metric("switchyard_queued_decisions_total") == 0 {
		t.Error("no decision queued on the busy warm runner: the workload does not exercise the queued series")
	}
	// No hint; the other pool; a request through edge B.
	for _, body := range []string{`{"width": 64, "height": 64}`, `{"model": "sdxl", "width": 2048, "height": 2048}`} {
		if r := a.MustDo(http.MethodPost, "/gen", nil, body); r.Status != http.StatusOK {
			t.Fatalf("%s: status %d", body, r.Status)
		}
	}
	if r := b.MustDo(http.MethodPost, "/gen", nil, tiny); r.Status != http.StatusOK {
		t.Fatalf("through edge B: status %d", r.Status)
	}
	a.Settle(0)

	// A listener on a port something else holds: Envoy NACKs it, and the
	// NACK counter gets its series.
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	cfg := a.ReadConfig()
	if !strings.HasPrefix(cfg, "listeners:\n") {
		t.Fatalf("the harness's config does not start with its listeners:\n%s", cfg)
	}
	a.WriteConfig(strings.Replace(cfg, "listeners:\n", fmt.Sprintf("listeners:\n  - {name: taken, address: 127.0.0.1, port: %d}\n", taken.Addr().(*net.TCPAddr).Port), 1))
	Eventually(t, 15*time.Second, "Envoy's NACK of a listener on a taken port", func() bool {
		return a.Metric(`switchyard_xds_nacks_total{type="Listener"}`) > 0
	})

	sw := scrape(t, a.AdminURL+"/metrics")
	ev := scrape(t, a.Envoy.AdminURL()+"/stats/prometheus")
	// Prometheus 3 parses a scrape by its Content-Type and fails one it
	// cannot place (prometheus.yml sets no fallback protocol): text/plain
	// is its text format.
	for _, e := range []exposition{sw, ev} {
		if mt, _, err := mime.ParseMediaType(e.contentType); err != nil || mt != "text/plain" {
			t.Errorf("%s answers Content-Type %q, want text/plain, Prometheus's text format", e.url, e.contentType)
		}
	}

	q := <-queried
	if q.err != nil {
		t.Fatal(q.err)
	}
	selected := 0
	for _, query := range q.Queries {
		for _, s := range query.Selections {
			selected++
			var exp exposition
			switch {
			case strings.HasPrefix(s.Metric, "switchyard_"):
				exp = sw
			case strings.HasPrefix(s.Metric, "envoy_"):
				exp = ev
			default:
				t.Errorf("panel %q selects %s, which neither switchyard nor Envoy exposes", query.Panel, s.Metric)
				continue
			}
			what := s.Metric
			if h := histogramOf(s.Metric, exp); h != "" {
				what = fmt.Sprintf("%s (histogram %s)", s.Metric, h)
			}
			labels, ok := exp.series[s.Metric]
			if !ok {
				t.Errorf("panel %q query %s: %s is missing from %s", query.Panel, query.RefID, what, exp.url)
				continue
			}
			for _, l := range s.Labels {
				if !labels[l] && !slices.Contains(q.TargetLabels, l) {
					t.Errorf("panel %q query %s: %s has no label %q in %s (it has %v)", query.Panel, query.RefID, what, l, exp.url, sortedKeys(labels))
				}
			}
		}
	}
	if selected == 0 {
		t.Fatal("the dashboard selects no series: the check would prove nothing")
	}
	// What the dashboard leaves out, for whoever extends it.
	family := func(series string) string {
		if h := histogramOf(series, sw); h != "" {
			return h
		}
		return series
	}
	shown := map[string]bool{}
	for _, query := range q.Queries {
		for _, s := range query.Selections {
			shown[family(s.Metric)] = true
		}
	}
	var unshown []string
	for name := range sw.series {
		if f := family(name); strings.HasPrefix(f, "switchyard_") && !shown[f] && !slices.Contains(unshown, f) {
			unshown = append(unshown, f)
		}
	}
	slices.Sort(unshown)
	t.Logf("%d series selected by %d queries; switchyard metrics no panel shows: %v", selected, len(q.Queries), unshown)
}

// dashboardMetrics is what cmd/dashboard-metrics prints.
type dashboardMetrics struct {
	TargetLabels []string `json:"target_labels"`
	Queries      []struct {
		Panel      string `json:"panel"`
		RefID      string `json:"ref_id"`
		Expr       string `json:"expr"`
		Selections []struct {
			Metric string   `json:"metric"`
			Labels []string `json:"labels"`
		} `json:"selections"`
	} `json:"queries"`
	err error
}

// readDashboardMetrics runs integration/deploy's cmd/dashboard-metrics on
// the checkout's dashboard and Prometheus config.
func readDashboardMetrics() (out dashboardMetrics) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "run", "./cmd/dashboard-metrics",
		"-dashboard", "../../deploy/grafana/dashboards/switchyard.json",
		"-prometheus", "../../deploy/prometheus/prometheus.yml")
	cmd.Dir = "deploy"
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		out.err = fmt.Errorf("integration/deploy: go run ./cmd/dashboard-metrics: %v\n%s", err, stderr.String())
		return out
	}
	if err := json.Unmarshal(stdout.Bytes(), &out); err != nil {
		out.err = fmt.Errorf("dashboard-metrics printed %q: %v", stdout.String(), err)
	}
	return out
}

// exposition is a scrape in Prometheus's text format: each series name
// with the label names seen on it, and each metric family's type.
type exposition struct {
	url, contentType string
	series           map[string]map[string]bool
	types            map[string]string
}

func scrape(t *testing.T, url string) exposition {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %v", url, resp.StatusCode, err)
	}
	e := exposition{url: url, contentType: resp.Header.Get("Content-Type"), series: map[string]map[string]bool{}, types: map[string]string{}}
	for n, line := range strings.Split(string(raw), "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		if rest, ok := strings.CutPrefix(line, "# TYPE "); ok {
			if f := strings.Fields(rest); len(f) == 2 {
				e.types[f[0]] = f[1]
			}
			continue
		}
		if strings.HasPrefix(line, "#") {
			continue
		}
		name, labels, err := parseSample(line)
		if err != nil {
			t.Fatalf("%s line %d %q: %v", url, n+1, line, err)
		}
		if e.series[name] == nil {
			e.series[name] = map[string]bool{}
		}
		for _, l := range labels {
			e.series[name][l] = true
		}
	}
	if len(e.series) == 0 {
		t.Fatalf("%s exposes no series", url)
	}
	return e
}

// parseSample reads `name{label="value",...} value [timestamp]` and returns
// the name and the label names.
func parseSample(line string) (string, []string, error) {
	end := strings.IndexAny(line, "{ ")
	if end <= 0 {
		return "", nil, fmt.Errorf("no metric name")
	}
	name, rest := line[:end], line[end:]
	var labels []string
	if strings.HasPrefix(rest, "{") {
		rest = rest[1:]
		for {
			rest = strings.TrimLeft(rest, " ,")
			if strings.HasPrefix(rest, "}") {
				rest = rest[1:]
				break
			}
			eq := strings.Index(rest, `="`)
			if eq <= 0 {
				return "", nil, fmt.Errorf("malformed labels")
			}
			labels = append(labels, rest[:eq])
			rest = rest[eq+2:]
			// The value: up to the first quote not escaped.
			i := 0
			for ; i < len(rest); i++ {
				if rest[i] == '\\' {
					i++
					continue
				}
				if rest[i] == '"' {
					break
				}
			}
			if i >= len(rest) {
				return "", nil, fmt.Errorf("unterminated label value")
			}
			rest = rest[i+1:]
		}
	}
	f := strings.Fields(rest)
	if len(f) < 1 || len(f) > 2 {
		return "", nil, fmt.Errorf("want a value and at most a timestamp after the labels")
	}
	if _, err := strconv.ParseFloat(f[0], 64); err != nil {
		return "", nil, fmt.Errorf("value: %v", err)
	}
	return name, labels, nil
}

// histogramOf is the histogram a _bucket, _sum or _count series belongs
// to, by the exposition's TYPE lines; "" for any other series.
func histogramOf(series string, e exposition) string {
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		if base, ok := strings.CutSuffix(series, suffix); ok && e.types[base] == "histogram" {
			return base
		}
	}
	return ""
}

func sortedKeys(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
