"""Runner-side helpers for Switchyard: report routing hints from any ASGI app.

    from switchyard_runner import HintsMiddleware

    app = HintsMiddleware(my_asgi_app, provide_hints=lambda: list(loaded_models))

See :class:`HintsMiddleware` for the rules of the ``X-Fal-Runner-Hints`` header, and
:class:`Registration` to keep a runner registered with a bearer token
(``server.admin_auth``).
"""

from .hints import HINTS_HEADER, HintsMiddleware, HintsProvider, encode_hints, filter_hints
from .registration import Registration, RegistrationError

__all__ = [
    "HINTS_HEADER",
    "HintsMiddleware",
    "HintsProvider",
    "Registration",
    "RegistrationError",
    "encode_hints",
    "filter_hints",
]
