"""The HTTP API calls the SDK makes with the user's own token (spec §6, Magpie extensions).

* ``/conversation/sync`` — the conversation list with recent messages after our last seqs;
* ``/channel/messagesync`` — a page of one channel's history (pull up, start inclusive, end
  exclusive);
* ``/message/extra/sync`` — extension rows above a channel's ``extra_version`` cursor, with
  the store epoch (I7) in ``X-Magpie-Epoch`` or, as asked here, an ``envelope``;
* ``/cards/{message_id}/actions`` — see :mod:`magpie.client.cards`.

The token goes in ``Authorization: Bearer``; every body also names the uid (``uid`` /
``login_uid``), which the server checks the token against. :attr:`HttpApi.requests` counts
requests (the benchmark reports it).

The three sync reads change nothing, so an overloaded or briefly store-less node's deliberate
answer — 503 with ``Retry-After`` (``busy``: too many history reads at once, the node's
``history_max_concurrent``; ``store_unavailable``) — is waited out and asked again: after
``Retry-After`` seconds (at most ``read_retry_max``), up to ``read_attempts`` tries in all;
then :class:`~magpie.client.errors.ApiUnavailable` as for any 502/503/504.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from magpie.client.errors import ApiRequestFailed, ApiUnavailable, RateLimited
from magpie.client.model import Channel, Conversation, Message, message_from_json
from magpie.domain.ext import ExtState

__all__ = ["EPOCH_HEADER", "ExtPage", "HistoryPage", "HttpApi", "Recents"]

log = logging.getLogger(__name__)

#: Response header carrying the server store's epoch.
EPOCH_HEADER = "X-Magpie-Epoch"
_UNAVAILABLE = frozenset({502, 503, 504})


@dataclass(frozen=True, slots=True)
class ExtPage:
    """A page of ``/message/extra/sync``: rows ascending by ``extra_version``."""

    epoch: str
    rows: list[ExtState]
    more: bool


@dataclass(frozen=True, slots=True)
class HistoryPage:
    """A page of ``/channel/messagesync``, ascending by seq, and the store epoch."""

    messages: list[Message]
    more: bool
    epoch: str


@dataclass(frozen=True, slots=True)
class Recents:
    """``/conversation/sync``: the conversations and their recent messages."""

    conversations: list[Conversation]
    messages: list[Message]
    version: int
    #: The server store's epoch (``X-Magpie-Epoch``; ``""`` from a server that sends none).
    epoch: str = ""


class HttpApi:
    """The user's HTTP API session."""

    def __init__(
        self,
        base_url: str,
        uid: str,
        token: str,
        *,
        timeout: float,
        transport: httpx.AsyncBaseTransport | None = None,
        read_attempts: int = 3,
        read_retry_max: float = 5.0,
    ) -> None:
        self.uid = uid
        self._read_attempts = read_attempts
        self._read_retry_max = read_retry_max
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            headers={"Authorization": f"Bearer {token}"},
            timeout=timeout,
            transport=transport,
        )
        #: Requests made so far.
        self.requests = 0

    async def close(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    async def request(self, path: str, body: Mapping[str, Any]) -> httpx.Response:
        """POST ``body``; the response whatever its status. :class:`ApiUnavailable` when the
        server cannot be reached."""
        self.requests += 1
        try:
            return await self._http.post(path, json=dict(body))
        except httpx.TransportError as exc:
            raise ApiUnavailable(f"{path}: {type(exc).__name__}: {exc}") from exc

    async def request_as(self, path: str, body: Mapping[str, Any], key: str) -> httpx.Response:
        """POST ``body`` with another credential (the business key); the response whatever
        its status."""
        self.requests += 1
        try:
            return await self._http.post(
                path, json=dict(body), headers={"Authorization": f"Bearer {key}"}
            )
        except httpx.TransportError as exc:
            raise ApiUnavailable(f"{path}: {type(exc).__name__}: {exc}") from exc

    async def get(self, path: str, params: Mapping[str, Any] | None = None) -> httpx.Response:
        """GET with query ``params``; the response whatever its status.
        :class:`ApiUnavailable` when the server cannot be reached."""
        self.requests += 1
        try:
            return await self._http.get(path, params=dict(params or {}))
        except httpx.TransportError as exc:
            raise ApiUnavailable(f"{path}: {type(exc).__name__}: {exc}") from exc

    async def upload(self, path: str, params: Mapping[str, Any], content: bytes) -> httpx.Response:
        """POST ``content`` as the raw body with query ``params``; :class:`ApiRequestFailed`
        for any status but 2xx."""
        self.requests += 1
        try:
            response = await self._http.post(path, params=dict(params), content=content)
        except httpx.TransportError as exc:
            raise ApiUnavailable(f"{path}: {type(exc).__name__}: {exc}") from exc
        return _checked(path, response)

    async def fetch(self, path: str, params: Mapping[str, Any] | None = None) -> httpx.Response:
        """GET; :class:`ApiRequestFailed` for any status but 2xx."""
        return _checked(path, await self.get(path, params))

    async def post(self, path: str, body: Mapping[str, Any]) -> httpx.Response:
        """POST ``body``; :class:`ApiRequestFailed` for any status but 2xx."""
        return _checked(path, await self.request(path, body))

    async def read(self, path: str, body: Mapping[str, Any]) -> httpx.Response:
        """:meth:`post` for a request that changes nothing: a 503 with ``Retry-After`` is
        asked again after that pause (module doc)."""
        for attempt in range(1, self._read_attempts + 1):
            response = await self.request(path, body)
            pause = _unavailable_pause(response)
            if pause is None or attempt == self._read_attempts:
                break
            log.info("%s: HTTP 503, asked again in %.1f s", path, pause)
            await asyncio.sleep(min(pause, self._read_retry_max))
        return _checked(path, response)

    async def conversations(self, version: int, last_seqs: str, recents: int) -> Recents:
        """``/conversation/sync`` after ``version`` with our ``last_msg_seqs``."""
        body = {"uid": self.uid, "version": version, "last_msg_seqs": last_seqs}
        response = await self.read("/conversation/sync", {**body, "msg_count": recents})
        conversations, messages, top = [], [], version
        for item in _json_list(response, "/conversation/sync"):
            channel = Channel(str(item["channel_id"]), int(item["channel_type"]))
            conversations.append(_conversation(channel, item))
            messages += [message_from_json(m, channel) for m in item.get("recents") or ()]
            top = max(top, int(item.get("version", 0)))
        return Recents(conversations, messages, top, response.headers.get(EPOCH_HEADER, ""))

    async def history(self, channel: Channel, start: int, end: int, limit: int) -> HistoryPage:
        """Messages of ``channel`` with seqs from ``start`` (inclusive) up to ``end``
        (exclusive; 0 = no bound), oldest first."""
        body = {
            "login_uid": self.uid,
            "channel_id": channel.channel_id,
            "channel_type": channel.channel_type,
            "start_message_seq": start,
            "end_message_seq": end,
            "limit": limit,
            "pull_mode": 1,
        }
        response = await self.read("/channel/messagesync", body)
        page = response.json()
        messages = [message_from_json(m, channel) for m in page.get("messages") or ()]
        return HistoryPage(messages, bool(page.get("more")), response.headers.get(EPOCH_HEADER, ""))

    async def ext_rows(self, channel: Channel, cursor: int, limit: int) -> ExtPage:
        """Extension rows of ``channel`` with ``extra_version`` above ``cursor``."""
        body = {
            "uid": self.uid,
            "login_uid": self.uid,
            "channel_id": channel.channel_id,
            "channel_type": channel.channel_type,
            "extra_version": cursor,
            "limit": limit,
            "envelope": True,
        }
        response = await self.read("/message/extra/sync", body)
        data = response.json()
        epoch = response.headers.get(EPOCH_HEADER, "")
        if isinstance(data, Mapping):  # the envelope
            rows, epoch = data.get("rows") or [], str(data.get("epoch") or epoch)
            more = bool(data.get("more"))
        else:  # a bare array (TSDD shape): a full page may have more behind it
            rows, more = data, len(data) >= limit
        return ExtPage(epoch, [ExtState.from_json(r) for r in rows], more)


def _conversation(channel: Channel, item: Mapping[str, Any]) -> Conversation:
    return Conversation(
        channel=channel,
        last_msg_seq=int(item.get("last_msg_seq", 0)),
        unread=int(item.get("unread", 0)),
        timestamp=int(item.get("timestamp", 0)),
        version=int(item.get("version", 0)),
    )


def _unavailable_pause(response: httpx.Response) -> float | None:
    """The pause a 503 asks for (``Retry-After`` in seconds); ``None``: not to be retried."""
    if response.status_code != 503:
        return None
    try:
        seconds = float(response.headers.get("Retry-After", ""))
    except ValueError:
        return None
    return seconds if seconds >= 0 else None


def _json_list(response: httpx.Response, path: str) -> list[Mapping[str, Any]]:
    data = response.json()
    if not isinstance(data, list):
        raise ApiRequestFailed(path, response.status_code, "expected a JSON array", body=data)
    return data


def _checked(path: str, response: httpx.Response) -> httpx.Response:
    if response.status_code in _UNAVAILABLE:
        raise ApiUnavailable(f"{path}: HTTP {response.status_code}")
    if not response.is_success:
        raise failure(path, response)
    return response


def _retry_after(response: httpx.Response) -> float:
    value = response.headers.get("retry-after", "")
    try:
        return max(0.0, float(value))
    except ValueError:
        return 1.0


def failure(path: str, response: httpx.Response) -> ApiRequestFailed:
    """The error for a non-2xx ``response`` (WuKongIM-style ``{status, code, msg}`` body)."""
    try:
        body: Any = response.json()
    except ValueError:
        body = response.text[:200]
    if isinstance(body, Mapping):
        message = str(body.get("msg") or body.get("message") or response.reason_phrase)
        if response.status_code == 429:
            code = str(body.get("code", ""))
            return RateLimited(path, message, code, body, _retry_after(response))
        return ApiRequestFailed(
            path, response.status_code, message, str(body.get("code", "")), body
        )
    return ApiRequestFailed(path, response.status_code, response.reason_phrase, "", body)
