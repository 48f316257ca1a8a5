"""An example GPU runner: serves any model by name, keeps the last few loaded.

A plain ASGI app (no framework). "Loading" and "inference" are simulated with
``asyncio.sleep``; the model cache is an LRU of ``RUNNER_SLOTS`` models. The
runner's hints are the models it holds, reported after every response by
:class:`switchyard_runner.HintsMiddleware`, so the edge learns to send a
model's requests to the runner that already has it loaded.

    python -m uvicorn runner_app:app --port 9501

Endpoints:

* ``POST /`` (any path but ``/health``) with JSON
  ``{"model": "flux-dev", "prompt": "a cat", "infer_seconds": 0.1}``
  (``infer_seconds`` optional, at most 30) answers
  ``{"runner", "model", "warm", "loaded_models", "output", ...}``.
* ``GET /health`` answers the runner's name, loaded models and in-flight inferences.

Settings (environment): ``RUNNER_NAME`` (default ``runner-<pid>``),
``RUNNER_SLOTS`` (2), ``RUNNER_LOAD_SECONDS`` (1.0),
``RUNNER_INFER_SECONDS`` (0.05).
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections import OrderedDict
from typing import Any, Optional

from switchyard_runner import HintsMiddleware

MAX_BODY = 1 << 20
MAX_INFER_SECONDS = 30.0


class ModelCache:
    """An LRU of loaded models; concurrent requests for a loading model share its load."""

    def __init__(self, slots: int, load_seconds: float) -> None:
        if slots < 1:
            raise ValueError("slots must be at least 1")
        self.slots = slots
        self.load_seconds = load_seconds
        self._models: OrderedDict[str, float] = OrderedDict()  # name -> loaded at; oldest first
        self._loading: dict[str, asyncio.Future[None]] = {}
        self.loads = 0

    def names(self) -> list[str]:
        """Loaded models, most recently used first."""
        return list(reversed(self._models))

    async def get(self, name: str) -> bool:
        """Makes ``name`` loaded and most recently used; True when it already was."""
        if name in self._models:
            self._models.move_to_end(name)
            return True
        pending = self._loading.get(name)
        if pending is not None:
            await asyncio.shield(pending)
            if name in self._models:
                self._models.move_to_end(name)
            return False
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._loading[name] = fut
        try:
            await asyncio.sleep(self.load_seconds)  # stands in for from_pretrained(name).to("cuda")
            self._models[name] = time.time()
            self.loads += 1
            while len(self._models) > self.slots:
                self._models.popitem(last=False)  # evict the least recently used
        finally:
            del self._loading[name]
            fut.set_result(None)
        return False


class Runner:
    """The ASGI app: ``Runner()(scope, receive, send)``; ``provide_hints()`` for the middleware."""

    def __init__(
        self,
        name: Optional[str] = None,
        slots: int = 2,
        load_seconds: float = 1.0,
        infer_seconds: float = 0.05,
    ) -> None:
        self.name = name or f"runner-{os.getpid()}"
        self.cache = ModelCache(slots, load_seconds)
        self.infer_seconds = infer_seconds
        self.in_flight = 0

    @classmethod
    def from_env(cls) -> "Runner":
        return cls(
            name=os.environ.get("RUNNER_NAME") or None,
            slots=int(os.environ.get("RUNNER_SLOTS", "2")),
            load_seconds=float(os.environ.get("RUNNER_LOAD_SECONDS", "1.0")),
            infer_seconds=float(os.environ.get("RUNNER_INFER_SECONDS", "0.05")),
        )

    def provide_hints(self) -> list[str]:
        # The models held right now: a new runner reports none and so matches
        # any request; as it loads models it specialises in them.
        return self.cache.names()

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        status, body = await self.handle(scope, receive)
        await _send_json(send, status, body)

    async def handle(self, scope: dict, receive: Any) -> tuple[int, dict]:
        method, path = scope["method"], scope["path"]
        if path == "/health":
            if method not in ("GET", "HEAD"):
                return 405, {"error": "use GET"}
            return 200, {"runner": self.name, "loaded_models": self.cache.names(), "in_flight": self.in_flight}
        if method != "POST":
            return 405, {"error": "use POST with a JSON body"}
        raw = await _read_body(receive)
        if raw is None:
            return 413, {"error": f"body over {MAX_BODY} bytes"}
        try:
            req = json.loads(raw)
        except ValueError:
            return 400, {"error": "body is not JSON"}
        model = req.get("model") if isinstance(req, dict) else None
        if not isinstance(model, str) or not model:
            return 400, {"error": 'a JSON object with a "model" string is required'}
        infer = req.get("infer_seconds", self.infer_seconds)
        if not isinstance(infer, (int, float)) or isinstance(infer, bool) or not 0 <= infer <= MAX_INFER_SECONDS:
            return 400, {"error": f"infer_seconds must be a number from 0 to {MAX_INFER_SECONDS:g}"}

        self.in_flight += 1
        try:
            started = time.monotonic()
            warm = await self.cache.get(model)
            loaded = time.monotonic()
            await asyncio.sleep(infer)  # stands in for pipeline(prompt)
        finally:
            self.in_flight -= 1
        return 200, {
            "runner": self.name,
            "model": model,
            "warm": warm,
            "load_seconds": round(loaded - started, 3),
            "infer_seconds": round(time.monotonic() - loaded, 3),
            "loaded_models": self.cache.names(),
            "output": f"{model} rendered {str(req.get('prompt', ''))[:80]!r}",
        }


async def _read_body(receive: Any) -> Optional[bytes]:
    chunks, size = [], 0
    while True:
        msg = await receive()
        if msg["type"] == "http.disconnect":
            break
        chunk = msg.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY:
            return None
        chunks.append(chunk)
        if not msg.get("more_body", False):
            break
    return b"".join(chunks)


async def _send_json(send: Any, status: int, body: dict) -> None:
    data = json.dumps(body).encode("utf-8")
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": data})


async def _lifespan(receive: Any, send: Any) -> None:
    while True:
        msg = await receive()
        if msg["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif msg["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


runner = Runner.from_env()
# The middleware finds runner.provide_hints by itself; passing it shows the API.
app = HintsMiddleware(runner, provide_hints=runner.provide_hints)
