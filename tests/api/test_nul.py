"""U+0000 (NUL) in the API, on both store backends: PostgreSQL's ``text`` and ``jsonb``
cannot hold it, so a JSON string or a query value with it is refused at the entry point with
400 ``nul_character`` naming the field, and nothing is written — on SQLite too, so both
backends answer alike. A message *payload* is bytes in both stores: one that holds
``\\u0000`` inside its JSON is stored and served back unchanged."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from magpie.app import Node
from tests.support.nodes import add_user, api, make_group, running_node
from tests.support.postgres import new_schema


@pytest.fixture(params=["sqlite", "postgres"])
async def node(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Node]:
    kw: dict[str, Any] = {"webhook_url": "http://127.0.0.1:9/hook"}
    if request.param == "postgres":
        url = new_schema(request.getfixturevalue("pg_database"), "nul")
        kw.update(store_url=url, store_pool_size=3)
    async with running_node(tmp_path, **kw) as n:
        await add_user(n, "alice")
        await add_user(n, "bob")
        await make_group(n, "g", ["alice", "bob"])
        yield n


def b64(doc: object) -> str:
    return base64.b64encode(json.dumps(doc).encode()).decode()


async def _send(http: httpx.AsyncClient, content: str) -> int:
    body = {"from_uid": "alice", "channel_id": "g", "channel_type": 2,
            "payload": b64({"type": 1, "content": content})}  # fmt: skip
    r = await http.post("/message/send", json=body)
    assert r.status_code == 200, r.text
    return int(r.json()["data"]["message_id"])


def _refused(r: httpx.Response, field: str) -> None:
    assert r.status_code == 400, r.text
    body = r.json()
    assert (body["code"], body["field"]) == ("nul_character", field), body
    assert "U+0000" in body["msg"]


async def test_nul_in_json_strings_is_refused_and_nothing_changes(node: Node) -> None:
    async with api(node) as http:
        mid = await _send(http, "hello")
        where = {"message_id": mid, "channel_id": "g", "channel_type": 2}
        update = {**where, "mode": "lww"}
        patch: dict[str, Any] = {"k": "x\x00y"}
        r = await http.post(
            "/message/extra/update", json={**update, "action_id": "a1", "extra_patch": patch}
        )
        _refused(r, "extra_patch.k")
        patch = {"k\x00": 1}
        r = await http.post(
            "/message/extra/update", json={**update, "action_id": "a2", "extra_patch": patch}
        )
        _refused(r, "extra_patch.k\\u0000")
        r = await http.post(
            "/message/extra/update", json={**update, "action_id": "a\x003", "status": "s"}
        )
        _refused(r, "action_id")
        r = await http.post(
            "/message/extra/update", json={**update, "action_id": "a4", "status": "s\x00"}
        )
        _refused(r, "status")
        r = await http.post("/message/edit", json={**where, "from_uid": "alice",
                            "content_edit": {"type": 1, "content": ["e", "\x00"]}})  # fmt: skip
        _refused(r, "content_edit.content[1]")
        card = {"type": "vote@1", "title": "t\x00", "options": ["a", "b"]}
        r = await http.post(
            "/cards", json={"uid": "alice", "channel_id": "g", "channel_type": 2, "card": card}
        )
        _refused(r, "card.title")
        r = await http.get("/route", params={"uid": "al\x00ice"})
        _refused(r, "uid")
        r = await http.post("/message/extra/sync", json={"login_uid": "bob", "channel_id": "g",
                            "channel_type": 2, "extra_version": 0, "limit": 10})  # fmt: skip
        assert r.status_code == 200 and r.json() == [], "no change was stored"
        r = await http.post(
            "/message/extra/update", json={**update, "action_id": "a5", "status": "ok"}
        )
        assert r.status_code == 200, "the store is fine"
        patch = {"k": "\\u0000"}
        escaped = await http.post(
            "/message/extra/update", json={**update, "action_id": "a6", "extra_patch": patch}
        )
        assert escaped.status_code == 200, "a backslash-u text is no NUL"
        assert escaped.json()["data"]["extra"] == {"k": "\\u0000"}


async def test_a_payload_with_an_escaped_nul_is_stored_as_bytes(node: Node) -> None:
    async with api(node) as http:
        mid = await _send(http, "a\x00b")
        r = await http.post("/channel/messagesync", json={"login_uid": "bob", "channel_id": "g",
                            "channel_type": 2, "limit": 10})  # fmt: skip
        assert r.status_code == 200, r.text
        (found,) = [m for m in r.json()["messages"] if int(m["message_id"]) == mid]
        assert json.loads(base64.b64decode(found["payload"])) == {"type": 1, "content": "a\x00b"}
