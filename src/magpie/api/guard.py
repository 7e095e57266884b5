"""Per-request defences of the HTTP API: an ASGI middleware in front of the route table.

For each request, in order:

1. **Client address** — the peer, or behind a trusted proxy the address ``X-Forwarded-For``
   names (:class:`~magpie.guard.TrustedProxies`); it replaces ``scope["client"]``.
2. **The business key** — a request with the API key is counted only against
   ``http_key_rate`` (off by default: the business server is trusted) and passes.
3. **Per address** — every other request spends a token of ``http_ip_rate``.
4. **Credentials** — a request presenting a credential (a user token, or a wrong key) is
   refused while its address has used up ``auth_fail_ip_burst`` failed credentials; it
   spends a token of ``http_token_rate`` for that token, and at most
   ``http_max_inflight_per_token`` requests of one token run at once.
5. **Failures** — an answer 401 whose credential is neither the key nor any user's token
   spends one failure of the address (a user's real token sent to a business-only endpoint
   is a mistake, not a guess; telling them apart costs a token lookup per 401 only).

A refusal is ``429 rate_limited`` with ``Retry-After`` (whole seconds) and counted in
``magpie_refused_total{port="http",rule=…}``. Nothing reaches the route table then.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from starlette.datastructures import Headers
from starlette.responses import JSONResponse

from magpie.api.http import RateLimited, error_response
from magpie.core.auth import api_key_matches, hash_token
from magpie.guard import Buckets, Defences, address_key

__all__ = ["RequestGuard"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Asgi = Callable[[Scope, Receive, Send], Awaitable[None]]

_BEARER = "bearer "
_BUSINESS = "business"


def _credential(headers: Headers) -> str:
    """The presented credential (as :func:`magpie.api.auth.credential` reads it)."""
    value = headers.get("authorization", "")
    if value[: len(_BEARER)].lower() == _BEARER:
        return value[len(_BEARER) :].strip()
    return headers.get("token", "").strip()


class RequestGuard:
    """The middleware (see the module docstring)."""

    def __init__(
        self,
        app: Asgi,
        defences: Defences,
        api_key: str,
        is_user_token: Callable[[str], Awaitable[bool]],
    ) -> None:
        self.app = app
        self._d = defences
        self._api_key = api_key
        self._is_user_token = is_user_token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        ip = address_key(self._client(scope, headers))
        presented = _credential(headers)
        d = self._d
        if presented and api_key_matches(presented, self._api_key):
            if not d.http_key.take(_BUSINESS):
                await self._refuse(scope, receive, send, d.http_key, _BUSINESS, "http_rate_key")
                return
            await self.app(scope, receive, send)
            return
        if not d.http_ip.take(ip):
            await self._refuse(scope, receive, send, d.http_ip, ip, "http_rate_ip")
        elif not presented:
            await self.app(scope, receive, send)
        else:
            await self._with_credential(scope, receive, send, ip, presented)

    def _client(self, scope: Scope, headers: Headers) -> str:
        client = scope.get("client")
        peer = str(client[0]) if client else ""
        proxies = self._d.proxies
        if not proxies.trusts(peer):
            return peer
        real = proxies.client(peer, headers.getlist("x-forwarded-for"))
        scope["client"] = (real, 0)
        return real

    async def _with_credential(
        self, scope: Scope, receive: Receive, send: Send, ip: str, presented: str
    ) -> None:
        d = self._d
        if d.auth_fail_ip.empty(ip):
            await self._refuse(scope, receive, send, d.auth_fail_ip, ip, "auth_fail_ip")
            return
        token = hash_token(presented).hex()
        if not d.http_token.take(token):
            await self._refuse(scope, receive, send, d.http_token, token, "http_rate_token")
            return
        if d.token_inflight.enter(token) is not None:
            d.refused("http", "inflight_token")
            await _limited(1.0)(scope, receive, send)
            return

        async def watch(message: Message) -> None:
            # The failure is counted before the client sees the 401: on a keep-alive
            # connection the next guess may be read while this task still runs.
            if (
                message["type"] == "http.response.start"
                and int(message["status"]) == 401
                and not await self._is_user_token(presented)
            ):
                d.auth_fail_ip.spend(ip)
            await send(message)

        try:
            await self.app(scope, receive, watch)
        finally:
            d.token_inflight.leave(token)

    async def _refuse(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        buckets: Buckets[str],
        key: str,
        rule: str,
    ) -> None:
        self._d.refused("http", rule)
        await _limited(buckets.retry_after(key))(scope, receive, send)


def _limited(retry_after: float) -> JSONResponse:
    """429 with ``Retry-After`` in whole seconds (at least 1)."""
    seconds = max(1, math.ceil(retry_after))
    exc = RateLimited(f"too many requests; retry in {seconds} s", retry_after=seconds)
    return error_response(exc, {"Retry-After": str(seconds)})
