"""Bad input on every endpoint: status, stable code, the field named, and nothing written.

Every test here is refused input that must leave the store unchanged (each checks the whole
database before and after), so the module shares one seeded node instead of starting one per
case: a case that wrongly writes fails itself, and the next case compares its own before/after.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio

from magpie.app import Node
from tests.api.helpers import MAX_PAYLOAD, b64, db_dump, text
from tests.support.nodes import add_user, api, make_group, running_node

pytestmark = pytest.mark.asyncio(loop_scope="module")

OK_SEND = {"from_uid": "a", "channel_id": "g1", "channel_type": 2, "payload": text("x")}
UIDS_1001 = [f"u{i}" for i in range(1001)]

# (path, body, HTTP status, code, field)
CASES: list[tuple[str, Any, int, str, str | None]] = [
    ("/user/token", {}, 400, "bad_request", "uid"),
    ("/user/token", {"uid": "a b", "token": "t"}, 400, "bad_request", "uid"),
    ("/user/token", {"uid": "a@b", "token": "t"}, 400, "bad_request", "uid"),
    ("/user/token", {"uid": "x" * 129, "token": "t"}, 400, "bad_request", "uid"),
    ("/user/token", {"uid": "a"}, 400, "bad_request", "token"),
    ("/user/token", {"uid": "a", "token": ""}, 400, "bad_request", "token"),
    ("/user/token", {"uid": "a", "token": 5}, 400, "bad_request", "token"),
    ("/user/token", {"uid": "a", "token": "t" * 513}, 400, "bad_request", "token"),
    (
        "/user/token",
        {"uid": "a", "token": "t", "device_flag": 3},
        400,
        "bad_request",
        "device_flag",
    ),
    (
        "/user/token",
        {"uid": "a", "token": "t", "device_flag": True},
        400,
        "bad_request",
        "device_flag",
    ),
    (
        "/user/token",
        {"uid": "a", "token": "t", "device_level": "1"},
        400,
        "bad_request",
        "device_level",
    ),
    ("/user/token", ["a"], 400, "bad_request", None),
    ("/user/device_quit", {"uid": "a"}, 400, "bad_request", "device_flag"),
    ("/user/device_quit", {"uid": "a", "device_flag": -2}, 400, "bad_request", "device_flag"),
    ("/user/onlinestatus", {"uid": "a"}, 400, "bad_request", None),
    ("/user/onlinestatus", UIDS_1001, 413, "too_large", None),
    ("/channel", {"channel_id": "g2", "channel_type": 1}, 400, "bad_request", "channel_type"),
    ("/channel", {"channel_id": "g2", "channel_type": 13}, 400, "bad_request", "channel_type"),
    ("/channel", {"channel_id": "g 2", "channel_type": 2}, 400, "bad_request", "channel_id"),
    ("/channel", {"channel_id": "g2", "channel_type": 2, "large": 2}, 400, "bad_request", "large"),
    (
        "/channel",
        {"channel_id": "g2", "channel_type": 2, "subscribers": "a"},
        400,
        "bad_request",
        "subscribers",
    ),
    (
        "/channel",
        {"channel_id": "g2", "channel_type": 2, "subscribers": ["ok", "not ok"]},
        400,
        "bad_request",
        "subscribers[1]",
    ),
    (
        "/channel",
        {"channel_id": "g2", "channel_type": 2, "subscribers": UIDS_1001},
        413,
        "too_large",
        "subscribers",
    ),
    ("/channel/info", {"channel_type": 2}, 400, "bad_request", "channel_id"),
    ("/channel/delete", {"channel_id": "g1"}, 400, "bad_request", "channel_type"),
    (
        "/channel/subscriber_add",
        {"channel_id": "g1", "channel_type": 2},
        400,
        "bad_request",
        "subscribers",
    ),
    (
        "/channel/subscriber_add",
        {"channel_id": "g1", "channel_type": 2, "temp_subscriber": 1, "subscribers": ["x"]},
        400,
        "bad_request",
        "temp_subscriber",
    ),
    (
        "/channel/subscriber_remove",
        {"channel_id": "g1", "channel_type": 1, "subscribers": ["a"]},
        400,
        "bad_request",
        "channel_type",
    ),
    ("/message/send", {**OK_SEND, "payload": "!!not base64!!"}, 400, "bad_request", "payload"),
    ("/message/send", {**OK_SEND, "payload": 12}, 400, "bad_request", "payload"),
    (
        "/message/send",
        {**OK_SEND, "payload": b64(b"{" * (MAX_PAYLOAD + 1))},
        413,
        "too_large",
        "payload",
    ),
    (
        "/message/send",
        {k: v for k, v in OK_SEND.items() if k != "channel_id"},
        400,
        "bad_request",
        "channel_id",
    ),
    ("/message/send", {**OK_SEND, "channel_type": "2"}, 400, "bad_request", "channel_type"),
    ("/message/send", {**OK_SEND, "header": {"red_dot": 2}}, 400, "bad_request", "header.red_dot"),
    ("/message/send", {**OK_SEND, "header": [1]}, 400, "bad_request", "header"),
    ("/message/send", {**OK_SEND, "from_uid": "a b"}, 400, "bad_request", "from_uid"),
    ("/message/send", {**OK_SEND, "client_msg_no": "n" * 129}, 400, "bad_request", "client_msg_no"),
    ("/message/send", {**OK_SEND, "setting": 256}, 400, "bad_request", "setting"),
    ("/message/send", {**OK_SEND, "expire": -1}, 400, "bad_request", "expire"),
    ("/message/send", {**OK_SEND, "subscribers": UIDS_1001}, 413, "too_large", "subscribers"),
    ("/message/send", {**OK_SEND, "channel_id": "nope"}, 400, "send_refused", None),
    (
        "/message/send",
        {**OK_SEND, "payload": b64({"content": "no type"})},
        400,
        "send_refused",
        None,
    ),
    (
        "/message/send",
        {**OK_SEND, "channel_id": "a b", "channel_type": 1},
        400,
        "bad_request",
        "channel_id",
    ),
    (
        "/message/sendbatch",
        {"from_uid": "a", "subscribers": [], "payload": text("x")},
        400,
        "bad_request",
        "subscribers",
    ),
    (
        "/message/sendbatch",
        {"subscribers": ["b"], "payload": text("x")},
        400,
        "bad_request",
        "from_uid",
    ),
    ("/message/sync", {"uid": "a", "limit": 10001}, 400, "bad_request", "limit"),
    ("/message/sync", {"uid": "a", "message_seq": -1}, 400, "bad_request", "message_seq"),
    (
        "/message/syncack",
        {"uid": "a", "last_message_seq": 0},
        400,
        "bad_request",
        "last_message_seq",
    ),
    ("/message/syncack", {"uid": "a"}, 400, "bad_request", "last_message_seq"),
    (
        "/conversation/sync",
        {"uid": "a", "last_msg_seqs": "g1:2"},
        400,
        "bad_request",
        "last_msg_seqs",
    ),
    (
        "/conversation/sync",
        {"uid": "a", "last_msg_seqs": "g1:x:1"},
        400,
        "bad_request",
        "last_msg_seqs",
    ),
    ("/conversation/sync", {"uid": "a", "msg_count": 101}, 400, "bad_request", "msg_count"),
    (
        "/conversation/sync",
        {"uid": "a", "larges": [{"channel_id": "g1"}]},
        400,
        "bad_request",
        "larges[0].channel_type",
    ),
    ("/conversation/sync", {}, 400, "bad_request", "uid"),
    (
        "/channel/messagesync",
        {"login_uid": "a", "channel_id": "g1", "channel_type": 2, "pull_mode": 2},
        400,
        "bad_request",
        "pull_mode",
    ),
    (
        "/channel/messagesync",
        {"login_uid": "a", "channel_id": "g1", "channel_type": 2, "limit": 10001},
        400,
        "bad_request",
        "limit",
    ),
    (
        "/channel/messagesync",
        {"login_uid": "a", "channel_id": "g1", "channel_type": 2, "start_message_seq": 1.5},
        400,
        "bad_request",
        "start_message_seq",
    ),
]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def node(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Node]:
    """One node for the module (SQLite NORMAL, free ports, key ``API_KEY``)."""
    data_dir = tmp_path_factory.mktemp("validation")
    async with running_node(data_dir, max_payload_bytes=MAX_PAYLOAD) as n:
        yield n


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def http(node: Node) -> AsyncIterator[httpx.AsyncClient]:
    """A client sending the business key."""
    async with api(node) as client:
        yield client


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def seeded(node: Node, http: httpx.AsyncClient) -> Node:
    """State a wrong write would disturb: a user, a group, a message, a queued command."""
    await add_user(node, "a")
    await make_group(node, "g1", ["a", "b"])
    assert (await http.post("/message/send", json=OK_SEND)).status_code == 200
    cmd = {**OK_SEND, "header": {"sync_once": 1}, "payload": b64({"type": 99, "cmd": "c"})}
    assert (await http.post("/message/send", json=cmd)).status_code == 200
    return node


@pytest.mark.parametrize(
    ("path", "body", "status", "code", "field"),
    CASES,
    ids=[f"{i}:{c[0]}:{c[4]}" for i, c in enumerate(CASES)],
)
async def test_bad_input_is_refused_and_changes_nothing(
    seeded: Node,
    http: httpx.AsyncClient,
    path: str,
    body: Any,
    status: int,
    code: str,
    field: str | None,
) -> None:
    before = db_dump(seeded)
    r = await http.post(path, json=body)
    out = r.json()
    assert (r.status_code, out["status"], out["code"]) == (status, status, code), out
    assert out.get("field") == field
    assert isinstance(out["msg"], str) and out["msg"]
    assert db_dump(seeded) == before


@pytest.mark.parametrize(
    "raw", [b"", b"{", b"\xff\xfe", b"[" * 100_000, b'{"uid": "a", "token": "t"'], ids=repr
)
async def test_bad_json_is_400_bad_json(node: Node, http: httpx.AsyncClient, raw: bytes) -> None:
    before = db_dump(node)
    r = await http.post("/user/token", content=raw, headers={"Content-Type": "application/json"})
    assert (r.status_code, r.json()["code"]) == (400, "bad_json")
    assert db_dump(node) == before


async def test_oversize_body_is_413(node: Node, http: httpx.AsyncClient) -> None:
    before = db_dump(node)
    big = b'{"uid": "big", "token": "' + b"x" * (3 * 1024 * 1024) + b'"}'
    r = await http.post("/user/token", content=big)
    assert (r.status_code, r.json()["code"]) == (413, "too_large")

    async def chunks():  # no Content-Length: the limit holds while streaming
        yield b'{"uid": "big", "token": "'
        for _ in range(48):
            yield b"x" * 65536
        yield b'"}'

    r = await http.post("/user/token", content=chunks())
    assert (r.status_code, r.json()["code"]) == (413, "too_large")
    assert await node.store.get_token("big", 0) is None
    assert db_dump(node) == before


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        (rb'{"uid": "\ud800", "token": "t"}', "uid"),
        (rb'{"uid": "a", "token": "\udc00"}', "token"),
    ],
)
async def test_lone_surrogates_are_400(
    node: Node, http: httpx.AsyncClient, raw: bytes, field: str
) -> None:
    before = db_dump(node)
    r = await http.post("/user/token", content=raw)
    assert (r.status_code, r.json()["code"], r.json()["field"]) == (400, "bad_request", field)
    assert db_dump(node) == before
