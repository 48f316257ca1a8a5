// Command bench runs switchyard's benchmark suite and writes the results:
// one JSON file per suite under bench/results/ and BENCHMARKS.md, rendered
// from all the JSON files present (so one suite can be re-run alone).
//
//	go run ./bench/cmd/bench [-smoke] [-suites quality,edges,inenvoy,mixed,overhead,controlplane,decision]
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"time"

	"github.com/switchyard/switchyard/bench/controlplane"
	"github.com/switchyard/switchyard/bench/overhead"
	"github.com/switchyard/switchyard/bench/quality"
	"github.com/switchyard/switchyard/bench/soak"
	"github.com/switchyard/switchyard/bench/workload"
	"github.com/switchyard/switchyard/envoy"
)

// record is one suite's results file.
type record struct {
	Suite    string    `json:"suite"`
	Title    string    `json:"title"`
	Date     time.Time `json:"date"`
	Machine  machine   `json:"machine"`
	Command  string    `json:"command"`
	Smoke    bool      `json:"smoke"`
	Seconds  float64   `json:"seconds"`
	Markdown string    `json:"markdown"`
	Result   any       `json:"result"`
}

type machine struct {
	CPU      string `json:"cpu"`
	Cores    int    `json:"cores"`
	MemoryGB string `json:"memory"`
	OS       string `json:"os"`
	Go       string `json:"go"`
	Envoy    string `json:"envoy"`
}

type suite struct {
	name, title string
	run         func(ctx context.Context, smoke bool) (any, string, error)
	// markdown, when set, renders the suite's report from its stored
	// result, so that a change to the report needs no new run.
	markdown func(result json.RawMessage) (string, error)
}

// mixedDuration and mixedSeeds are the mixed-size suite's runs: each
// policy replays three sequences of a minute at each load, in turn, and
// the target is judged on the mean of the three p99s. One 30 s sequence
// made a p99 of 22 requests, most of them from the first seconds, when
// every runner loads its first models: runs of one setup differed as much
// as the setups did.
const mixedDuration = time.Minute

var mixedSeeds = []int64{42, 43, 44}

var suites = []suite{
	qualitySuite("quality", "Routing quality", quality.Options{}, nil, (*quality.Result).Markdown),
	qualitySuite("edges", "Several edges", quality.Options{Loads: []float64{0.8}, Policies: quality.EdgePolicies},
		func(ctx context.Context, r *quality.Result, smoke bool) (err error) {
			samples := 50
			if smoke {
				samples = 5
			}
			r.Propagation, err = quality.MeasurePropagation(ctx, samples)
			return err
		}, (*quality.Result).EdgesMarkdown),
	qualitySuite("inenvoy", "Deciding in Envoy", quality.Options{Loads: []float64{0.8, 0.95}, Policies: quality.ModulePolicies},
		nil, (*quality.Result).Markdown),
	qualitySuite("mixed", "Mixed request sizes", quality.Options{Shape: workload.Shape{Mixed: true, Duration: mixedDuration}, Seeds: mixedSeeds, Loads: []float64{0.8, 0.95}, Policies: quality.MixedPolicies},
		nil, (*quality.Result).MixedMarkdown),
	{"overhead", "Edge overhead", func(ctx context.Context, smoke bool) (any, string, error) {
		r, err := overhead.Run(ctx, overhead.Options{Smoke: smoke, Log: os.Stderr})
		if err != nil {
			return nil, "", err
		}
		return r, r.Markdown(), nil
	}, func(raw json.RawMessage) (string, error) { return overhead.RenderJSON(raw) }},
	{"controlplane", "Control plane", func(ctx context.Context, smoke bool) (any, string, error) {
		r, err := controlplane.Run(ctx, controlplane.Options{Smoke: smoke, Log: os.Stderr})
		if err != nil {
			return nil, "", err
		}
		return r, r.Markdown(), nil
	}, nil},
	{"decision", "The decision path (Go benchmarks)", decisionBenchmarks, nil},
	// Not in the default list: `make soak` (30 minutes).
	{"soak", "Soak", func(ctx context.Context, smoke bool) (any, string, error) {
		o := soak.Options{Duration: *soakDuration, Log: os.Stderr}
		if smoke {
			o.Duration, o.Rate, o.Samples = 10*time.Second, 100, 3
		}
		r, err := soak.Run(ctx, o)
		if err != nil {
			return nil, "", err
		}
		return r, r.Markdown(), nil
	}, nil},
}

// soakDuration is the soak suite's request stream (-soak-duration).
var soakDuration = flag.Duration("soak-duration", 30*time.Minute, "how long the soak suite runs its request stream")

// qualitySuite is a routing-quality run of o (its policies at its loads),
// then extra (when set), reported by render.
func qualitySuite(name, title string, o quality.Options, extra func(context.Context, *quality.Result, bool) error, render func(*quality.Result) string) suite {
	return suite{name, title, func(ctx context.Context, smoke bool) (any, string, error) {
		o := o
		o.Log = os.Stderr
		if smoke {
			o.LoadTime, o.InferTime, o.Duration, o.Seeds = 200*time.Millisecond, 50*time.Millisecond, 0, nil
		}
		o.Defaults(smoke)
		r, err := quality.RunAll(ctx, o)
		if err == nil && extra != nil {
			err = extra(ctx, r, smoke)
		}
		if err != nil {
			return nil, "", err
		}
		return r, render(r), nil
	}, func(raw json.RawMessage) (string, error) {
		var r quality.Result
		if err := json.Unmarshal(raw, &r); err != nil {
			return "", err
		}
		return render(&r), nil
	}}
}

func main() {
	smoke := flag.Bool("smoke", false, "a quick run of every suite (for CI)")
	only := flag.String("suites", "quality,edges,inenvoy,mixed,overhead,controlplane,decision", "suites to run, comma-separated")
	out := flag.String("out", "bench/results", "directory of the JSON results")
	md := flag.String("md", "BENCHMARKS.md", "the Markdown report, rendered from every JSON result in -out")
	renderOnly := flag.Bool("render", false, "only render the Markdown report from the JSON results")
	flag.Parse()
	if *renderOnly {
		if err := render(*out, *md); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, *smoke, strings.Split(*only, ","), *out, *md); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, smoke bool, only []string, out, md string) error {
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	m := describeMachine()
	want := map[string]bool{}
	for _, s := range only {
		want[strings.TrimSpace(s)] = true
	}
	for _, s := range suites {
		if !want[s.name] {
			continue
		}
		delete(want, s.name)
		fmt.Fprintf(os.Stderr, "== %s\n", s.title)
		start := time.Now()
		res, text, err := s.run(ctx, smoke)
		if err != nil {
			return fmt.Errorf("%s: %w", s.name, err)
		}
		cmd := "make bench SUITES=" + s.name
		if smoke {
			cmd = "go run ./bench/cmd/bench -smoke -suites " + s.name
		}
		rec := record{Suite: s.name, Title: s.title, Date: time.Now().UTC(), Machine: m, Command: cmd, Smoke: smoke,
			Seconds: time.Since(start).Seconds(), Markdown: text, Result: res}
		data, err := json.MarshalIndent(rec, "", "  ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(out, s.name+".json"), append(data, '\n'), 0o644); err != nil {
			return err
		}
	}
	for name := range want {
		return fmt.Errorf("unknown suite %q", name)
	}
	return render(out, md)
}

// render writes the Markdown report from every JSON result in dir.
func render(dir, md string) error {
	files, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		return err
	}
	order := map[string]int{}
	byName := map[string]suite{}
	for i, s := range suites {
		order[s.name] = i
		byName[s.name] = s
	}
	var recs []record
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		var r record
		var stored struct{ Result json.RawMessage }
		if err := json.Unmarshal(data, &r); err != nil {
			return fmt.Errorf("%s: %w", f, err)
		}
		if err := json.Unmarshal(data, &stored); err != nil {
			return fmt.Errorf("%s: %w", f, err)
		}
		if md := byName[r.Suite].markdown; md != nil {
			if r.Markdown, err = md(stored.Result); err != nil {
				return fmt.Errorf("%s: %w", f, err)
			}
		}
		recs = append(recs, r)
	}
	sort.Slice(recs, func(i, j int) bool { return order[recs[i].Suite] < order[recs[j].Suite] })
	var b strings.Builder
	b.WriteString("# Benchmarks\n\nWritten by `make bench` (`go run ./bench/cmd/bench`) from the JSON results in `bench/results/`; " +
		"each section says when and where it was measured and the command that reproduces it. These machines are shared " +
		"and noisy: compare numbers measured side by side in one run, not across sections or days.\n\n")
	for _, r := range recs {
		fmt.Fprintf(&b, "## %s\n\n", r.Title)
		fmt.Fprintf(&b, "Measured %s on %s (%d cores, %s memory), %s, %s, Envoy %s, in %.0f s. Reproduce: `%s`.",
			r.Date.Format("2006-01-02 15:04 UTC"), r.Machine.CPU, r.Machine.Cores, r.Machine.MemoryGB, r.Machine.OS, r.Machine.Go, r.Machine.Envoy, r.Seconds, r.Command)
		if r.Smoke {
			b.WriteString(" **Smoke run: too short to quote.**")
		}
		b.WriteString("\n\n")
		// A suite's own top heading repeats this section's.
		text := strings.TrimSpace(r.Markdown)
		if strings.HasPrefix(text, "## ") {
			_, text, _ = strings.Cut(text, "\n")
		}
		b.WriteString(strings.TrimSpace(text))
		b.WriteString("\n\n")
	}
	return os.WriteFile(md, []byte(b.String()), 0o644)
}

// decisionBenchmarks runs the Go benchmarks of the request path ten times
// and summarises them with benchstat.
func decisionBenchmarks(ctx context.Context, smoke bool) (any, string, error) {
	count, benchtime := "10", "1s"
	if smoke {
		count, benchtime = "1", "100x"
	}
	args := []string{"test", "-run", "^$", "-bench", ".", "-benchmem", "-count", count, "-benchtime", benchtime,
		"./extproc", "./internal/edgemodule", "./internal/bodyfields", "./internal/affinity"}
	raw, err := exec.CommandContext(ctx, "go", args...).CombinedOutput()
	if err != nil {
		return nil, "", fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, raw)
	}
	tmp, err := os.CreateTemp("", "bench-*.txt")
	if err != nil {
		return nil, "", err
	}
	defer os.Remove(tmp.Name())
	tmp.Write(raw)
	tmp.Close()
	stat, err := exec.CommandContext(ctx, "go", "tool", "benchstat", tmp.Name()).CombinedOutput()
	if err != nil {
		return nil, "", fmt.Errorf("benchstat: %w\n%s", err, stat)
	}
	md := fmt.Sprintf("`go test -run '^$' -bench . -benchmem -count %s ./extproc ./internal/edgemodule ./internal/bodyfields ./internal/affinity`, summarised by "+
		"`go tool benchstat` (± is the 95%% confidence interval over the runs). `Decision*` is one whole request through "+
		"the ext_proc server (headers, the body fields Envoy extracted or the body itself, decision, stream end) and the "+
		"access-log report of its end, in memory; `DecisionBodyFields` decides on fields Envoy extracted, `DecisionBody*` reads a buffered body. `Filter` is the module's Go side of one "+
		"hinted request in Envoy (`server.edge_module`: headers, decision, response, end), without Envoy's calls into it.\n\n```\n%s```\n",
		count, stat)
	return map[string]string{"raw": string(raw), "benchstat": string(stat)}, md, nil
}

func describeMachine() machine {
	m := machine{Cores: runtime.NumCPU(), OS: runtime.GOOS + "/" + runtime.GOARCH, Go: runtime.Version(), CPU: "unknown", MemoryGB: "unknown"}
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	if data, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb int64
		if _, err := fmt.Sscanf(string(data), "MemTotal: %d kB", &kb); err == nil {
			m.MemoryGB = fmt.Sprintf("%.0f GiB", float64(kb)/(1<<20))
		}
	}
	if bin, err := envoy.Find(); err == nil {
		if v, err := exec.Command(bin, "--version").Output(); err == nil {
			if i := bytes.Index(v, []byte("/1.")); i >= 0 {
				m.Envoy = strings.SplitN(string(v[i+1:]), "/", 2)[0]
			}
		}
	}
	if m.Envoy == "" {
		m.Envoy = "not found"
	}
	return m
}
