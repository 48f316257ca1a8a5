package controlplane

import (
	"fmt"
	"strings"
)

// Markdown is the control-plane section of BENCHMARKS.md.
func (r *Result) Markdown() string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }

	w("## Control plane\n\n")
	w("%s; %d CPUs, %s, %s/%s; the run took %.0f s.\n\n", runKind(r.Options), r.Machine.CPUs, r.Machine.GoVersion, r.Machine.OS, r.Machine.Arch, r.Seconds)

	w("### Runner registration → Envoy\n\n")
	w("Switchyard (in-process) and the real Envoy 1.40 serve one pool of N endpoints: N−1 static runners at loopback addresses where nothing listens (`127.a.b.c:1`) and one live HTTP runner "+
		"registered with `PUT /v1/pools/big/runners/{addr}`. *In Envoy*: from that call until Envoy's `cluster.pool_big.membership_total` "+
		"gauge reaches N (admin `/stats` polled every %v). *Routed*: from that call until the first request Envoy sends to the new runner "+
		"arrives there, with a probe sent through Envoy every %v whose hint only the new runner can win (every static runner first got one "+
		"loading mark, so a miss goes to the one runner without hints: the new one). *Gone*: from `DELETE` of the (idle) runner until Envoy no longer holds the host. "+
		"%d registrations per size, min / p50 / max in ms. Memory is read after them: switchyard's Go heap after a GC, live / in use (this process, "+
		"benchmark driver included), Envoy's resident set and its allocator's bytes in use (admin `/memory`); Envoy holds no connections "+
		"to the static runners.\n\n",
		pollInterval, probeInterval, r.Options.Repeats)
	w("| endpoints | in Envoy (ms) | routed (ms) | gone (ms) | switchyard heap | Envoy RSS | Envoy heap | start-up |\n")
	w("|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, g := range r.Registration {
		w("| %s | %s | %s | %s | %s / %s | %s | %s | %.1f s |\n", thousands(g.Endpoints), mmm(g.Known), mmm(g.Routed), mmm(g.Removed),
			mib(g.SwitchyardHeapBytes), mib(g.SwitchyardHeapInuseBytes), mib(g.EnvoyRSSBytes), mib(g.EnvoyAllocatedBytes), g.StartupSeconds)
	}
	rot := 0
	for _, g := range r.Registration {
		rot += g.HintRotations
	}
	w("\nProbe hints that another runner won: %d (0: every probe's decision named the new runner).\n\n", rot)
	t := r.Target
	verdict := "**not met**"
	switch {
	case t.Met:
		verdict = "**met**"
	case t.Endpoints < targetEndpoints:
		verdict = fmt.Sprintf("not checked (the largest pool run had %s endpoints)", thousands(t.Endpoints))
	}
	w("Target: %s — %s: worst registration → routed at %s endpoints was %s ms.\n\n", t.Text, verdict, thousands(t.Endpoints), num(t.MaxMS))

	w("### ADS fan-out\n\n")
	w("Simulated Envoys (real gRPC ADS streams to switchyard's xDS server, one connection each, in the same process) ask for CDS, then EDS "+
		"for every EDS cluster, and ACK every response; Envoy is stopped. Each push registers one more runner in the pool through the admin "+
		"API; *per client* is the time from that call until a client receives the new EDS version (every client, every push), *all clients* "+
		"until the last one has it (one sample per push). Clients and server share the machine's %d CPUs, so these are upper bounds. In ms.\n\n",
		r.Machine.CPUs)
	w("| endpoints | clients | pushes | per client p50 | p99 | max | all clients p50 | max | delivered |\n")
	w("|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, f := range r.Fanout {
		w("| %s | %d | %d | %s | %s | %s | %s | %s | %d/%d |\n", thousands(f.Endpoints), f.Clients, f.Pushes,
			num(f.PerClient.P50), num(f.PerClient.P99), num(f.PerClient.Max), num(f.AllClients.P50), num(f.AllClients.Max),
			f.Delivered, f.Clients*f.Pushes)
	}
	return b.String()
}

func runKind(o Options) string {
	if o.Smoke {
		return "Smoke run (small sizes, for CI)"
	}
	return "Full run"
}

// mmm is "min / p50 / max".
func mmm(d Dist) string { return num(d.Min) + " / " + num(d.P50) + " / " + num(d.Max) }

func num(v float64) string {
	switch {
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	}
	return fmt.Sprintf("%.2f", v)
}
