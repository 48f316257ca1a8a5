"""Registration: the bearer token on every call, re-read from its file, refusals raised."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from switchyard_runner import Registration, RegistrationError

TOKEN = "runner-token-0123456789"


class FakeAdmin:
    """An admin API that accepts one bearer token and records every call."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str, object]] = []
        self.accepted = TOKEN
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self) -> None:
                n = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(n)) if n else None
                auth = self.headers.get("Authorization", "")
                fake.calls.append((self.command, self.path, auth, body))
                status = 200 if auth == f"Bearer {fake.accepted}" else 401
                payload = b"{}" if status == 200 else b'{"error": "unauthorized"}'
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_PUT = do_DELETE = _handle

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def admin():
    a = FakeAdmin()
    yield a
    a.close()


def test_registers_renews_and_drains_with_the_token(admin, tmp_path):
    tok = tmp_path / "runner.token"
    tok.write_text(TOKEN + "\n")
    reg = Registration(admin.url, pool="a100", address="127.0.0.1:9001", ttl=0.3, token_file=str(tok))
    reg.start()
    # Rotation: the file changes, and the next renewal sends the new token.
    admin.accepted = "rotated-token-0123456789"
    tok.write_text("rotated-token-0123456789")
    deadline = threading.Event()
    for _ in range(50):
        if any(c[2] == "Bearer rotated-token-0123456789" for c in admin.calls):
            break
        deadline.wait(0.05)
    reg.stop()
    methods = [c[0] for c in admin.calls]
    assert methods[0] == "PUT" and methods[-1] == "DELETE" and methods.count("PUT") >= 2
    assert all(c[1] == "/v1/pools/a100/runners/127.0.0.1:9001" for c in admin.calls)
    assert admin.calls[0][2] == f"Bearer {TOKEN}" and admin.calls[0][3] == {"ttl_seconds": 0.3}
    assert admin.calls[-1][2] == "Bearer rotated-token-0123456789"


def test_a_refused_registration_raises(admin):
    reg = Registration(admin.url, pool="a100", address="127.0.0.1:9001", token="wrong-token-0123456789")
    with pytest.raises(RegistrationError, match="401"):
        reg.start()
    with pytest.raises(RegistrationError):
        Registration(admin.url, pool="a100", address="127.0.0.1:9001").register()  # no token at all


def test_arguments_are_checked(tmp_path):
    with pytest.raises(ValueError):
        Registration("http://x", pool="p", address="a:1", ttl=0)
    with pytest.raises(ValueError):
        Registration("http://x", pool="p", address="a:1", token="t", token_file="f")
    empty = tmp_path / "empty.token"
    empty.write_text("\n")
    with pytest.raises(ValueError, match="empty"):
        Registration("http://x", pool="p", address="a:1", token_file=str(empty)).token()


TESTDATA = __import__("pathlib").Path(__file__).parent / "testdata"  # a test CA, the admin's and a runner's certificates


def test_registers_over_https_with_a_client_certificate():
    import ssl

    admin = FakeAdmin()
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(TESTDATA / "admin.crt", TESTDATA / "admin.key")
    server_ctx.load_verify_locations(TESTDATA / "ca.crt")
    server_ctx.verify_mode = ssl.CERT_REQUIRED
    admin.server.socket = server_ctx.wrap_socket(admin.server.socket, server_side=True)
    url = admin.url.replace("http://", "https://")
    try:
        client_ctx = ssl.create_default_context(cafile=str(TESTDATA / "ca.crt"))
        client_ctx.load_cert_chain(TESTDATA / "runner.crt", TESTDATA / "runner.key")
        Registration(url, pool="a100", address="127.0.0.1:9001", token=TOKEN, ssl_context=client_ctx).register()
        assert admin.calls[-1][:3] == ("PUT", "/v1/pools/a100/runners/127.0.0.1:9001", f"Bearer {TOKEN}")
        # Without the client certificate the handshake is refused.
        no_cert = ssl.create_default_context(cafile=str(TESTDATA / "ca.crt"))
        with pytest.raises(Exception):
            Registration(url, pool="a100", address="127.0.0.1:9001", token=TOKEN, ssl_context=no_cert, timeout=2).register()
    finally:
        admin.close()
