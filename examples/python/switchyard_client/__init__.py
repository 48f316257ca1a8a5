"""A tiny standard-library client for a Switchyard edge.

    from switchyard_client import SwitchyardClient

    r = SwitchyardClient("http://127.0.0.1:10500").post("/", {"model": "flux-dev"}, hint="flux-dev")
    print(r.status, r.hint, r.runner, r.body)
"""

from .client import HINT_HEADER, EdgeResponse, SwitchyardClient

__all__ = ["HINT_HEADER", "EdgeResponse", "SwitchyardClient"]
