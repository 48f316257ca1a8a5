"""SwitchyardClient against a tiny local http.server standing in for the edge."""

from __future__ import annotations

import json
import threading
import urllib.error
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from switchyard_client import EdgeResponse, SwitchyardClient


class FakeEdge(BaseHTTPRequestHandler):
    """Echoes what it got; answers like switchyard would. /error → 503, /text → not JSON."""

    protocol_version = "HTTP/1.1"
    seen: list = []

    def log_message(self, *args):  # keep the test output clean
        pass

    def _answer(self):
        n = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(n) if n else b""
        FakeEdge.seen.append({"method": self.command, "path": self.path, "headers": dict(self.headers), "body": body})
        if self.path == "/text":
            status, data, ctype = 200, b"plain words", "text/plain"
        elif self.path == "/error":
            status, data, ctype = 503, b'{"error": "no healthy upstream"}', "application/json"
        else:
            status, ctype = 200, "application/json"
            data = json.dumps({"echo": json.loads(body) if body else None, "path": self.path}).encode()
        self.send_response(status)
        self.send_header("content-type", ctype)
        self.send_header("content-length", str(len(data)))
        if self.path != "/error":
            self.send_header("x-switchyard-pool", "python")
            self.send_header("x-switchyard-runner", "127.0.0.1:9501")
            self.send_header("x-switchyard-hint", "hit" if self.headers.get("x-fal-runner-hint") else "none")
        if self.path.startswith("/ab"):
            self.send_header("x-switchyard-variant", "model-v2")
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = _answer


@pytest.fixture(scope="module")
def edge():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), FakeEdge)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()
    t.join(5)


@pytest.fixture(autouse=True)
def clear_seen():
    FakeEdge.seen.clear()


def test_post_with_hint(edge):
    r = SwitchyardClient(edge).post("/", {"model": "flux-dev", "prompt": "a cat"}, hint="flux-dev")
    assert isinstance(r, EdgeResponse)
    assert r.ok and r.status == 200
    assert r.body == {"echo": {"model": "flux-dev", "prompt": "a cat"}, "path": "/"}
    assert (r.pool, r.runner, r.variant, r.hint) == ("python", "127.0.0.1:9501", None, "hit")
    (got,) = FakeEdge.seen
    assert got["method"] == "POST"
    assert got["headers"]["X-Fal-Runner-Hint"] == "flux-dev"
    assert got["headers"]["Content-Type"] == "application/json"
    assert json.loads(got["body"]) == {"model": "flux-dev", "prompt": "a cat"}


def test_no_hint_sends_no_hint_header(edge):
    r = SwitchyardClient(edge + "/").post("gen", {"model": "sdxl"})
    assert r.hint == "none"
    assert r.body["path"] == "/gen"
    assert "X-Fal-Runner-Hint" not in FakeEdge.seen[0]["headers"]


def test_variant_custom_hint_header_and_extra_headers(edge):
    c = SwitchyardClient(edge, hint_header="X-My-Hint", headers={"X-User-Id": "u1"})
    r = c.post("/ab", {"prompt": "x"}, hint="v2", headers={"X-Trace": "t"})
    assert r.variant == "model-v2"
    h = FakeEdge.seen[0]["headers"]
    assert (h["X-My-Hint"], h["X-User-Id"], h["X-Trace"]) == ("v2", "u1", "t")
    assert r.headers["x-switchyard-variant"] == "model-v2"  # all headers, lower-case names


def test_get_sends_no_body(edge):
    r = SwitchyardClient(edge).get("/health")
    assert r.status == 200 and r.body == {"echo": None, "path": "/health"}
    assert FakeEdge.seen[0]["method"] == "GET" and FakeEdge.seen[0]["body"] == b""


def test_error_status_is_returned_not_raised(edge):
    r = SwitchyardClient(edge).post("/error", {"model": "x"})
    assert not r.ok and r.status == 503
    assert r.body == {"error": "no healthy upstream"}
    assert r.pool is None and r.runner is None and r.hint is None


def test_non_json_body(edge):
    r = SwitchyardClient(edge).get("/text")
    assert r.status == 200 and r.body is None and r.raw == b"plain words"


@pytest.mark.parametrize("hint", ["模型", "a\r\nx-switchyard-pool: evil", "nul\x00"])
def test_unsendable_hint_is_refused(edge, hint):
    with pytest.raises(ValueError):
        SwitchyardClient(edge).post("/", {}, hint=hint)
    assert FakeEdge.seen == []


def test_environment_proxies_are_ignored(edge, monkeypatch):
    for var in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.setenv(var, "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    assert SwitchyardClient(edge).post("/", {"a": 1}).status == 200


def test_connection_failure_raises():
    with pytest.raises(urllib.error.URLError):
        SwitchyardClient("http://127.0.0.1:9", timeout=5).post("/", {})
