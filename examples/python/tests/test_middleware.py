"""HintsMiddleware, driven directly as an ASGI app (no server)."""

from __future__ import annotations

import asyncio
import logging

import pytest

from switchyard_runner import HINTS_HEADER, HintsMiddleware, encode_hints, filter_hints

HEADER = HINTS_HEADER.encode()


def json_app(body: bytes = b'{"ok": true}', headers=None, on_call=None):
    """A fake ASGI app answering one JSON response; on_call runs before the response starts."""

    async def app(scope, receive, send):
        assert scope["type"] == "http"
        while (await receive()).get("more_body"):
            pass
        if on_call:
            on_call()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": list(headers if headers is not None else [(b"content-type", b"application/json")]),
            }
        )
        await send({"type": "http.response.body", "body": body})

    return app


def call(app, scope_type: str = "http"):
    """Runs one request through app; returns the messages it sent."""
    sent = []

    async def receive():
        return {"type": "http.request", "body": b"{}", "more_body": False}

    async def send(message):
        sent.append(message)

    scope = {"type": scope_type, "method": "POST", "path": "/", "headers": []}
    asyncio.run(app(scope, receive, send))
    return sent


def start_of(sent):
    (start,) = [m for m in sent if m["type"] == "http.response.start"]
    return start


def hint_values(sent):
    return [v for k, v in start_of(sent)["headers"] if bytes(k).lower() == HEADER]


def test_header_on_every_response_reflects_the_current_hints():
    models: list[str] = []
    app = HintsMiddleware(json_app(on_call=lambda: models.insert(0, f"m{len(models)}")), provide_hints=lambda: models)
    assert hint_values(call(app)) == [b"m0"]
    assert hint_values(call(app)) == [b"m1,m0"]  # asked again after the second request's work
    assert hint_values(call(app)) == [b"m2,m1,m0"]


def test_hints_joined_by_commas_in_order_each_once():
    app = HintsMiddleware(json_app(), provide_hints=lambda: ["flux-dev", "sdxl", "flux-dev", "lora:user=42"])
    assert hint_values(call(app)) == [b"flux-dev,sdxl,lora:user=42"]


def test_hints_not_encodable_in_latin1_are_dropped(caplog):
    app = HintsMiddleware(json_app(), provide_hints=lambda: ["flux-dev", "模型", "café", "emoji-🙂"])
    with caplog.at_level(logging.WARNING, logger="switchyard_runner"):
        assert hint_values(call(app)) == ["flux-dev,café".encode("latin-1")]
        call(app)  # a dropped hint is logged once, not after every response
    dropped = [r for r in caplog.records if "dropped" in r.getMessage()]
    assert len(dropped) == 2
    assert all("latin-1" in r.getMessage() for r in dropped)


def test_hints_that_would_change_the_header_are_dropped():
    hints = ["ok", "a,b", "line\r\nx-evil: 1", "tab\there", "", 42, None, "ok-too"]
    app = HintsMiddleware(json_app(), provide_hints=lambda: hints)
    assert hint_values(call(app)) == [b"ok,ok-too"]
    kept, dropped = filter_hints(hints)
    assert kept == ["ok", "ok-too"]
    assert [h for h, _ in dropped] == ["a,b", "line\r\nx-evil: 1", "tab\there", "", 42, None]


def not_implemented():
    raise NotImplementedError  # what fal's App.provide_hints does when an app does not override it


@pytest.mark.parametrize(
    "provider",
    [
        pytest.param(None, id="no provider"),
        pytest.param(lambda: None, id="returns None"),
        pytest.param(not_implemented, id="raises NotImplementedError"),
    ],
)
def test_no_header_when_hints_are_not_provided(provider):
    app = HintsMiddleware(json_app(), provide_hints=provider)
    sent = call(app)
    assert hint_values(sent) == []
    assert start_of(sent)["headers"] == [(b"content-type", b"application/json")]


def test_provider_errors_never_break_the_response(caplog):
    def broken():
        raise RuntimeError("GPU on fire")

    for provider in (broken, lambda: "flux-dev", lambda: 42):  # a failure; a bare string; not iterable
        app = HintsMiddleware(json_app(), provide_hints=provider)
        with caplog.at_level(logging.ERROR, logger="switchyard_runner"):
            sent = call(app)
        assert start_of(sent)["status"] == 200
        assert hint_values(sent) == []
        assert sent[-1] == {"type": "http.response.body", "body": b'{"ok": true}'}
    assert "GPU on fire" in caplog.text


def test_empty_list_gives_an_empty_header():
    app = HintsMiddleware(json_app(), provide_hints=lambda: [])
    assert hint_values(call(app)) == [b""]
    # every hint dropped means the same: this runner holds nothing now
    app = HintsMiddleware(json_app(), provide_hints=lambda: ["ünïcödé-ok-but-模型"])
    assert hint_values(call(app)) == [b""]


def test_app_headers_are_kept():
    headers = [
        (b"content-type", b"application/json"),
        (b"set-cookie", b"a=1"),
        (b"set-cookie", b"b=2"),
        (b"x-request-id", b"abc"),
    ]
    app = HintsMiddleware(json_app(headers=headers), provide_hints=lambda: ["flux-dev"])
    start = start_of(call(app))
    assert start["status"] == 200
    assert start["headers"] == headers + [(HEADER, b"flux-dev")]


def test_an_app_hints_header_is_replaced_only_when_hints_are_provided():
    own = [(b"content-type", b"application/json"), (b"X-Fal-Runner-Hints", b"stale")]
    replaced = HintsMiddleware(json_app(headers=own), provide_hints=lambda: ["fresh"])
    assert start_of(call(replaced))["headers"] == [(b"content-type", b"application/json"), (HEADER, b"fresh")]
    untouched = HintsMiddleware(json_app(headers=own), provide_hints=lambda: None)
    assert start_of(call(untouched))["headers"] == own


def test_streaming_response_gets_the_header_on_its_start():
    calls = []

    def provide():
        calls.append(1)
        return ["flux-dev"]

    async def streaming(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/event-stream")]})
        for i in range(3):
            await send({"type": "http.response.body", "body": f"data: {i}\n\n".encode(), "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    sent = call(HintsMiddleware(streaming, provide_hints=provide))
    assert [m["type"] for m in sent] == ["http.response.start"] + ["http.response.body"] * 4
    assert hint_values(sent) == [b"flux-dev"]
    assert [m["body"] for m in sent[1:]] == [b"data: 0\n\n", b"data: 1\n\n", b"data: 2\n\n", b""]
    assert calls == [1]  # asked once per response, not per chunk


def test_async_provider():
    async def provide():
        await asyncio.sleep(0)
        return ("a", "b")

    assert hint_values(call(HintsMiddleware(json_app(), provide_hints=provide))) == [b"a,b"]


def test_provider_found_on_the_app_object():
    class Runner:
        def __init__(self):
            self.inner = json_app()

        def provide_hints(self):
            return ["from-the-app"]

        async def __call__(self, scope, receive, send):
            await self.inner(scope, receive, send)

    assert hint_values(call(HintsMiddleware(Runner()))) == [b"from-the-app"]


def test_other_scopes_pass_through_untouched():
    seen = []

    async def app(scope, receive, send):
        seen.append(scope["type"])
        await send({"type": "lifespan.startup.complete"})

    def provide():
        raise AssertionError("provide_hints must not be called outside http")

    for kind in ("lifespan", "websocket"):
        assert call(HintsMiddleware(app, provide_hints=provide), scope_type=kind) == [{"type": "lifespan.startup.complete"}]
    assert seen == ["lifespan", "websocket"]


def test_custom_header_name_and_argument_checks():
    app = HintsMiddleware(json_app(), provide_hints=lambda: ["x"], header_name="x-my-hints")
    assert (b"x-my-hints", b"x") in start_of(call(app))["headers"]
    with pytest.raises(ValueError):
        HintsMiddleware(json_app(), provide_hints=lambda: [], header_name="X-Upper")
    with pytest.raises(TypeError):
        HintsMiddleware(json_app(), provide_hints=["not", "callable"])


def test_encode_hints():
    assert encode_hints(None) is None
    assert encode_hints([]) == b""
    assert encode_hints(iter(["a", "b", "a"])) == b"a,b"
    assert encode_hints({"k1": 1, "k2": 2}.keys()) == b"k1,k2"  # fal's seed returns dict keys
    with pytest.raises(TypeError):
        encode_hints("flux-dev")
