"""The official JS SDK (``wukongimjssdk@1.0.4``) against a three-node cluster: three
``magpie serve`` processes on one PostgreSQL database and one Redis, alice, bob and carol each
on a different node — person and group texts both ways, a group under concurrent senders in
seq order, CMDs from another node's business API (live and from the offline queue), a
master-login kick across nodes, and the messages missed while offline synced through another
node after reconnecting there."""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from magpie.protocol.packets import ReasonCode
from tests.support.cluster import Cluster, ServeNode, start_cluster
from tests.support.postgres import new_schema
from tests.support.redis import require_redis

from .sdk import SdkClient, SdkFactory, scaled

pytestmark = pytest.mark.interop

CONNECTED, CONNECT_KICK = 1, 4
PERSON, GROUP = 1, 2


@pytest.fixture(scope="module")
def cluster(pg_database: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    started = start_cluster(
        tmp_path_factory.mktemp("sdk-cluster"), new_schema(pg_database, "sdk"), require_redis()
    )
    try:
        started.wait_ready_sync()
        yield started
    finally:
        started.stop()


def names(*uids: str) -> list[str]:
    tag = uuid.uuid4().hex[:6]
    return [f"{uid}{tag}" for uid in uids]


async def online(sdk_factory: SdkFactory, node: ServeNode, uid: str, **kwargs: Any) -> SdkClient:
    client = await sdk_factory(node.ws_url, node.api_url, uid, f"tok-{uid}", **kwargs)
    status = await client.connect()
    assert (status["status"], status["reason"]) == (CONNECTED, ReasonCode.SUCCESS), status
    return client


async def send_acked(client: SdkClient, channel_id: str, channel_type: int, text: str) -> Any:
    sent = await client.send_text(channel_id, channel_type, text)
    assert "send_error" not in sent, sent
    ack = await client.wait_for({"event": "sendack", "client_seq": sent["client_seq"]})
    assert ack["reason"] == ReasonCode.SUCCESS, ack
    return {**ack, "client_msg_no": sent["client_msg_no"]}


def b64json(obj: object) -> str:
    return base64.b64encode(json.dumps(obj).encode()).decode()


async def test_person_texts_both_ways_across_nodes(
    cluster: Cluster, sdk_factory: SdkFactory
) -> None:
    alice_id, bob_id = names("alice", "bob")
    await cluster.add_users([alice_id, bob_id])
    alice = await online(sdk_factory, cluster[0], alice_id)
    bob = await online(sdk_factory, cluster[1], bob_id)
    ack = await send_acked(alice, bob_id, PERSON, "hi bob")
    msg = await bob.wait_for("message")
    assert (msg["channel_id"], msg["from_uid"]) == (alice_id, alice_id)
    assert msg["content"]["content"] == "hi bob" and msg["message_id"] == ack["message_id"]
    reply = await send_acked(bob, alice_id, PERSON, "hi alice")
    back = await alice.wait_for("message")
    assert back["channel_id"] == bob_id and back["message_id"] == reply["message_id"]
    assert back["message_seq"] == ack["message_seq"] + 1, "one person channel, one seq line"
    assert not alice.errors and not bob.errors


async def test_a_group_in_seq_order_under_senders_on_two_nodes(
    cluster: Cluster, sdk_factory: SdkFactory
) -> None:
    alice_id, bob_id, carol_id = names("alice", "bob", "carol")
    group = names("g")[0]
    await cluster.add_users([alice_id, bob_id, carol_id])
    await cluster.make_group(group, [alice_id, bob_id, carol_id])
    alice = await online(sdk_factory, cluster[0], alice_id)
    bob = await online(sdk_factory, cluster[1], bob_id)
    carol = await online(sdk_factory, cluster[2], carol_id)
    n = 10
    acks = await asyncio.gather(
        *(send_acked(alice, group, GROUP, f"a{i}") for i in range(n)),
        *(send_acked(carol, group, GROUP, f"c{i}") for i in range(n)),
    )
    assert sorted(a["message_seq"] for a in acks) == list(range(1, 2 * n + 1))
    for _ in range(2 * n):
        await bob.wait_for("message", timeout=10)
    seen = [m["message_seq"] for m in bob.find("message")]
    assert seen == list(range(1, 2 * n + 1)), f"bob (node 2) saw {seen}"
    for member, other in ((alice, "c"), (carol, "a")):
        for _ in range(n):
            await member.wait_for("message", timeout=10)
        got = member.find("message")
        assert [m["message_seq"] for m in got] == sorted(m["message_seq"] for m in got)
        assert {m["content"]["content"][0] for m in got} == {other}
    assert not any(c.errors for c in (alice, bob, carol))


async def test_cmds_from_another_nodes_api_live_and_queued(
    cluster: Cluster, sdk_factory: SdkFactory
) -> None:
    alice_id, bob_id, carol_id = names("alice", "bob", "carol")
    group = names("g")[0]
    await cluster.add_users([alice_id, bob_id, carol_id])
    await cluster.make_group(group, [alice_id, bob_id, carol_id])
    bob = await online(sdk_factory, cluster[1], bob_id)  # carol stays offline
    param = {"channel_id": group, "channel_type": GROUP, "extra_version": 3}
    cmd = {"type": 99, "cmd": "syncMessageExtra", "param": param}
    async with cluster[2].api() as http:
        r = await http.post(
            "/message/send",
            json={"header": {"no_persist": 0, "red_dot": 0, "sync_once": 1},
                  "from_uid": alice_id, "channel_id": group, "channel_type": GROUP,
                  "payload": b64json(cmd)},
        )  # fmt: skip
        assert r.status_code == 200, r.text
        sent = r.json()["data"]
    live = await bob.wait_for("cmd")
    assert live["cmd"] == "syncMessageExtra" and live["param"] == param
    assert live["message_id"] == str(sent["message_id"])
    async with cluster[0].api() as http:
        r = await http.post("/message/sync", json={"uid": carol_id, "message_seq": 0})
        [queued] = r.json()
    assert queued["message_idstr"] == str(sent["message_id"])
    assert json.loads(base64.b64decode(queued["payload"])) == cmd
    assert not bob.errors


async def test_a_master_login_on_another_node_kicks_the_sdk(
    cluster: Cluster, sdk_factory: SdkFactory
) -> None:
    (alice_id,) = names("alice")
    await cluster.add_users([alice_id], level=1)
    first = await online(sdk_factory, cluster[0], alice_id, device_flag=1)
    second = await online(sdk_factory, cluster[2], alice_id, device_flag=1)
    kicked = await first.wait_for(
        lambda e: e.get("event") == "status" and e.get("status") != CONNECTED
    )
    assert (kicked["status"], kicked["reason"]) == (CONNECT_KICK, ReasonCode.CONNECT_KICK)
    state = await second.state()
    assert state["status"] == CONNECTED
    assert not first.errors and not second.errors


async def test_missed_messages_are_synced_on_another_node_after_reconnect(
    cluster: Cluster, sdk_factory: SdkFactory
) -> None:
    alice_id, bob_id = names("alice", "bob")
    await cluster.add_users([alice_id, bob_id])
    alice = await online(sdk_factory, cluster[0], alice_id)
    bob = await online(sdk_factory, cluster[1], bob_id)
    await send_acked(alice, bob_id, PERSON, "before")
    await bob.wait_for("message")
    await bob.disconnect()
    texts = ["while you were out 1", "while you were out 2"]
    acks = [await send_acked(alice, bob_id, PERSON, t) for t in texts]
    again = await online(sdk_factory, cluster[2], bob_id)  # bob comes back on node 3
    async with httpx.AsyncClient(
        base_url=cluster[2].api_url,
        headers={"Authorization": f"Bearer tok-{bob_id}"},
        timeout=scaled(10),
    ) as http:
        r = await http.post("/conversation/sync", json={"uid": bob_id, "version": 0})
        [conv] = [c for c in r.json() if c["channel_id"] == alice_id]
        assert conv["last_msg_seq"] == acks[-1]["message_seq"]
        r = await http.post(
            "/channel/messagesync",
            json={"login_uid": bob_id, "channel_id": alice_id, "channel_type": PERSON,
                  "start_message_seq": 2, "end_message_seq": 0, "limit": 10, "pull_mode": 1},
        )  # fmt: skip
        page = r.json()["messages"]
    assert [m["message_idstr"] for m in page] == [a["message_id"] for a in acks]
    live = await send_acked(alice, bob_id, PERSON, "welcome back")
    got = await again.wait_for("message")
    assert got["message_id"] == live["message_id"], "live delivery follows bob to node 3"
    assert not alice.errors and not again.errors
