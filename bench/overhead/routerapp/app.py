"""The "router app" of fal's multi-app routing pattern, as a Python service.

A CPU service takes every request, decides which GPU backend serves it and
forwards the request there: one more hop than routing at the edge. It is
written the way such a router usually is: FastAPI on uvicorn (uvloop and
httptools), the body parsed with the standard json module (what
Request.json() does), and one shared httpx.AsyncClient with a keep-alive pool
to the backends. The body is forwarded as the bytes received, not re-encoded.

  POST /hdr/...  picks the backend from the x-pixels header (headers only)
  POST /...      parses the JSON body: width * height <= 1048576 goes to the
                 small backend, anything else (or no usable size) to the large
  GET /healthz   200 once serving

The edge-overhead benchmark (package overhead) starts it with
  python app.py --port PORT --small URL --large URL
"""

import argparse
import contextlib
import json

import httpx
import uvicorn
from fastapi import FastAPI, Request, Response

SMALL_LIMIT = 1048576  # pixels: the same rule as the switchyard route

# Hop-by-hop and framing headers are not forwarded; httpx and uvicorn set
# their own.
_SKIP_REQUEST = {"host", "content-length", "connection", "keep-alive", "transfer-encoding", "te", "upgrade"}
_SKIP_RESPONSE = {"content-length", "connection", "keep-alive", "transfer-encoding", "date", "server"}


def create_app(small: str, large: str) -> FastAPI:
    state = {}

    @contextlib.asynccontextmanager
    async def lifespan(_app):
        limits = httpx.Limits(max_connections=1000, max_keepalive_connections=1000)
        async with httpx.AsyncClient(limits=limits, timeout=30.0) as client:
            state["client"] = client
            yield

    app = FastAPI(lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)

    async def forward(backend: str, request: Request, body: bytes) -> Response:
        headers = [(k, v) for k, v in request.headers.items() if k not in _SKIP_REQUEST]
        url = backend + request.url.path
        if request.url.query:
            url += "?" + request.url.query
        upstream = await state["client"].request(request.method, url, content=body, headers=headers)
        out = {k: v for k, v in upstream.headers.items() if k not in _SKIP_RESPONSE}
        return Response(content=upstream.content, status_code=upstream.status_code, headers=out)

    @app.get("/healthz")
    async def healthz():
        return {"ok": True}

    @app.post("/hdr/{path:path}")
    async def route_by_headers(path: str, request: Request):
        try:
            pixels = int(request.headers.get("x-pixels", ""))
        except ValueError:
            pixels = None
        backend = small if pixels is not None and pixels <= SMALL_LIMIT else large
        return await forward(backend, request, await request.body())

    @app.post("/{path:path}")
    async def route_by_body(path: str, request: Request):
        body = await request.body()
        backend = large
        try:
            payload = json.loads(body)
            width, height = payload["width"], payload["height"]
            if isinstance(width, int) and isinstance(height, int) and width * height <= SMALL_LIMIT:
                backend = small
        except (ValueError, KeyError, TypeError):
            pass  # not JSON, or no usable size: the default backend
        return await forward(backend, request, body)

    return app


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--small", required=True, help="base URL of the small-image backend")
    ap.add_argument("--large", required=True, help="base URL of the large-image backend")
    args = ap.parse_args()
    uvicorn.run(
        create_app(args.small.rstrip("/"), args.large.rstrip("/")),
        host=args.host,
        port=args.port,
        loop="uvloop",
        http="httptools",
        access_log=False,
        # Keep idle client connections as long as a load balancer in front
        # would (uvicorn's own default is 5 s).
        timeout_keep_alive=75,
        log_level="warning",
    )


if __name__ == "__main__":
    main()
