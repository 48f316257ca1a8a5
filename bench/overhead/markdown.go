package overhead

import (
	"encoding/json"
	"fmt"
	"strings"
)

var payloadTitle = map[string]string{
	PayloadHeaders: "Headers only (34-byte JSON body; the route and the routers read headers only)",
	Payload64KB:    "64 KB JSON body (the rule reads body.width and body.height, at the end of the body)",
	Payload1MB:     "1 MB JSON body (fields at the end)",
}

var pathOrder = []string{PathDirect, PathEnvoy, PathSwitchyard, PathModule, PathGoRouter, PathPythonRouter}

// RenderJSON renders a stored result (its targets worked out again, so a
// target added since the run is reported from the run's figures).
func RenderJSON(raw []byte) (string, error) {
	var r Result
	if err := json.Unmarshal(raw, &r); err != nil {
		return "", err
	}
	r.Targets = r.targets()
	return r.Markdown(), nil
}

// Markdown renders the result as a section for BENCHMARKS.md: how it was
// measured, a table per payload, the highest rate each setup held, and the
// design targets.
func (r *Result) Markdown() string {
	var b strings.Builder
	kind := "full run"
	if r.Smoke {
		kind = "smoke run (one low rate, short attacks: a check that everything works, not a measurement)"
	}
	fmt.Fprintf(&b, "## Edge overhead\n\n")
	fmt.Fprintf(&b, "What each way of routing a request adds to its latency over calling the runner directly "+
		"(%s, %s).\n\n", kind, r.Started.Format("2006-01-02"))

	fmt.Fprintf(&b, "**Method.** Every setup ends at the same simulated runner with no inference time, no load time "+
		"and no concurrency limit, so the latency is the path's. The paths:\n\n")
	for _, p := range pathOrder {
		fmt.Fprintf(&b, "- `%s`: %s\n", p, pathDesc[p])
	}
	fmt.Fprintf(&b, "\nSwitchyard's config has two pools on that runner and two routes: `/hdr/` picks the pool with "+
		"`int(headers[\"x-pixels\"]) <= 1048576` (headers only: Envoy sends ext_proc the headers), every other path with "+
		"`body.width * body.height <= 1048576` (Envoy buffers the body and sends it to ext_proc). The router apps apply "+
		"the same rules (on `/hdr/` they read the header and pass the body on unparsed; elsewhere they parse the whole "+
		"JSON body: `encoding/json` into a struct, Python's `json.loads`) and forward the bytes received. Every "+
		"request carries an `x-fal-runner-hint` header. "+
		"Envoy %s runs with `--concurrency %d` in both Envoy setups; \"Envoy alone\" is a static bootstrap "+
		"(one listener, one static cluster, the same connection-manager settings as switchyard's, no ext_proc, "+
		"no retry policy).\n\n", r.EnvoyVersion, r.EnvoyConcurrency)
	fmt.Fprintf(&b, "Load: vegeta's attacker (library, in the benchmark process) at a constant rate, keep-alive "+
		"HTTP/1.1, open model (a slow answer does not delay the next request); latencies are vegeta's (request "+
		"written to response body read) and its t-digest percentiles. Rates %s req/s (the 1 MB setups at a tenth "+
		"of each); per setup and rate a "+
		"%.1f s warm-up, then %.1f s measured in %d round(s). Within each rate the setups take turns, the "+
		"order rotating every round, so that they share the machine's noise instead of each getting its own "+
		"stretch of it. A setup that misses %.0f %% success or has a p99 over %v at a rate is not tried at higher "+
		"rates. **Highest rate held**: the highest rate tried with p99 < %g ms and ≥ %.1f %% success.\n\n",
		joinInts(r.Rates), r.WarmUpSeconds, r.DurationSeconds, r.Rounds, 100*saturatedSuccess, saturatedP99,
		r.SLOP99Ms, 100*r.SLOSuccess)
	fmt.Fprintf(&b, "Each cell's p50, p90 and p99 are those of its median round (vegeta's percentiles of that "+
		"round), so that one round disturbed by other work on the machine does not decide it; max and success are "+
		"over all rounds, and the JSON keeps every round and the all-rounds p99.\n\n")
	fmt.Fprintf(&b, "Machine: %d CPUs shared by everything. The load generator has the benchmark's Go process (%s) "+
		"to itself; the runner, the Go router app, the switchyard stack (`stack.Start`: switchyard serve and its "+
		"Envoy), the static Envoy and the Python router (Python %s, one uvicorn worker) are processes of their own, "+
		"so every hop pays the same cross-process wake-ups. These machines are noisy and other work may run beside "+
		"the benchmark: read differences of about 0.1 ms at p50, or a few tenths of a ms at p99, as noise, and "+
		"compare setups within one run only.\n\n",
		r.CPUs, r.GoVersion, r.PythonVersion)
	fmt.Fprintf(&b, "**CPU ms / 1k req** is what a path costs the machine: the CPU time (utime + stime from "+
		"`/proc/<pid>/stat`) of the setup's own processes, read just before and just after each measured attack "+
		"(not the warm-ups) and summed over the rounds, divided by the requests sent, per 1,000. The processes: the "+
		"static Envoy; the switchyard stack process (which runs switchyard's server) and its Envoy child, shown "+
		"apart; the Go router app; the Python router's process and any children. Neither the load generator nor "+
		"the runner counts, so `direct` has none. The kernel counts in 10 ms ticks, so a cell with few requests "+
		"(a smoke run, the 1 MB rows) is coarse; a process's background work (timers, stats) during the attack "+
		"counts too.\n\n")

	for _, payload := range []string{PayloadHeaders, Payload64KB, Payload1MB} {
		var rows []SetupResult
		for _, p := range pathOrder {
			if s := r.find(p, payload); s != nil {
				rows = append(rows, *s)
			}
		}
		if len(rows) == 0 {
			continue
		}
		fmt.Fprintf(&b, "### %s\n\n", payloadTitle[payload])
		b.WriteString("| setup | req/s | p50 ms | p90 ms | p99 ms | max ms | success | added vs direct p50 / p99 | added vs Envoy alone p50 / p99 | CPU ms / 1k req |\n")
		b.WriteString("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n")
		for _, s := range rows {
			for _, rr := range s.Rates {
				if rr.Skipped != "" {
					fmt.Fprintf(&b, "| %s | %d | — | — | — | — | — | %s | | |\n", s.Path, rr.Rate, rr.Skipped)
					continue
				}
				fmt.Fprintf(&b, "| %s | %d | %.2f | %.2f | %s | %.1f | %s | %s | %s | %s |\n", s.Path, rr.Rate,
					rr.P50Ms, rr.P90Ms, bold(fmt.Sprintf("%.2f", rr.P99Ms), rr.Holds), rr.MaxMs,
					successPct(rr.Success), addedCell(rr.AddedVsDirect), addedCell(rr.AddedVsEnvoy), cpuCell(rr.CPU))
			}
		}
		b.WriteString("\np99 in bold: the rate is held (p99 < 10 ms, ≥ 99.9 % success).\n\n")
	}

	fmt.Fprintf(&b, "### Highest rate held (p99 < %g ms, ≥ %.1f %% success; tried: %s req/s, 1 MB at a tenth)\n\n",
		r.SLOP99Ms, 100*r.SLOSuccess, joinInts(r.Rates))
	b.WriteString("| setup | headers only | 64 KB body | 1 MB body |\n|---|--:|--:|--:|\n")
	for _, p := range pathOrder {
		fmt.Fprintf(&b, "| %s", p)
		for _, payload := range []string{PayloadHeaders, Payload64KB, Payload1MB} {
			s := r.find(p, payload)
			switch {
			case s == nil:
				b.WriteString(" | not run")
			case s.MaxRate == 0:
				b.WriteString(" | none")
			default:
				fmt.Fprintf(&b, " | %d", s.MaxRate)
			}
		}
		b.WriteString(" |\n")
	}

	b.WriteString("\n### Targets (reported, not asserted)\n\n| target | req/s | measured | bar | met |\n|---|--:|--:|--:|---|\n")
	for _, t := range r.Targets {
		met := "not measured"
		if t.Met != nil {
			met = "no"
			if *t.Met {
				met = "yes"
			}
		}
		if t.Note != "" {
			met += " (" + t.Note + ")"
		}
		measured, bar := "—", fmt.Sprintf("%+.2f ms", t.LimitMs)
		if t.Met != nil {
			measured = fmt.Sprintf("%+.2f ms", t.MeasuredMs)
		}
		if t.Rates {
			measured, bar = fmt.Sprintf("%.0f req/s", t.MeasuredMs), fmt.Sprintf("%.0f req/s (Go router)", t.LimitMs)
		} else if strings.Contains(t.Name, "Go router") {
			bar = "—"
			if t.Met != nil {
				bar = fmt.Sprintf("%+.2f ms (Go router)", t.LimitMs)
			}
		}
		rate := "any tried"
		if t.Rate > 0 {
			rate = fmt.Sprint(t.Rate)
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s |\n", t.Name, rate, measured, bar, met)
	}
	b.WriteString("\n")
	return b.String()
}

func addedCell(a *Added) string {
	if a == nil {
		return ""
	}
	return fmt.Sprintf("%+.2f / %+.2f", a.P50Ms, a.P99Ms)
}

// cpuCell is "41 (switchyard 12 + Envoy 29)", or the total alone for a
// setup without parts; empty when not measured.
func cpuCell(c *CPUCost) string {
	if c == nil {
		return ""
	}
	s := cpuMs(c.MsPer1000)
	if c.SwitchyardMsPer1000 != nil && c.EnvoyMsPer1000 != nil {
		s += fmt.Sprintf(" (switchyard %s + Envoy %s)", cpuMs(*c.SwitchyardMsPer1000), cpuMs(*c.EnvoyMsPer1000))
	}
	return s
}

// cpuMs prints a CPU figure in whole milliseconds, to a tenth under 10.
func cpuMs(f float64) string {
	if f < 10 {
		return fmt.Sprintf("%.1f", f)
	}
	return fmt.Sprintf("%.0f", f)
}

func successPct(f float64) string {
	if f == 1 {
		return "100 %"
	}
	return fmt.Sprintf("%.2f %%", 100*f)
}

func bold(s string, on bool) string {
	if on {
		return "**" + s + "**"
	}
	return s
}

func joinInts(v []int) string {
	s := make([]string, len(v))
	for i, n := range v {
		s[i] = fmt.Sprint(n)
	}
	return strings.Join(s, ", ")
}
