"""Report a runner's routing hints to the edge after every HTTP response.

The edge (switchyard, or fal's router) reads the ``X-Fal-Runner-Hints``
response header to learn what each runner is specialised for right now,
typically the models it holds in memory, and sends requests whose
``X-Fal-Runner-Hint`` matches one of them to that runner.

:class:`HintsMiddleware` wraps any ASGI application. When the application
starts an HTTP response (``http.response.start``) the middleware asks
``provide_hints()`` for the current hints and sets the header on that
response. Nothing else of the response changes, and streamed responses work
the same way because the header goes out with the response start.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any, Optional, Union

__all__ = ["HINTS_HEADER", "HintsMiddleware", "HintsProvider", "encode_hints", "filter_hints"]

#: The response header the edge reads (switchyard's ``hints.response_header``).
HINTS_HEADER = "x-fal-runner-hints"

#: ``provide_hints``: no arguments; returns hints (any iterable of ``str``) or
#: ``None``, directly or as an awaitable. Raising :class:`NotImplementedError`
#: means the same as returning ``None``: "this runner gives no hints".
HintsProvider = Callable[[], Union[Optional[Iterable[str]], Awaitable[Optional[Iterable[str]]]]]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

log = logging.getLogger("switchyard_runner")

# How many distinct dropped hints one middleware warns about; after that it
# stays quiet, so a misbehaving provider cannot flood the log.
_MAX_WARNED = 256


def _droppable(hint: object) -> Optional[str]:
    """Why ``hint`` cannot be sent in the header, or None when it can."""
    if not isinstance(hint, str):
        return f"not a string ({type(hint).__name__})"
    if hint == "":
        return "empty"
    try:
        raw = hint.encode("latin-1")
    except UnicodeEncodeError:
        return "not encodable in latin-1"
    if b"," in raw:
        return "contains a comma (the separator)"
    if any(b < 0x20 or b == 0x7F for b in raw):
        return "contains a control character"
    return None


def filter_hints(hints: Iterable[object]) -> tuple[list[str], list[tuple[object, str]]]:
    """Split ``hints`` into the ones that can be sent and the dropped ones.

    Returns ``(kept, dropped)``: ``kept`` in the order given, each once;
    ``dropped`` as ``(hint, reason)`` pairs. A hint is dropped when it is not a
    ``str``, is empty, cannot be encoded in latin-1 (what HTTP header values are
    on the wire in ASGI), or holds a comma or a control character (either would
    change what the edge reads, or make the server refuse the whole response).
    """
    if isinstance(hints, (str, bytes, bytearray)):
        raise TypeError("hints must be an iterable of strings, not a single string")
    kept: list[str] = []
    seen: set[str] = set()
    dropped: list[tuple[object, str]] = []
    for h in hints:
        reason = _droppable(h)
        if reason is not None:
            dropped.append((h, reason))
        elif h not in seen:
            seen.add(h)  # type: ignore[arg-type]
            kept.append(h)  # type: ignore[arg-type]
    return kept, dropped


def encode_hints(hints: Optional[Iterable[object]]) -> Optional[bytes]:
    """The header value for ``hints``: the sendable ones joined by commas.

    ``None`` gives ``None`` (send no header); an empty iterable, or one whose
    hints were all dropped, gives ``b""`` (send an empty header: "no hints").
    """
    if hints is None:
        return None
    kept, _ = filter_hints(hints)
    return ",".join(kept).encode("latin-1")


class HintsMiddleware:
    """ASGI middleware that sets ``X-Fal-Runner-Hints`` on every HTTP response.

    ``HintsMiddleware(app, provide_hints=callable)``; when ``provide_hints`` is
    omitted, ``app.provide_hints`` is used if ``app`` has one, so an ASGI app
    object with a ``provide_hints`` method needs no argument.

    The header, set when the app sends ``http.response.start``:

    * hints are joined by commas, in the order given, each once;
    * a hint that is not a ``str``, is empty, cannot be encoded in latin-1, or
      holds a comma or a control character is dropped (and logged once);
    * no provider, a provider that returns ``None`` or raises
      :class:`NotImplementedError`: no header is added ("no opinion": the edge
      keeps what it knew). Any other exception is logged and treated the same
      way, so a broken provider never breaks a response;
    * an empty list (or nothing left after dropping): the header with an empty
      value, which tells the edge this runner holds nothing now;
    * every header the app set is kept, except an ``X-Fal-Runner-Hints`` of its
      own, which the middleware's value replaces (only when it sends one).

    Only ``http`` scopes are touched; ``websocket`` and ``lifespan`` pass
    through. ``provide_hints`` may be a plain or an ``async`` function; it runs
    on the event loop once per response, so keep it cheap and non-blocking.
    """

    def __init__(
        self,
        app: ASGIApp,
        provide_hints: Optional[HintsProvider] = None,
        *,
        header_name: str = HINTS_HEADER,
    ) -> None:
        if provide_hints is None:
            provide_hints = getattr(app, "provide_hints", None)
        if provide_hints is not None and not callable(provide_hints):
            raise TypeError("provide_hints must be callable")
        if not header_name or header_name.lower() != header_name or not header_name.isascii():
            raise ValueError("header_name must be a lower-case ASCII header name")
        self.app = app
        self.provide_hints = provide_hints
        self.header_name = header_name
        self._header = header_name.encode("ascii")
        self._warned: set[str] = set()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.provide_hints is None:
            await self.app(scope, receive, send)
            return

        async def send_with_hints(message: Message) -> None:
            if message["type"] == "http.response.start":
                value = await self.current_value()
                if value is not None:
                    headers = [
                        (k, v) for k, v in message.get("headers", ()) if bytes(k).lower() != self._header
                    ]
                    headers.append((self._header, value))
                    message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_hints)

    async def current_value(self) -> Optional[bytes]:
        """Ask the provider and encode its answer: the header value, or None for no header."""
        assert self.provide_hints is not None
        try:
            hints = self.provide_hints()
            if inspect.isawaitable(hints):
                hints = await hints
        except NotImplementedError:
            return None
        except Exception:
            log.exception("provide_hints() failed; this response carries no %s header", self.header_name)
            return None
        if hints is None:
            return None
        try:
            kept, dropped = filter_hints(hints)
        except TypeError as e:
            log.error("provide_hints() returned %r: %s; this response carries no %s header", hints, e, self.header_name)
            return None
        for hint, reason in dropped:
            key = repr(hint)
            if key not in self._warned and len(self._warned) < _MAX_WARNED:
                self._warned.add(key)
                log.warning("hint %s dropped from %s: %s", key, self.header_name, reason)
        return ",".join(kept).encode("latin-1")
