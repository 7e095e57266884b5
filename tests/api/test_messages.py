"""``/message/send``, ``/message/sendbatch`` and the offline command queue
(``/message/sync`` + ``/message/syncack``, spec §4.1)."""

from __future__ import annotations

import asyncio
import base64
import json

import httpx

from magpie.app import Node
from magpie.domain.channels import fake_channel_id
from magpie.protocol.packets import Flags
from tests.api.helpers import b64, db_dump, text
from tests.support.nodes import add_user, connect, make_group, time_scale

T = 5 * time_scale()
CMD = {"type": 99, "cmd": "syncMessageExtra", "param": {"x": 1}}


async def test_send_person_message_returns_ids(node: Node, http: httpx.AsyncClient) -> None:
    body = {
        "header": {"red_dot": 1},
        "from_uid": "a",
        "channel_id": "b",
        "channel_type": 1,
        "payload": text("hi"),
    }
    r = await http.post("/message/send", json=body)
    assert r.status_code == 200
    out = r.json()
    assert out["status"] == 200 and set(out["data"]) == {
        "message_id",
        "client_msg_no",
        "message_seq",
    }
    data = out["data"]
    assert data["message_seq"] == 1 and data["client_msg_no"].endswith("0")
    assert len(data["client_msg_no"]) == 33
    stored = await node.store.get_message(data["message_id"])
    assert stored is not None and stored.channel_id == fake_channel_id("a", "b")
    assert stored.flags & Flags.RED_DOT


async def test_send_is_idempotent_by_client_msg_no(node: Node, http: httpx.AsyncClient) -> None:
    await make_group(node, "g1", ["a", "b"])
    body = {
        "client_msg_no": "m-1",
        "from_uid": "a",
        "channel_id": "g1",
        "channel_type": 2,
        "payload": text("once"),
    }
    first = (await http.post("/message/send", json=body)).json()["data"]
    again = (await http.post("/message/send", json=body)).json()["data"]
    assert first == again and first["client_msg_no"] == "m-1"
    assert await node.store.max_seq("g1", 2) == 1


async def test_send_reaches_online_members(node: Node, http: httpx.AsyncClient) -> None:
    token = await add_user(node, "b")
    await make_group(node, "g1", ["a", "b"])
    client = await connect(node, "b", token)
    body = {
        "from_uid": "a",
        "channel_id": "g1",
        "channel_type": 2,
        "payload": text("hey"),
        "topic": "t1",
        "setting": 0,
    }
    r = await http.post("/message/send", json=body)
    got = await asyncio.wait_for(client.messages.get(), T)
    assert got.packet.message_id == r.json()["data"]["message_id"]
    assert json.loads(got.payload)["content"] == "hey"
    await client.close()


async def test_refused_send_is_400_with_reason(node: Node, http: httpx.AsyncClient) -> None:
    before = db_dump(node)
    body = {"from_uid": "a", "channel_id": "nope", "channel_type": 2, "payload": text("x")}
    r = await http.post("/message/send", json=body)
    assert r.status_code == 400
    assert r.json() | {"msg": ""} == {
        "status": 400,
        "code": "send_refused",
        "msg": "",
        "reason": 5,
        "reason_name": "channel_not_exist",
    }
    body = {"from_uid": "a", "channel_id": "b", "channel_type": 1, "payload": b64(b"not json")}
    r = await http.post("/message/send", json=body)
    assert (r.status_code, r.json()["reason_name"]) == (400, "payload_decode_error")
    assert db_dump(node) == before


async def test_payload_limit_is_max_payload_bytes(node: Node, http: httpx.AsyncClient) -> None:
    limit = node.settings.max_payload_bytes
    filler = b'{"type":1,"content":"'
    at_limit = filler + b"x" * (limit - len(filler) - 2) + b'"}'
    assert len(at_limit) == limit
    body = {"from_uid": "a", "channel_id": "b", "channel_type": 1}
    ok = await http.post("/message/send", json={**body, "payload": b64(at_limit)})
    assert ok.status_code == 200
    over = at_limit[:-2] + b'x"}'
    r = await http.post("/message/send", json={**body, "payload": b64(over)})
    assert (r.status_code, r.json()["code"], r.json()["field"]) == (413, "too_large", "payload")


async def test_sendbatch_reports_failures(node: Node, http: httpx.AsyncClient) -> None:
    body = {
        "header": {"red_dot": 1},
        "from_uid": "sys",
        "subscribers": ["a", "b"],
        "payload": text("notice"),
    }
    r = await http.post("/message/sendbatch", json=body)
    assert (r.status_code, r.json()) == (200, {"fail_uids": [], "reason": []})
    for uid in ("a", "b"):
        assert await node.store.max_seq(fake_channel_id("sys", uid), 1) == 1
    bad = {**body, "payload": b64(b"[]")}
    r = await http.post("/message/sendbatch", json=bad)
    assert r.json() == {"fail_uids": ["a", "b"], "reason": ["payload_decode_error"] * 2}


async def test_sync_once_cmd_for_offline_users_is_queued_and_acked(
    node: Node, http: httpx.AsyncClient
) -> None:
    await make_group(node, "g1", ["a", "b", "c"])
    body = {
        "header": {"no_persist": 0, "red_dot": 0, "sync_once": 1},
        "from_uid": "a",
        "channel_id": "g1",
        "channel_type": 2,
        "subscribers": ["b"],
        "payload": b64(CMD),
    }
    ids = []
    for _ in range(3):
        r = await http.post("/message/send", json=body)
        assert r.status_code == 200 and r.json()["data"]["message_seq"] == 0
        ids.append(r.json()["data"]["message_id"])
    assert await node.store.max_seq("g1", 2) == 0, "sync-once stays out of the channel log"
    r = await http.post("/message/sync", json={"uid": "b", "message_seq": 0, "limit": 2})
    page = r.json()
    assert r.status_code == 200 and [m["message_seq"] for m in page] == [1, 2]
    first = page[0]
    assert first["message_id"] == ids[0] and first["message_idstr"] == str(ids[0])
    assert first["header"] == {"no_persist": 0, "red_dot": 0, "sync_once": 1}
    assert first["channel_id"] == "g1" and first["from_uid"] == "a"
    assert json.loads(base64.b64decode(first["payload"])) == CMD
    assert (await http.post("/message/sync", json={"uid": "c"})).json() == []
    r = await http.post("/message/syncack", json={"uid": "b", "last_message_seq": 2})
    assert (r.status_code, r.json()) == (200, {"status": 200})
    rest = (await http.post("/message/sync", json={"uid": "b", "message_seq": 0})).json()
    assert [m["message_seq"] for m in rest] == [3]
    # a client that claims more than the cursor still restarts from the cursor (min rule)
    rest = (await http.post("/message/sync", json={"uid": "b", "message_seq": 9})).json()
    assert [m["message_seq"] for m in rest] == [3]
    await http.post("/message/syncack", json={"uid": "b", "last_message_seq": 3})
    assert (await http.post("/message/sync", json={"uid": "b"})).json() == []
    assert await node.store.queue_cursor("b") == 3


async def test_no_persist_cmd_is_not_queued(node: Node, http: httpx.AsyncClient) -> None:
    body = {
        "header": {"no_persist": 1, "sync_once": 1},
        "from_uid": "a",
        "channel_id": "b",
        "channel_type": 1,
        "payload": b64(CMD),
    }
    r = await http.post("/message/send", json=body)
    assert r.status_code == 200 and r.json()["data"]["message_seq"] == 0
    assert (await http.post("/message/sync", json={"uid": "b"})).json() == []
    assert await node.store.get_message(r.json()["data"]["message_id"]) is None
