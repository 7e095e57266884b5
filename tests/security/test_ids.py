"""Defect 2: ids are whole-value matches of one documented rule — 1–128 visible ASCII
characters (``!``–``~``), no ``@`` in a uid (``magpie.domain.channels``). Every id field of
every entry point refuses control characters, trailing whitespace and Unicode look-alikes
with 400 naming the field, and writes nothing; the OpenAPI document states the rule."""

from __future__ import annotations

import string
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from magpie.client.raw import ConnectRefused, RawClient
from magpie.domain.channels import (
    CHANNEL_ID_PATTERN,
    UID_PATTERN,
    channel_id_problem,
    uid_problem,
)
from magpie.protocol.packets import ReasonCode
from tests.api.helpers import db_dump
from tests.security.conftest import World, b64_json, client, token_of
from tests.support.nodes import time_scale

#: Ids that look like "alice" (or "g1") but are not: each must be refused.
BAD_SUFFIXES = [
    "\n",  # the case: a trailing newline
    "\r\n",
    " ",
    "\t",
    "\x00",
    "\x1b",
    "\x7f",
    "\u00a0",  # no-break space
    "\u2028",  # line separator
    "\u3000",  # ideographic space
    "\u200b",  # zero-width space
    "\u200d",  # zero-width joiner
    "\ufeff",  # byte-order mark
    "\u0301",  # combining acute accent
]
LOOK_ALIKES = [
    "\u0430lice",  # Cyrillic а
    "\uff41lice",  # fullwidth a
    "al\u0131ce",  # dotless i
    "\u202ealice",  # right-to-left override
    "ali\u00adce",  # soft hyphen
    "ａｌｉｃｅ",
]
BAD_UIDS = [f"alice{s}" for s in BAD_SUFFIXES] + LOOK_ALIKES + [f"{s}alice" for s in " \n\t"]
BAD_CHANNELS = [f"g1{s}" for s in BAD_SUFFIXES] + ["g\u04301", "\uff471", "g1\u202e"]

Body = Callable[[str], Any]


def _card(approver: str) -> dict[str, Any]:
    card = {"type": "approval@1", "title": "t", "approvers": [approver]}
    return {"uid": "alice", "channel_id": "g1", "channel_type": 2, "card": card}


# (method, path, body builder (the bad id in), field named in the answer)
UID_FIELDS: list[tuple[str, str, Body, str]] = [
    ("POST", "/user/token", lambda v: {"uid": v, "token": "t"}, "uid"),
    ("POST", "/user/device_quit", lambda v: {"uid": v, "device_flag": -1}, "uid"),
    ("POST", "/user/onlinestatus", lambda v: ["bob", v], "[1]"),
    ("GET", "/route", lambda v: {"uid": v}, "uid"),
    (
        "POST",
        "/channel",
        lambda v: {"channel_id": "g9", "channel_type": 2, "subscribers": [v]},
        "subscribers[0]",
    ),
    (
        "POST",
        "/channel/subscriber_add",
        lambda v: {"channel_id": "g1", "channel_type": 2, "subscribers": [v]},
        "subscribers[0]",
    ),
    (
        "POST",
        "/channel/subscriber_remove",
        lambda v: {"channel_id": "g1", "channel_type": 2, "subscribers": [v]},
        "subscribers[0]",
    ),
    (
        "POST",
        "/message/send",
        lambda v: {
            "from_uid": v,
            "channel_id": "g1",
            "channel_type": 2,
            "payload": b64_json({"type": 1}),
        },
        "from_uid",
    ),
    (
        "POST",
        "/message/send",
        lambda v: {
            "from_uid": "alice",
            "channel_id": v,
            "channel_type": 1,
            "payload": b64_json({"type": 1}),
        },
        "channel_id",
    ),
    (
        "POST",
        "/message/send",
        lambda v: {
            "from_uid": "alice",
            "channel_id": "g1",
            "channel_type": 2,
            "subscribers": [v],
            "payload": b64_json({"type": 1}),
        },
        "subscribers[0]",
    ),
    (
        "POST",
        "/message/sendbatch",
        lambda v: {"from_uid": v, "subscribers": ["bob"], "payload": b64_json({"type": 1})},
        "from_uid",
    ),
    (
        "POST",
        "/message/sendbatch",
        lambda v: {"from_uid": "alice", "subscribers": [v], "payload": b64_json({"type": 1})},
        "subscribers[0]",
    ),
    ("POST", "/message/sync", lambda v: {"uid": v}, "uid"),
    ("POST", "/message/syncack", lambda v: {"uid": v, "last_message_seq": 1}, "uid"),
    ("POST", "/conversation/sync", lambda v: {"uid": v}, "uid"),
    (
        "POST",
        "/channel/messagesync",
        lambda v: {"login_uid": v, "channel_id": "g1", "channel_type": 2},
        "login_uid",
    ),
    (
        "POST",
        "/channel/messagesync",
        lambda v: {"login_uid": "alice", "channel_id": v, "channel_type": 1},
        "channel_id",
    ),
    (
        "POST",
        "/message/extra/sync",
        lambda v: {"login_uid": v, "channel_id": "g1", "channel_type": 2},
        "login_uid",
    ),
    (
        "POST",
        "/message/extra/update",
        lambda v: {"message_id": 1, "action_id": "a", "mode": "lww", "status": "x", "actor_uid": v},
        "actor_uid",
    ),
    ("POST", "/message/revoke", lambda v: {"message_id": 1, "revoker": v}, "revoker"),
    (
        "POST",
        "/message/edit",
        lambda v: {"message_id": 1, "content_edit": {"type": 1}, "actor_uid": v},
        "actor_uid",
    ),
    ("POST", "/channel/member", lambda v: {"channel_id": "g1", "channel_type": 2, "uid": v}, "uid"),
    ("POST", "/cards", lambda v: {**_card("bob"), "uid": v}, "uid"),
    ("POST", "/cards", _card, "card"),  # a listed user (approvers[0]) inside the definition
]
CHANNEL_FIELDS: list[tuple[str, str, Body, str]] = [
    ("POST", "/channel", lambda v: {"channel_id": v, "channel_type": 2}, "channel_id"),
    ("POST", "/channel/info", lambda v: {"channel_id": v, "channel_type": 2}, "channel_id"),
    ("POST", "/channel/delete", lambda v: {"channel_id": v, "channel_type": 2}, "channel_id"),
    (
        "POST",
        "/channel/subscriber_add",
        lambda v: {"channel_id": v, "channel_type": 2, "subscribers": ["bob"]},
        "channel_id",
    ),
    (
        "POST",
        "/message/send",
        lambda v: {
            "from_uid": "alice",
            "channel_id": v,
            "channel_type": 2,
            "payload": b64_json({"type": 1}),
        },
        "channel_id",
    ),
    (
        "POST",
        "/channel/messagesync",
        lambda v: {"login_uid": "alice", "channel_id": v, "channel_type": 2},
        "channel_id",
    ),
    (
        "POST",
        "/message/extra/sync",
        lambda v: {"login_uid": "alice", "channel_id": v, "channel_type": 2},
        "channel_id",
    ),
    (
        "POST",
        "/channel/online",
        lambda v: {"login_uid": "alice", "channel_id": v, "channel_type": 2},
        "channel_id",
    ),
    (
        "POST",
        "/message/extra/update",
        lambda v: {
            "message_id": 1,
            "action_id": "a",
            "mode": "lww",
            "status": "x",
            "channel_id": v,
        },
        "channel_id",
    ),
    (
        "POST",
        "/conversation/sync",
        lambda v: {"uid": "alice", "larges": [{"channel_id": v, "channel_type": 2}]},
        "larges[0].channel_id",
    ),
    (
        "POST",
        "/conversation/sync",
        lambda v: {"uid": "alice", "last_msg_seqs": f"{v}:2:1"},
        "last_msg_seqs",
    ),
    (
        "POST",
        "/channel/member",
        lambda v: {"channel_id": v, "channel_type": 2, "uid": "bob"},
        "channel_id",
    ),
    ("POST", "/cards", lambda v: {**_card("bob"), "channel_id": v}, "channel_id"),
]


async def _request(c: httpx.AsyncClient, method: str, path: str, body: Any) -> httpx.Response:
    if method == "GET":
        return await c.get(path, params=body)
    return await c.post(path, json=body)


async def _refused_everywhere(
    world: World, biz: httpx.AsyncClient, cases: list[tuple[str, str, Body, str]], bad: list[str]
) -> None:
    before = db_dump(world.node)
    for method, path, body, field in cases:
        for value in bad:
            r = await _request(biz, method, path, body(value))
            assert r.status_code == 400, (path, field, value, r.text)
            got = r.json()
            assert got["code"] in ("bad_request", "invalid", "nul_character"), (path, value, got)
            assert got.get("field", "").startswith(field) or field in got["msg"], (path, got)
    assert db_dump(world.node) == before, "a refused id changed the stored state"


async def test_every_uid_field_refuses_look_alikes(world: World, biz: httpx.AsyncClient) -> None:
    await _refused_everywhere(world, biz, UID_FIELDS, BAD_UIDS)


async def test_every_channel_id_field_refuses_look_alikes(
    world: World, biz: httpx.AsyncClient
) -> None:
    await _refused_everywhere(world, biz, CHANNEL_FIELDS, BAD_CHANNELS)


@pytest.mark.parametrize("good", ["alice", "A-Z_0.9:~!$%&*+=?^`{|}", "x" * 128])
async def test_the_rule_accepts_visible_ascii(
    world: World, biz: httpx.AsyncClient, good: str
) -> None:
    """The counter-check: the same requests pass validation with a valid id."""
    r = await biz.post("/user/token", json={"uid": good, "token": "t"})
    assert r.status_code == 200, r.text
    r = await biz.post("/channel", json={"channel_id": good, "channel_type": 2})
    assert r.status_code == 200, r.text


async def test_a_user_token_with_a_newline_uid_is_no_user(world: World) -> None:
    """``login_uid: "alice\\n"`` with alice's token: refused, not read as alice."""
    async with client(world.node, token_of("alice")) as me:
        body = {"login_uid": "alice\n", "channel_id": "g1", "channel_type": 2}
        r = await me.post("/channel/messagesync", json=body)
        assert (r.status_code, r.json()["field"]) == (400, "login_uid"), r.text


async def test_the_gateway_refuses_a_look_alike_uid(world: World) -> None:
    for uid in ("alice\n", "\u0430lice", "alice\u200b"):
        raw = RawClient(f"ws://127.0.0.1:{world.node.ws_port}", uid, token_of("alice"))
        with pytest.raises(ConnectRefused) as refused:
            await raw.connect(timeout=10 * time_scale())
        assert refused.value.reason == ReasonCode.AUTH_FAIL
        await raw.close()


async def test_the_gateway_refuses_a_look_alike_channel(world: World) -> None:
    raw = RawClient(f"ws://127.0.0.1:{world.node.ws_port}", "alice", token_of("alice"))
    await raw.connect(timeout=10 * time_scale())
    try:
        before = db_dump(world.node)
        for channel, kind in (("g1\n", 2), ("bob\n", 1), ("\u0432ob", 1)):
            ack = await raw.send(channel, kind, b'{"type":1,"content":"x"}')
            assert ack.reason_code != ReasonCode.SUCCESS, (channel, ack)
        assert db_dump(world.node) == before
    finally:
        await raw.close()


async def test_the_openapi_document_states_the_rule(world: World, biz: httpx.AsyncClient) -> None:
    doc = (await biz.get("/openapi.json")).json()
    token = doc["paths"]["/user/token"]["post"]["requestBody"]["content"]["application/json"]
    assert token["schema"]["properties"]["uid"]["pattern"] == UID_PATTERN
    send = doc["paths"]["/message/send"]["post"]["requestBody"]["content"]["application/json"]
    assert send["schema"]["properties"]["channel_id"]["pattern"] == CHANNEL_ID_PATTERN


VISIBLE = string.ascii_letters + string.digits + string.punctuation


@given(st.text(alphabet=VISIBLE.replace("@", ""), min_size=1, max_size=128))
def test_every_visible_ascii_id_is_accepted(uid: str) -> None:
    assert uid_problem(uid) is None and channel_id_problem(uid) is None


@given(
    st.text(alphabet=VISIBLE, max_size=20),
    st.characters(blacklist_characters=VISIBLE),
    st.text(alphabet=VISIBLE, max_size=20),
)
def test_any_other_character_anywhere_is_refused(head: str, odd: str, tail: str) -> None:
    value = head + odd + tail
    assert uid_problem(value) is not None and channel_id_problem(value) is not None
