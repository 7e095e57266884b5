"""Helpers for the message-extension API tests."""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from magpie.app import Node
from magpie.domain.ext import ExtState
from tests.api.helpers import db_dump, text
from tests.support.ext_cache import ExtCache

GROUP = 2
PERSON = 1


async def send(http: httpx.AsyncClient, frm: str, channel: str, kind: int = GROUP) -> int:
    """Send one text message; its id."""
    body = {"from_uid": frm, "channel_id": channel, "channel_type": kind, "payload": text("m")}
    r = await http.post("/message/send", json=body)
    assert r.status_code == 200, r.text
    return int(r.json()["data"]["message_id"])


async def update(http: httpx.AsyncClient, message_id: int | str, **body: Any) -> httpx.Response:
    """``/message/extra/update`` (cas by default, a fresh action id unless given)."""
    body.setdefault("action_id", uuid.uuid4().hex)
    return await http.post("/message/extra/update", json={"message_id": message_id, **body})


async def cas(
    http: httpx.AsyncClient, message_id: int, expected: int, action: str, **body: Any
) -> httpx.Response:
    """A CAS update that must succeed."""
    r = await update(http, message_id, expected_version=expected, action_id=action, **body)
    assert r.status_code == 200, r.text
    return r


async def full_sync(
    client: httpx.AsyncClient, channel: str, kind: int = GROUP, **extra: Any
) -> ExtCache:
    """A fresh client's view: every row from cursor 0 (limit at the cap)."""
    body = {"channel_id": channel, "channel_type": kind, "limit": 1000, "envelope": 1, **extra}
    r = await client.post("/message/extra/sync", json=body)
    assert r.status_code == 200, r.text
    page = r.json()
    return ExtCache().apply(page["epoch"], [ExtState.from_json(x) for x in page["rows"]])


async def catch_up(
    client: httpx.AsyncClient, cache: ExtCache, channel: str, limit: int, kind: int = GROUP
) -> tuple[ExtCache, int]:
    """Incremental syncs from the cache's cursor until ``more`` is 0; (cache, requests)."""
    requests = 0
    while True:
        body = {
            "channel_id": channel,
            "channel_type": kind,
            "extra_version": cache.cursor,
            "limit": limit,
            "envelope": True,
        }
        r = await client.post("/message/extra/sync", json=body)
        assert r.status_code == 200, r.text
        requests += 1
        page = r.json()
        cache = cache.apply(page["epoch"], [ExtState.from_json(x) for x in page["rows"]])
        if not page["more"]:
            return cache, requests


def ext_tables(node: Node) -> dict[str, list[tuple[Any, ...]]]:
    """The extension state (rows and channel counters; not the operation log)."""
    dump = db_dump(node)
    return {t: dump[t] for t in ("message_ext", "ext_channel_clock")}
