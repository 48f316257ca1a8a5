// Package overhead is the edge-overhead benchmark: what each way of routing a
// request adds to its latency over calling the GPU runner directly, at fixed
// request rates.
//
// Every setup ends at the same simulated runner (no inference, no model
// loading, no concurrency limit), so what is measured is the path:
//
//   - direct: client → runner;
//   - envoy: client → Envoy → runner, with a static bootstrap of one listener
//     and one static cluster, no ext_proc ("Envoy alone");
//   - switchyard: client → Envoy + switchyard ext_proc → runner, the real
//     stack from package stack, with a route that reads only headers and one
//     whose rule reads body fields (a BUFFERED body);
//   - go-router and python-router: fal's "router app" pattern, a service that
//     parses the request, picks a backend by the same rule and forwards the
//     request (one more hop). The Go one is in this package; the Python one
//     (FastAPI on uvicorn with an httpx client) is routerapp/app.py, run with
//     the project's .venv python after
//     `.venv/bin/pip install -r bench/overhead/requirements.txt`.
//
// vegeta's attacker drives every setup at each rate and its latency metrics
// and histograms measure them; setups are interleaved within each rate so
// that the noise of a shared 2-core machine falls on all of them alike.
// What a path costs the machine is measured too: the CPU time of its own
// processes (from /proc, neither the load generator's nor the runner's) per
// 1,000 requests; see cpu.go.
//
// The package owns only the benchmark: it starts and stops what it measures
// and never touches the project's state or files.
package overhead
