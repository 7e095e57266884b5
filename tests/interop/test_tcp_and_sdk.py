"""A native-style client over plain TCP and the official JS SDK over WebSocket on one node.

Alice speaks WuKongIM over TCP (:class:`~magpie.client.raw.RawClient` with a ``tcp://`` URL, as
WuKongIM's iOS/Android/Flutter SDKs do: packets back to back on the stream); Bob is
``wukongimjssdk@1.0.4`` over WebSocket. They exchange person and group texts both ways, both
get the business server's CMDs, and after an extension change both follow the
``syncMessageExtra`` CMD with ``/message/extra/sync`` and see the same row.
"""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from magpie.app import Node
from magpie.client.raw import RawClient, ReceivedMessage
from magpie.protocol.packets import Flags, ReasonCode
from tests.support.nodes import add_user, api, client_url, make_group, running_node

from .sdk import SdkFactory, scaled

pytestmark = pytest.mark.interop

PERSON, GROUP = 1, 2


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[Node]:
    async with running_node(tmp_path / "node", ext_coalesce_ms=10) as n:
        yield n


def text(s: str) -> bytes:
    return json.dumps({"type": 1, "content": s}).encode()


async def next_message(client: RawClient) -> ReceivedMessage:
    return await asyncio.wait_for(client.messages.get(), scaled(10))


async def api_send(node: Node, body: dict[str, Any]) -> dict[str, Any]:
    async with api(node) as http:
        r = await http.post("/message/send", json=body)
    assert r.status_code == 200, r.text
    data: dict[str, Any] = r.json()["data"]
    return data


def b64json(obj: object) -> str:
    return base64.b64encode(json.dumps(obj).encode()).decode()


async def test_tcp_client_and_js_sdk_chat_get_cmds_and_sync_extensions(
    node: Node, sdk_factory: SdkFactory
) -> None:
    tok = {uid: await add_user(node, uid) for uid in ("alice", "bob")}
    await make_group(node, "both", ["alice", "bob"])
    async with api(node) as http:
        route = (await http.get("/route", params={"uid": "alice"})).json()
    assert route["tcp_addr"] == f"127.0.0.1:{node.tcp_port}"
    alice = RawClient(f"tcp://{route['tcp_addr']}", "alice", tok["alice"])
    assert alice.url == client_url(node, "tcp")
    await alice.connect(timeout=scaled(10))
    bob = await sdk_factory(
        route["ws_addr"], f"http://127.0.0.1:{node.api_port}", "bob", tok["bob"]
    )
    assert (await bob.connect())["status"] == 1

    # person texts, both ways
    ack = await alice.send("bob", PERSON, text("hi bob, from TCP"))
    assert ack.reason_code == ReasonCode.SUCCESS
    msg = await bob.wait_for("message")
    assert (msg["from_uid"], msg["channel_id"]) == ("alice", "alice")
    assert msg["content"]["content"] == "hi bob, from TCP"
    assert msg["message_id"] == str(ack.message_id)
    sent = await bob.send_text("alice", PERSON, "hi alice, from the browser SDK")
    got = await next_message(alice)
    assert (got.packet.from_uid, got.packet.channel_id) == ("bob", "bob")
    assert json.loads(got.payload)["content"] == "hi alice, from the browser SDK"
    assert got.packet.client_msg_no == sent["client_msg_no"]

    # group texts, both ways
    ack = await alice.send("both", GROUP, text("group hello over TCP"))
    msg = await bob.wait_for("message")
    assert (msg["channel_id"], msg["channel_type"]) == ("both", GROUP)
    assert msg["message_seq"] == ack.message_seq
    await bob.send_text("both", GROUP, "group hello over WebSocket")
    got = await next_message(alice)
    assert (got.packet.channel_id, got.packet.from_uid) == ("both", "bob")
    assert json.loads(got.payload)["content"] == "group hello over WebSocket"

    # a CMD from the business server reaches both
    cmd = {"type": 99, "cmd": "refreshProfile", "param": {"uid": "carol"}}
    await api_send(
        node,
        {
            "header": {"no_persist": 1, "red_dot": 0, "sync_once": 1},
            "from_uid": "admin",
            "channel_id": "both",
            "channel_type": GROUP,
            "payload": b64json(cmd),
        },
    )
    assert (await bob.wait_for("cmd"))["cmd"] == "refreshProfile"
    got = await next_message(alice)
    assert got.packet.flags & Flags.SYNC_ONCE
    assert json.loads(got.payload) == cmd

    # an extension change: both get syncMessageExtra and pull the same row
    async with api(node) as http:
        r = await http.post(
            "/message/extra/update",
            json={
                "message_id": str(ack.message_id),
                "status": "approved",
                "extra_patch": {"by": "bob"},
                "expected_version": 0,
                "action_id": uuid.uuid4().hex,
                "actor_uid": "bob",
            },
        )
    assert r.status_code == 200, r.text
    extra_version = r.json()["data"]["extra_version"]
    sync_cmd = await bob.wait_for({"event": "cmd", "cmd": "syncMessageExtra"})
    assert sync_cmd["param"]["channel_id"] == "both"
    got = await next_message(alice)
    payload = json.loads(got.payload)
    assert payload["cmd"] == "syncMessageExtra" and payload["param"]["channel_id"] == "both"
    assert payload["param"]["extra_version"] >= extra_version

    pulled = await bob.sync_extras("both", GROUP, 0)
    [bob_row] = [r for r in pulled["rows"] if str(r["message_id_str"]) == str(ack.message_id)]
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{node.api_port}",
        headers={"Authorization": f"Bearer {tok['alice']}"},
        timeout=scaled(10),
    ) as as_alice:
        r = await as_alice.post(
            "/message/extra/sync",
            json={"channel_id": "both", "channel_type": GROUP, "extra_version": 0},
        )
    assert r.status_code == 200, r.text
    [alice_row] = [x for x in r.json() if str(x["message_id_str"]) == str(ack.message_id)]
    assert alice_row["status"] == bob_row["status"] == "approved"
    assert alice_row["extra"] == bob_row["extra"] == {"by": "bob"}
    assert alice_row["extra_version"] == bob_row["extra_version"] == extra_version
    assert not bob.errors
    await alice.close()
