"""A tiny client for a Switchyard edge: JSON in, JSON and the routing decision out.

Standard library only (``urllib``). Proxies from the environment are ignored:
the edge is addressed directly.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Optional

__all__ = ["HINT_HEADER", "EdgeResponse", "SwitchyardClient"]

#: The request header that carries the hint (switchyard's ``hints.request_headers``).
HINT_HEADER = "X-Fal-Runner-Hint"

_NO_BODY = object()


@dataclass(frozen=True)
class EdgeResponse:
    """One answer from the edge.

    ``pool``, ``runner``, ``variant`` and ``hint`` are switchyard's decision
    headers (``x-switchyard-pool``, ``-runner``, ``-variant``, ``-hint``), None
    when absent. ``hint`` is ``hit``, ``miss``, ``busy`` or ``none``.
    """

    status: int
    body: Any  # the parsed JSON body; None when empty or not JSON (see raw)
    pool: Optional[str] = None
    runner: Optional[str] = None
    variant: Optional[str] = None
    hint: Optional[str] = None
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)  # lower-case names
    raw: bytes = field(default=b"", repr=False)

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


def _check_header_value(name: str, value: str) -> None:
    try:
        raw = value.encode("latin-1")
    except UnicodeEncodeError:
        raise ValueError(f"{name} {value!r} cannot be sent in an HTTP header (not latin-1)") from None
    if any((b < 0x20 and b != 0x09) or b == 0x7F for b in raw):
        raise ValueError(f"{name} {value!r} holds a control character")


class SwitchyardClient:
    """Sends JSON requests to the edge at ``base_url``.

    >>> c = SwitchyardClient("http://127.0.0.1:10500")
    >>> r = c.post("/", {"model": "flux-dev", "prompt": "a cat"}, hint="flux-dev")
    >>> r.status, r.hint, r.runner, r.body["model"]

    Non-2xx answers are returned, not raised (``r.ok`` is False; the edge's own
    errors are JSON ``{"error": ...}``); connection failures raise
    :class:`urllib.error.URLError` (or :class:`OSError`). The client keeps no
    connection open, so one instance can be shared by threads.
    """

    def __init__(
        self,
        base_url: str,
        *,
        timeout: float = 300.0,
        hint_header: str = HINT_HEADER,
        headers: Optional[Mapping[str, str]] = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.hint_header = hint_header
        self.headers = dict(headers or {})
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def post(self, path: str = "/", payload: Any = None, **kw: Any) -> EdgeResponse:
        """POST ``payload`` as JSON (``None`` sends ``null``)."""
        return self.request("POST", path, payload, **kw)

    def get(self, path: str = "/", **kw: Any) -> EdgeResponse:
        return self.request("GET", path, **kw)

    def request(
        self,
        method: str,
        path: str,
        payload: Any = _NO_BODY,
        *,
        hint: Optional[str] = None,
        headers: Optional[Mapping[str, str]] = None,
        timeout: Optional[float] = None,
    ) -> EdgeResponse:
        """Send one request; ``hint`` goes in the hint header when given."""
        if not path.startswith("/"):
            path = "/" + path
        h = {"Accept": "application/json", **self.headers, **(headers or {})}
        data = None
        if payload is not _NO_BODY:
            data = json.dumps(payload).encode("utf-8")
            h["Content-Type"] = "application/json"
        if hint is not None:
            _check_header_value("hint", hint)
            h[self.hint_header] = hint
        req = urllib.request.Request(self.base_url + path, data=data, headers=h, method=method)
        try:
            with self._opener.open(req, timeout=self.timeout if timeout is None else timeout) as resp:
                return _response(resp.status, resp.headers, resp.read())
        except urllib.error.HTTPError as e:  # a non-2xx answer is still an answer
            with e:
                return _response(e.code, e.headers, e.read())


def _response(status: int, message: Any, raw: bytes) -> EdgeResponse:
    headers: dict[str, str] = {}
    for name, value in message.items():
        name = name.lower()
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    body = None
    if raw:
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
    return EdgeResponse(
        status=status,
        body=body,
        pool=headers.get("x-switchyard-pool"),
        runner=headers.get("x-switchyard-runner"),
        variant=headers.get("x-switchyard-variant"),
        hint=headers.get("x-switchyard-hint"),
        headers=headers,
        raw=raw,
    )
