"""Keep a runner registered with a Switchyard admin API, with a bearer token.

    from switchyard_runner import Registration

    reg = Registration("http://switchyard:18001", pool="a100", address="10.0.0.7:8000",
                       token_file="/run/secrets/switchyard-runner-token")
    reg.start()      # registers now, renews every ttl/3 in a thread
    ...
    reg.stop()       # deregisters: the edge drains this runner

The token file is re-read at every renewal, so a rotated token is picked up
without a restart. Standard library only.
"""

from __future__ import annotations

import json
import logging
import ssl
import threading
import urllib.error
import urllib.request
from pathlib import Path
from typing import Optional

log = logging.getLogger("switchyard_runner.registration")

class RegistrationError(Exception):
    """The admin API refused the registration (a 4xx): retrying will not help."""


class Registration:
    def __init__(
        self,
        admin_url: str,
        *,
        pool: str,
        address: str,
        ttl: float = 10.0,
        token: Optional[str] = None,
        token_file: Optional[str] = None,
        timeout: Optional[float] = None,
        ssl_context: Optional[ssl.SSLContext] = None,
    ) -> None:
        if ttl <= 0:
            raise ValueError("ttl must be positive")
        if token is not None and token_file is not None:
            raise ValueError("give token or token_file, not both")
        self.url = f"{admin_url.rstrip('/')}/v1/pools/{pool}/runners/{address}"
        self.ttl = ttl
        self._token = token
        self._token_file = token_file
        self._timeout = timeout if timeout is not None else ttl / 3
        # For an https admin URL (server.admin_tls): the CA to trust and, with
        # admin_auth.client_certificates, the runner's client certificate
        # (ssl.create_default_context(cafile=...).load_cert_chain(...)).
        self._opener = urllib.request.build_opener(
            urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=ssl_context)
        )
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def token(self) -> Optional[str]:
        """The bearer token to send, read from the file each time when there is one."""
        if self._token_file is not None:
            tok = Path(self._token_file).read_text().strip()
            if not tok:
                raise ValueError(f"token file {self._token_file} is empty")
            return tok
        return self._token

    def _send(self, method: str) -> None:
        data = json.dumps({"ttl_seconds": self.ttl}).encode() if method == "PUT" else None
        req = urllib.request.Request(self.url, data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        tok = self.token()
        if tok:
            req.add_header("Authorization", f"Bearer {tok}")
        try:
            with self._opener.open(req, timeout=self._timeout) as resp:
                resp.read()
        except urllib.error.HTTPError as e:
            body = e.read().decode(errors="replace").strip()
            if 400 <= e.code < 500:
                raise RegistrationError(f"{method} {self.url}: {e.code}: {body}") from None
            raise

    def register(self) -> None:
        """Register (or renew) once."""
        self._send("PUT")

    def deregister(self) -> None:
        """Deregister once: the edge drains the runner."""
        self._send("DELETE")

    def start(self) -> None:
        """Register now (a refusal raises), then renew every ttl/3 in a daemon thread."""
        self.register()
        self._thread = threading.Thread(target=self._renew, name="switchyard-registration", daemon=True)
        self._thread.start()

    def _renew(self) -> None:
        while not self._stop.wait(self.ttl / 3):
            try:
                self.register()
            except Exception as e:  # the next beat tries again
                log.warning("renewing registration: %s", e)

    def stop(self) -> None:
        """Stop renewing and deregister."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.deregister()
