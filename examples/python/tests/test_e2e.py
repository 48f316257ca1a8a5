"""End to end: two runner_app.py runners under uvicorn behind `switchyard up` (real Envoy).

The stack uses the fixed ports of examples/python/switchyard.yaml; a port in
use fails the test with a message saying which one.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from switchyard_client import SwitchyardClient

EXAMPLE = Path(__file__).resolve().parents[1]
REPO = EXAMPLE.parents[1]
CONFIG = EXAMPLE / "switchyard.yaml"
BINARY = REPO / "bin" / "switchyard"

EDGE = "http://127.0.0.1:10500"
ADMIN = "http://127.0.0.1:18501"
RUNNERS = {"127.0.0.1:9501": "py-1", "127.0.0.1:9502": "py-2"}  # address -> RUNNER_NAME
PORTS = {
    9501: "runner py-1 (uvicorn)",
    9502: "runner py-2 (uvicorn)",
    10500: "the edge (Envoy listener 'public')",
    18500: "switchyard's gRPC (server.grpc)",
    18501: "switchyard's admin API (server.admin)",
}
LOAD_SECONDS = 0.5  # the runners' simulated model load
READY = "ready: send requests to"

_direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def get_json(url: str, timeout: float = 5.0):
    with _direct.open(url, timeout=timeout) as r:
        return r.status, dict(r.headers), json.loads(r.read())


def port_in_use(port: int) -> bool:
    # Bind as the servers will (SO_REUSEADDR): fails only when something listens.
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind(("127.0.0.1", port))
        return False
    except OSError:
        return True
    finally:
        s.close()


def accepts(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return True
    except OSError:
        return False


def wait_for(what: str, check, timeout: float, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while True:
        v = check()
        if v:
            return v
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout:g}s")
        time.sleep(interval)


class Stack:
    """The processes of the example: two uvicorn runners and `switchyard up`."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.runners: dict[int, subprocess.Popen] = {}
        self.up: subprocess.Popen | None = None
        self.up_lines: list[str] = []
        self._reader: threading.Thread | None = None
        self.envoy_pid: int | None = None

    # --- start ---------------------------------------------------------------

    def start_runners(self) -> None:
        for addr, name in RUNNERS.items():
            port = int(addr.rsplit(":", 1)[1])
            env = dict(os.environ, RUNNER_NAME=name, RUNNER_LOAD_SECONDS=str(LOAD_SECONDS), RUNNER_INFER_SECONDS="0.02")
            log = open(self.log_dir / f"runner-{port}.log", "wb")
            self.runners[port] = subprocess.Popen(
                [sys.executable, "-m", "uvicorn", "runner_app:app", "--host", "127.0.0.1", "--port", str(port)],
                cwd=EXAMPLE, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            )
            log.close()
        for port, proc in self.runners.items():
            wait_for(f"runner on port {port} accepting", lambda: proc.poll() is not None or accepts(port), 20)
            if proc.poll() is not None:
                raise RuntimeError(f"runner on port {port} exited with {proc.returncode}")

    def start_up(self) -> None:
        stderr = open(self.log_dir / "up.stderr", "wb")
        self.up = subprocess.Popen(
            [str(BINARY), "up", "--config", str(CONFIG), "--envoy-admin-port", "0", "--log-dir", str(self.log_dir / "up")],
            cwd=REPO, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=stderr, text=True, bufsize=1,
        )
        stderr.close()
        ready = threading.Event()

        def read(out):
            for line in out:
                self.up_lines.append(line.rstrip("\n"))
                m = re.search(r"envoy admin .*\(pid (\d+)\)", line)
                if m:
                    self.envoy_pid = int(m.group(1))
                if line.startswith(READY):
                    ready.set()
            ready.set()  # EOF: `up` is gone

        self._reader = threading.Thread(target=read, args=(self.up.stdout,), daemon=True)
        self._reader.start()
        if not ready.wait(30):
            raise TimeoutError(f"`switchyard up` printed no {READY!r} line within 30s")
        if not any(l.startswith(READY) for l in self.up_lines):
            raise RuntimeError(f"`switchyard up` exited ({self.up.wait(5)}) before it was ready")

    def wait_edge(self) -> None:
        # The listener is up; wait until a request really reaches a runner.
        def through():
            try:
                status, _, body = get_json(EDGE + "/health", timeout=2)
                return status == 200 and body.get("runner") in RUNNERS.values()
            except OSError:
                return False

        wait_for("a request through the edge to a runner", through, 15, interval=0.1)

    # --- stop ----------------------------------------------------------------

    def stop(self) -> list[str]:
        """Stops everything it started; returns what went wrong."""
        problems = []
        if self.up is not None and self.up.poll() is None:
            self.up.send_signal(signal.SIGINT)  # what Ctrl-C does: up stops Envoy and serve
            try:
                self.up.wait(20)
            except subprocess.TimeoutExpired:
                self.up.kill()
                self.up.wait()
                problems.append("`switchyard up` did not stop within 20s of SIGINT (killed)")
        if self.up is not None and self.up.returncode not in (0, None):
            problems.append(f"`switchyard up` exited with status {self.up.returncode}")
        if self._reader is not None:
            self._reader.join(5)
        if self.envoy_pid is not None:
            try:
                wait_for("Envoy gone", lambda: not _alive(self.envoy_pid, "envoy"), 5)
            except TimeoutError:
                os.kill(self.envoy_pid, signal.SIGKILL)
                problems.append(f"Envoy (pid {self.envoy_pid}) outlived `switchyard up` (killed)")
        for port, proc in self.runners.items():
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
                    problems.append(f"runner on port {port} did not stop within 10s of SIGTERM (killed)")
        return problems

    def logs(self) -> str:
        parts = ["--- switchyard up (stdout) ---", *self.up_lines]
        for f in sorted(self.log_dir.rglob("*")):
            if f.is_file():
                text = f.read_text(errors="replace")
                parts += [f"--- {f.relative_to(self.log_dir)} (last 4000 chars) ---", text[-4000:]]
        return "\n".join(parts)


def _alive(pid: int, name: str) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmd = f.read()
        with open(f"/proc/{pid}/stat", "rb") as f:
            state = f.read().rsplit(b")", 1)[1].split()[0]
    except OSError:
        return False
    return name.encode() in cmd and state != b"Z"


@pytest.fixture(scope="session")
def stack(tmp_path_factory):
    busy = [f"127.0.0.1:{p} ({what})" for p, what in PORTS.items() if port_in_use(p)]
    if busy:
        pytest.fail(
            "ports needed by examples/python/switchyard.yaml are in use: " + ", ".join(busy)
            + ". Stop whatever listens there (a `switchyard up` or uvicorn left running?) and run again.",
            pytrace=False,
        )
    if not BINARY.exists():
        try:
            subprocess.run(["go", "build", "-o", str(BINARY), "./cmd/switchyard"], cwd=REPO, check=True,
                           capture_output=True, text=True, timeout=300)
        except FileNotFoundError:
            pytest.fail(f"{BINARY} is missing and `go` is not on PATH: run `make build`", pytrace=False)
        except subprocess.CalledProcessError as e:
            pytest.fail(f"go build failed:\n{e.stdout}{e.stderr}", pytrace=False)

    st = Stack(tmp_path_factory.mktemp("stack"))
    try:
        st.start_runners()
        st.start_up()
        st.wait_edge()
    except Exception as e:
        problems = st.stop()
        pytest.fail(f"starting the stack: {e}\n{chr(10).join(problems)}\n{st.logs()}", pytrace=False)
    except BaseException:
        st.stop()
        raise
    yield st
    problems = st.stop()
    if problems:
        pytest.fail("stopping the stack: " + "; ".join(problems) + "\n" + st.logs(), pytrace=False)


@pytest.fixture
def client(stack):
    return SwitchyardClient(EDGE, timeout=30)


def in_flight(addr: str) -> int:
    _, _, body = get_json(ADMIN + "/v1/runners")
    return next(r["in_flight"] for r in body["runners"] if r["address"] == addr)


def settled() -> None:
    """Waits until Envoy's access log has reported every decided request's end.

    switchyard learns a runner's hints from that report, about a millisecond
    after the response; a client that sends its next request the instant the
    last one answered races it (as a real client rarely does).
    """

    def none_awaiting() -> bool:
        with urllib.request.urlopen(ADMIN + "/metrics", timeout=5) as r:
            text = r.read().decode()
        m = re.search(r"^switchyard_requests_awaiting_end (\S+)$", text, re.M)
        return m is not None and float(m.group(1)) == 0

    wait_for("the access log's reports", none_awaiting, timeout=5)


def test_hint_header_affinity(client):
    req = {"model": "flux-dev", "prompt": "a red fox"}
    first = client.post("/", req, hint="flux-dev")
    assert first.status == 200, first
    assert first.pool == "python"
    assert first.hint == "miss"  # no runner holds flux-dev yet
    assert first.runner in RUNNERS
    assert first.body["runner"] == RUNNERS[first.runner]  # the decision names the runner that answered
    assert first.body["warm"] is False
    # switchyard keeps the runner's report to itself by default...
    assert "x-fal-runner-hints" not in first.headers
    # ...but the runner did send it (asked directly, past the edge):
    _, headers, _ = get_json(f"http://{first.runner}/health")
    assert "flux-dev" in headers["x-fal-runner-hints"].split(",")

    settled()
    second = client.post("/", req, hint="flux-dev")
    assert second.status == 200, second
    assert second.hint == "hit"  # learnt from the X-Fal-Runner-Hints of the first response
    assert second.runner == first.runner
    assert second.body["warm"] is True


def test_hint_from_body_model(client):
    req = {"model": "sdxl-turbo", "prompt": "a lighthouse"}  # no hint header: hint_from body.model
    first = client.post("/", req)
    assert first.status == 200, first
    assert first.hint == "miss"
    settled()
    second = client.post("/", req)
    assert second.status == 200, second
    assert second.hint == "hit"
    assert second.runner == first.runner
    assert second.body["warm"] is True


def test_busy_warm_runner_is_passed_over_without_waiting(client):
    model = "sd3-medium"
    warm = client.post("/", {"model": model})
    assert warm.status == 200, warm
    other = next(a for a in RUNNERS if a != warm.runner)
    # Until its end is reported the warm request still counts on its runner,
    # which would send the held request below elsewhere (and the wait for
    # the warm runner's in-flight count would pass on the stale count).
    settled()

    with ThreadPoolExecutor(1) as pool:
        # Hold the warm runner: max_concurrency 1 makes it busy while this runs.
        held = pool.submit(client.post, "/", {"model": model, "infer_seconds": 4})
        wait_for("the held request in flight on the warm runner", lambda: in_flight(warm.runner) >= 1, 10)

        t0 = time.monotonic()
        r = client.post("/", {"model": model}, hint=model)
        took = time.monotonic() - t0
        assert r.status == 200, r
        assert r.hint == "busy"  # the runner holding the hint is busy...
        assert r.runner == other  # ...so another one serves it at once
        assert r.body["warm"] is False  # (at the cost of a model load there)
        assert took < 3, f"took {took:.2f}s: it waited for the busy runner"
        assert not held.done()

        h = held.result(timeout=30)
        assert h.status == 200, h
        assert (h.hint, h.runner) == ("hit", warm.runner)
