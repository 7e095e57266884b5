"""Extension changes over HTTP: ``/message/extra/update``, ``/message/revoke``,
``/message/edit``, ``/message/extra/ops`` — answers, auth, 404s and limits at N and N+1."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from magpie.app import Node
from magpie.ext.hlc import pack
from tests.api.ext_support import GROUP, PERSON, cas, ext_tables, send, update
from tests.api.helpers import as_user
from tests.support.nodes import add_user, api, make_group, running_node


async def test_cas_update_and_conflict(node: Node, http: httpx.AsyncClient) -> None:
    await make_group(node, "g1", ["a", "b"])
    mid = await send(http, "a", "g1")
    r = await update(
        http,
        mid,
        expected_version=0,
        status="open",
        extra_patch={"votes": {"yes": 1}},
        action_id="first",
        actor_uid="a",
        actor_device="web",
    )
    assert r.status_code == 200, r.text
    out = r.json()
    row = out["data"]
    assert out["status"] == 200 and out["duplicate"] is False
    assert (row["message_id"], row["message_id_str"], row["message_seq"]) == (mid, str(mid), 1)
    assert (row["channel_id"], row["channel_type"], row["version"], row["extra_version"]) == (
        "g1",
        GROUP,
        1,
        1,
    )
    assert (row["status"], row["extra"], row["updated_by"]) == (
        "open",
        {"votes": {"yes": 1}},
        {"uid": "a", "device": "web"},
    )
    assert (row["revoke"], row["content_edit"], row["edited_at"], row["readed_count"]) == (
        0,
        None,
        0,
        0,
    )
    assert out["op"]["result"] == "applied" and out["op"]["action_id"] == "first"

    lost = await update(http, mid, expected_version=0, status="closed", actor_uid="b")
    assert lost.status_code == 409
    body = lost.json()
    assert (body["status"], body["code"]) == (409, "conflict")
    assert body["current"] == row and body["updated_by"] == {"uid": "a", "device": "web"}
    assert body["updated_at"] == row["updated_at"] and body["updated_at_ms"] > 1.7e12
    assert body["last_op"] == out["op"]
    assert body["op"]["result"] == "conflict" and body["op"]["base_version"] == 0
    assert body["duplicate"] is False

    r = await update(http, str(mid), expected_version=1, extra_patch={"votes": {"no": 1}})
    assert r.status_code == 200 and r.json()["data"]["extra"] == {"votes": {"yes": 1, "no": 1}}
    assert r.json()["data"]["status"] == "open"


async def test_lww_update_and_stale(node: Node, http: httpx.AsyncClient) -> None:
    await make_group(node, "g1", ["a"])
    mid = await send(http, "a", "g1")
    now = pack(1_700_000_000_000)
    r = await update(http, mid, mode="lww", updated_at=str(now + 5), status="b", actor_uid="x")
    assert r.status_code == 200 and r.json()["data"]["updated_at"] == now + 5
    old = await update(http, mid, mode="lww", updated_at=now + 1, status="a", actor_uid="y")
    assert (old.status_code, old.json()["code"]) == (409, "stale")
    assert old.json()["current"]["status"] == "b"
    stamped = await update(http, mid, mode="lww", status="c")
    assert stamped.status_code == 200 and stamped.json()["data"]["updated_at"] > now + 5
    future = await update(http, mid, mode="lww", updated_at=pack(2**46), status="z")
    assert (future.status_code, future.json()["field"]) == (400, "updated_at")


async def test_a_repeated_action_id_changes_nothing(node: Node, http: httpx.AsyncClient) -> None:
    await make_group(node, "g1", ["a"])
    mid = await send(http, "a", "g1")
    first = await cas(http, mid, 0, "same", status="one")
    before = ext_tables(node)
    again = await update(http, mid, expected_version=7, action_id="same", status="two")
    assert again.status_code == 200 and again.json()["duplicate"] is True
    assert again.json()["op"] == first.json()["op"]
    assert again.json()["data"] == first.json()["data"]
    assert ext_tables(node) == before
    lost = await update(http, mid, expected_version=0, action_id="late", status="x")
    replay = await update(http, mid, expected_version=1, action_id="late", status="x")
    assert lost.status_code == replay.status_code == 409
    assert replay.json()["duplicate"] is True and replay.json()["op"] == lost.json()["op"]
    ops = (await http.post("/message/extra/ops", json={"message_id": str(mid)})).json()
    assert [(o["action_id"], o["result"], o["code"]) for o in ops["data"]] == [
        ("same", "applied", ""),
        ("late", "conflict", "conflict"),
    ]


async def test_revoke_and_edit(node: Node, http: httpx.AsyncClient) -> None:
    await make_group(node, "g1", ["a", "b"])
    m1, m2 = await send(http, "a", "g1"), await send(http, "a", "g1")
    content = {"type": 1, "content": "fixed"}
    r = await http.post("/message/edit", json={"message_id": m1, "content_edit": content})
    assert r.status_code == 200, r.text
    row = r.json()["data"]
    assert row["content_edit"] == content and row["edited_at"] > 1_700_000_000
    r = await http.post("/message/revoke", json={"message_id": str(m2), "revoker": "a"})
    assert r.status_code == 200 and (r.json()["data"]["revoke"], r.json()["data"]["revoker"]) == (
        1,
        "a",
    )
    again = await http.post("/message/revoke", json={"message_id": m2, "revoker": "b"})
    assert (again.status_code, again.json()["code"], again.json()["rejection"]) == (
        400,
        "invalid",
        "revoked",
    )
    edit = await http.post("/message/edit", json={"message_id": m2, "content_edit": content})
    assert edit.status_code == 400 and edit.json()["rejection"] == "revoked"
    no_type = await http.post("/message/edit", json={"message_id": m1, "content_edit": {"a": 1}})
    assert (no_type.status_code, no_type.json()["field"]) == (400, "content_edit")
    r = await http.post(
        "/message/revoke", json={"message_id": m2, "revoker": "a", "action_id": "k"}
    )
    assert r.status_code == 400


@pytest.mark.parametrize(
    ("path", "body", "refused"),
    [
        ("/message/extra/update", {"message_id": 1, "expected_version": 0, "status": "x"}, 401),
        ("/message/revoke", {"message_id": 1, "revoker": "b"}, 403),  # not the sender's
        ("/message/edit", {"message_id": 1, "content_edit": {"type": 1}}, 403),
        ("/message/extra/ops", {"message_id": 1}, 401),
    ],
)
async def test_a_user_token_cannot_change_what_is_not_theirs(
    node: Node, anon: httpx.AsyncClient, path: str, body: dict[str, Any], refused: int
) -> None:
    token = await add_user(node, "b")
    async with api(node) as http:
        await make_group(node, "g1", ["a", "b"])
        body = {**body, "message_id": await send(http, "a", "g1"), "action_id": "a1"}
    async with as_user(node, token) as user:
        r = await user.post(path, json={**body, "actor_uid": "b", "uid": "b"})
    code = {401: "unauthorized", 403: "forbidden"}[refused]
    assert (r.status_code, r.json()["code"]) == (refused, code)
    assert (await anon.post(path, json=body)).status_code == 401
    assert ext_tables(node) == {"message_ext": [], "ext_channel_clock": []}


async def test_a_message_of_another_channel_is_404(node: Node, http: httpx.AsyncClient) -> None:
    await make_group(node, "g1", ["a"])
    await make_group(node, "g2", ["a"])
    mid = await send(http, "a", "g1")
    pm = await send(http, "a", "b", PERSON)
    for body in (
        {"channel_id": "g2", "channel_type": GROUP},
        {"channel_id": "g1", "channel_type": PERSON},
        {"channel_id": "g2"},
    ):
        r = await update(http, mid, expected_version=0, status="x", **body)
        assert (r.status_code, r.json()["code"]) == (404, "not_found"), body
        r = await http.post("/message/revoke", json={"message_id": mid, "revoker": "a", **body})
        assert r.status_code == 404
    assert (await update(http, 123, expected_version=0, status="x")).status_code == 404
    assert ext_tables(node) == {"message_ext": [], "ext_channel_clock": []}
    # a person message is named by either party (or its storage id)
    assert (
        await update(http, pm, expected_version=0, status="x", channel_id="c")
    ).status_code == 404
    for n, who in enumerate(("a", "b")):
        r = await update(http, pm, expected_version=n, status=who, channel_id=who, channel_type=1)
        assert r.status_code == 200, r.text
    r = await update(
        http,
        mid,
        expected_version=0,
        status="ok",
        channel_id="g1",
        channel_type=2,
        action_id="a" * 128,
    )
    assert r.status_code == 200, "an action id of 128 characters (N) is accepted"


@pytest.fixture
async def small(tmp_path: Path) -> AsyncIterator[Node]:
    """A node with small extension limits."""
    limits = {
        "ext_max_patch_bytes": 100,
        "ext_max_extra_bytes": 150,
        "ext_max_keys": 4,
        "ext_max_depth": 3,
        "ext_sync_max_limit": 3,
    }
    async with running_node(tmp_path, **limits) as n:
        yield n


def sized(n: int, key: str = "k") -> dict[str, str]:
    """A patch of exactly ``n`` bytes as compact JSON."""
    return {key: "x" * (n - len(json.dumps({key: ""}, separators=(",", ":"))))}


# (patch, applies) pairs at N and N+1 of each limit of the ``small`` node
LIMIT_CASES = {
    "patch bytes N": (sized(100), True),
    "patch bytes N+1": (sized(101), False),
    "depth N": ({"a": {"b": {"c": 1}}}, True),
    "depth N+1": ({"a": {"b": {"c": {"d": 1}}}}, False),
    "keys N": ({"a": 1, "b": 2, "c": 3, "d": 4}, True),
    "keys N+1": ({"a": 1, "b": 2, "c": 3, "d": 4, "e": 5}, False),
}


@pytest.mark.parametrize("case", LIMIT_CASES.values(), ids=LIMIT_CASES.keys())
async def test_limits_at_n_and_n_plus_1(small: Node, case: tuple[dict[str, Any], bool]) -> None:
    patch, applies = case
    async with api(small) as http:
        await make_group(small, "g1", ["a"])
        mid = await send(http, "a", "g1")
        before = ext_tables(small)
        r = await update(http, mid, expected_version=0, extra_patch=patch)
        if applies:
            assert r.status_code == 200, r.text
        else:
            assert r.status_code in (400, 413), r.text
            assert ext_tables(small) == before


async def test_the_extra_document_limit_at_n_and_n_plus_1(small: Node) -> None:
    async with api(small) as http:
        await make_group(small, "g1", ["a"])
        mid = await send(http, "a", "g1")
        await cas(http, mid, 0, "one", extra_patch=sized(100, "a"))
        before = ext_tables(small)
        # {"a":…} is 100 bytes; merging {"b":…} of n bytes gives 100 + n - 1
        over = await update(http, mid, expected_version=1, extra_patch=sized(52, "b"))
        assert (over.status_code, over.json()["code"]) == (413, "too_large")
        assert over.json()["op"]["result"] == "invalid"
        assert ext_tables(small) == before
        await cas(http, mid, 1, "two", extra_patch=sized(51, "b"))  # exactly 150 bytes


MALFORMED = {
    "patch is an array": {"expected_version": 0, "extra_patch": [1]},
    "patch is a string": {"expected_version": 0, "extra_patch": "x"},
    "lone surrogate": {"expected_version": 0, "extra_patch": {"a": "\ud800"}},
    "nothing to change": {"expected_version": 0},
    "cas without expected_version": {"status": "x"},
    "unknown mode": {"mode": "whatever", "status": "x"},
    "status too long": {"expected_version": 0, "status": "s" * 65},
    "empty action_id": {"expected_version": 0, "status": "x", "action_id": ""},
    "action_id too long": {"expected_version": 0, "status": "x", "action_id": "a" * 129},
    "bad message id": {"expected_version": 0, "status": "x", "message_id": "12a"},
    "negative readed_count": {"expected_version": 0, "readed_count": -1},
}


@pytest.mark.parametrize("body", MALFORMED.values(), ids=MALFORMED.keys())
async def test_malformed_updates_change_nothing(
    node: Node, http: httpx.AsyncClient, body: dict[str, Any]
) -> None:
    await make_group(node, "g1", ["a"])
    mid = await send(http, "a", "g1")
    full = {"message_id": mid, "action_id": "x", **body}
    raw = json.dumps(full)  # a lone surrogate goes out as the escape \ud800
    r = await http.post(
        "/message/extra/update", content=raw, headers={"content-type": "application/json"}
    )
    assert r.status_code == 400, r.text
    assert ext_tables(node) == {"message_ext": [], "ext_channel_clock": []}
    assert (await http.post("/message/extra/ops", json={"message_id": mid})).json()["data"] == []


async def test_nan_in_a_patch_is_refused(node: Node, http: httpx.AsyncClient) -> None:
    await make_group(node, "g1", ["a"])
    mid = await send(http, "a", "g1")
    raw = '{"message_id": %d, "action_id": "n", "expected_version": 0, "extra_patch": {"a": NaN}}'
    r = await http.post(
        "/message/extra/update", content=raw % mid, headers={"content-type": "application/json"}
    )
    assert r.status_code == 400 and r.json()["field"] == "extra_patch"


async def test_openapi_documents_the_extension_routes(http: httpx.AsyncClient) -> None:
    doc = (await http.get("/openapi.json")).json()
    update_op = doc["paths"]["/message/extra/update"]["post"]
    assert {"404", "409", "413"} <= set(update_op["responses"])
    schema = update_op["requestBody"]["content"]["application/json"]["schema"]
    assert {"message_id", "action_id"} <= set(schema["required"])
    assert "ExtRow" in doc["components"]["schemas"]
    assert "/message/extra/sync" in doc["paths"] and "/message/extra/ops" in doc["paths"]
