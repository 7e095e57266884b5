"""ASGI middleware around the HTTP API: request ids, the access log and the HTTP metrics.

For every HTTP request:

* **Request id** — an ``X-Request-Id`` the client (or a proxy in front) sent is kept when it
  is 1–128 characters of ``[A-Za-z0-9._:-]``; otherwise a fresh one is made. It is returned as
  ``X-Request-Id`` on the answer and set in :data:`magpie.logs.REQUEST_ID` while the request
  is handled, so every log line of the request carries it.
* **Access log** (``access_log`` setting, on by default) — one INFO line of the logger
  ``magpie.api.access``: method, route template (``/cards/{message_id}``, never the raw path
  with its ids), status, latency, caller (``uid:<uid>`` for a user token, the API key's
  :func:`~magpie.logs.key_id`, or ``-``), client address and request id. Query strings,
  headers and bodies are never logged.
* **Metrics** — ``magpie_http_requests_total{method,route,status}`` and
  ``magpie_http_request_duration_seconds{method,route}``; requests that match no route are
  counted under ``route="unmatched"`` so that scanning for paths cannot grow the series.
"""

from __future__ import annotations

import logging
import random
import re
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from magpie.core.access import Credential
from magpie.logs import REQUEST_ID, key_id
from magpie.metrics import HttpMetrics

__all__ = ["REQUEST_ID_HEADER", "Observe", "caller_label"]

access_log = logging.getLogger("magpie.api.access")

#: The header carrying the request id, both ways.
REQUEST_ID_HEADER = "x-request-id"
_VALID_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_RAW_HEADER = REQUEST_ID_HEADER.encode()
#: Fresh request ids: 128 bits from a generator seeded from the OS (ids correlate log lines;
#: they are no secret), as unique as ``uuid4().hex`` and without its ``os.urandom`` system
#: call per request (measured: a tenth of a request's event-loop time under load).
_ids = random.Random()  # noqa: S311 - an id, not a secret (above)
#: Where :func:`magpie.api.auth.authenticate` keeps the caller's credential (``request.state``).
_CREDENTIAL_STATE = "magpie_credential"


def _request_id(scope: Scope) -> str:
    for name, value in scope.get("headers", ()):
        if name == _RAW_HEADER:
            text: str = bytes(value).decode("latin-1")
            if _VALID_ID.fullmatch(text):
                return text
            break
    return f"{_ids.getrandbits(128):032x}"


def _route(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) and path else "unmatched"


def caller_label(state: dict[str, Any] | None, api_key_id: str) -> str:
    """``uid:<uid>`` for a user token, the key id for the API key, ``-`` when the request
    presented no valid credential (read from what authentication left on the request)."""
    found = (state or {}).get(_CREDENTIAL_STATE)
    if not isinstance(found, Credential):
        return "-"
    if found.business:
        return api_key_id
    return "uid:" + ",".join(sorted(found.uids))


class Observe:
    """The middleware (outermost of the API app)."""

    def __init__(
        self, app: ASGIApp, *, metrics: HttpMetrics, api_key: str, access_log: bool
    ) -> None:
        self.app = app
        self._metrics = metrics
        self._key_id = key_id(api_key)
        self._log = access_log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle one request (other scopes pass through)."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _request_id(scope)
        token = REQUEST_ID.set(request_id)
        started = time.perf_counter()
        status = 500  # unless a response starts: an exception escaped the app

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [
                    *message.get("headers", ()),
                    (_RAW_HEADER, request_id.encode()),
                ]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            route = _route(scope)
            self._metrics.observe(scope["method"], route, status, elapsed)
            if self._log and access_log.isEnabledFor(logging.INFO):
                self._write(scope, route, status, elapsed, request_id)
            REQUEST_ID.reset(token)

    def _write(self, scope: Scope, route: str, status: int, elapsed: float, rid: str) -> None:
        client = scope.get("client")
        remote = f"{client[0]}:{client[1]}" if client else "-"
        caller = caller_label(scope.get("state"), self._key_id)
        access_log.info(
            "%s %s %d %.1fms caller=%s remote=%s request_id=%s",
            scope["method"],
            route,
            status,
            elapsed * 1000,
            caller,
            remote,
            rid,
            extra={
                "method": scope["method"],
                "route": route,
                "status": status,
                "latency_ms": round(elapsed * 1000, 3),
                "caller": caller,
                "remote": remote,
                "request_id": rid,
            },
        )
