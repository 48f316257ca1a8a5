"""python -m switchyard_client [--url URL] [--path /] [--hint HINT] JSON

Sends one JSON request to the edge and prints the decision and the answer.
"""

from __future__ import annotations

import argparse
import json
import sys

from .client import SwitchyardClient


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m switchyard_client", description=__doc__.splitlines()[2])
    p.add_argument("payload", help='the JSON body, e.g. \'{"model": "flux-dev", "prompt": "a cat"}\'')
    p.add_argument("--url", default="http://127.0.0.1:10500", help="the edge (default %(default)s)")
    p.add_argument("--path", default="/", help="request path (default %(default)s)")
    p.add_argument("--hint", help="sent as X-Fal-Runner-Hint")
    p.add_argument("--timeout", type=float, default=300.0)
    a = p.parse_args(argv)
    try:
        payload = json.loads(a.payload)
    except ValueError as e:
        p.error(f"payload is not JSON: {e}")
    r = SwitchyardClient(a.url, timeout=a.timeout).post(a.path, payload, hint=a.hint)
    print(f"{r.status}  pool={r.pool}  runner={r.runner}  hint={r.hint}" + (f"  variant={r.variant}" if r.variant else ""))
    print(json.dumps(r.body) if r.body is not None else r.raw.decode("utf-8", "replace"))
    return 0 if r.ok else 1


if __name__ == "__main__":
    sys.exit(main())
