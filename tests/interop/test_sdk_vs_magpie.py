"""The official JS SDK (``wukongimjssdk@1.0.4``, one SDK instance per user) against a real Magpie
node started in-process on free ports: connect and token check, person and group text, CMDs from
the business API (online and the offline queue), resend after a dropped connection, master-login
kick, history after being offline, a large text, and the heartbeat.

Every SDK client comes from the ``sdk_factory`` fixture (a fresh worker thread of the module's
Node process), which ends it at teardown.
Timeouts go through the harness's ``MAGPIE_TIME_SCALE``.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from magpie.app import Node
from magpie.core.messaging import SendRequest, SendResult
from magpie.gateway.session import Session
from magpie.protocol.packets import Packet, Ping, ReasonCode
from tests.support.nodes import add_user, api, make_group, running_node

from .sdk import SdkClient, SdkFactory, scaled

pytestmark = pytest.mark.interop

T = TypeVar("T")
Event = dict[str, Any]

CONNECTED, DISCONNECTED, CONNECT_FAIL, CONNECT_KICK = 1, 0, 3, 4
PERSON, GROUP = 1, 2


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[Node]:
    async with running_node(tmp_path / "node") as n:
        yield n


def ws_url(node: Node) -> str:
    return f"ws://127.0.0.1:{node.ws_port}"


def api_url(node: Node) -> str:
    return f"http://127.0.0.1:{node.api_port}"


async def within(aw: Awaitable[T], seconds: float = 10.0) -> T:
    return await asyncio.wait_for(aw, scaled(seconds))


async def eventually(check: Callable[[], bool], seconds: float = 5.0) -> None:
    """Poll ``check()`` until it is true (scaled timeout)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + scaled(seconds)
    while not check():
        if loop.time() > deadline:
            raise AssertionError(f"condition {check} not met within {scaled(seconds):.1f}s")
        await asyncio.sleep(0.02)


async def online(
    sdk_factory: SdkFactory, node: Node, uid: str, token: str, **kwargs: Any
) -> SdkClient:
    """An SDK client of ``uid``, connected (status 1, reason 1)."""
    client = await sdk_factory(ws_url(node), api_url(node), uid, token, **kwargs)
    status = await client.connect()
    assert (status["status"], status["reason"]) == (CONNECTED, ReasonCode.SUCCESS), status
    return client


def user_http(node: Node, token: str) -> httpx.AsyncClient:
    """An HTTP client of the node's API acting as a user (their token as Bearer)."""
    return httpx.AsyncClient(
        base_url=api_url(node),
        headers={"Authorization": f"Bearer {token}"},
        timeout=scaled(10),
    )


def b64json(obj: object) -> str:
    return base64.b64encode(json.dumps(obj).encode()).decode()


def unb64json(data: str) -> Any:
    return json.loads(base64.b64decode(data))


async def api_send(node: Node, body: dict[str, Any]) -> dict[str, Any]:
    async with api(node) as http:
        r = await http.post("/message/send", json=body)
    assert r.status_code == 200, r.text
    data: dict[str, Any] = r.json()["data"]
    return data


async def send_acked(client: SdkClient, channel_id: str, channel_type: int, text: str) -> Event:
    """Send a text and return its SENDACK (asserted successful)."""
    sent = await client.send_text(channel_id, channel_type, text)
    assert "send_error" not in sent, sent
    ack = await client.wait_for({"event": "sendack", "client_seq": sent["client_seq"]})
    assert ack["reason"] == ReasonCode.SUCCESS, ack
    return {**ack, "client_msg_no": sent["client_msg_no"]}


def statuses(client: SdkClient) -> list[tuple[int, int | None]]:
    return [(e["status"], e["reason"]) for e in client.find("status")]


# --- 1. connect ---------------------------------------------------------------------------------


async def test_connect_with_token_from_user_token(node: Node, sdk_factory: SdkFactory) -> None:
    token = await add_user(node, "alice", "secret-alice")
    alice = await online(sdk_factory, node, "alice", token)
    state = await alice.state()
    assert state["status"] == CONNECTED and state["ws_ready_state"] == 1
    [session] = node.gateway.online("alice")
    assert session.device_flag == 1
    assert not alice.errors


async def test_wrong_token_is_connect_fail_auth_fail(node: Node, sdk_factory: SdkFactory) -> None:
    await add_user(node, "alice", "secret-alice")
    alice = await sdk_factory(ws_url(node), api_url(node), "alice", "not-the-token")
    status = await alice.connect()
    assert (status["status"], status["reason"]) == (CONNECT_FAIL, ReasonCode.AUTH_FAIL)
    assert node.gateway.online("alice") == []
    assert not alice.errors


# --- 2. text messages ---------------------------------------------------------------------------


async def test_person_text_reaches_peer(node: Node, sdk_factory: SdkFactory) -> None:
    tok = {uid: await add_user(node, uid) for uid in ("alice", "bob")}
    alice = await online(sdk_factory, node, "alice", tok["alice"])
    bob = await online(sdk_factory, node, "bob", tok["bob"])

    ack = await send_acked(alice, "bob", PERSON, "hi bob")
    assert ack["message_seq"] >= 1 and int(ack["message_id"]) > 0

    msg = await bob.wait_for("message")
    assert msg["channel_id"] == "alice" and msg["channel_type"] == PERSON
    assert msg["from_uid"] == "alice"
    assert msg["content_type"] == 1 and msg["content"]["content"] == "hi bob"
    assert msg["message_id"] == ack["message_id"] and msg["message_seq"] == ack["message_seq"]
    assert msg["client_msg_no"] == ack["client_msg_no"]
    assert msg["header"]["red_dot"] and not msg["header"]["sync_once"]
    # The sender's own connection never gets its message back (only the SDK's local echo).
    assert alice.find("message") == []
    assert len(alice.find("local_message")) == 1
    assert not alice.errors and not bob.errors


async def test_group_text_reaches_other_members(node: Node, sdk_factory: SdkFactory) -> None:
    tok = {uid: await add_user(node, uid) for uid in ("alice", "bob", "carol")}
    await make_group(node, "g-team", ["alice", "bob", "carol"])
    alice, bob, carol = await asyncio.gather(
        *(online(sdk_factory, node, uid, tok[uid]) for uid in ("alice", "bob", "carol"))
    )

    ack = await send_acked(alice, "g-team", GROUP, "hello team")
    assert ack["message_seq"] >= 1
    for member in (bob, carol):
        msg = await member.wait_for("message")
        assert (msg["channel_id"], msg["channel_type"]) == ("g-team", GROUP)
        assert msg["from_uid"] == "alice" and msg["content"]["content"] == "hello team"
        assert msg["message_seq"] == ack["message_seq"]
        assert msg["message_id"] == ack["message_id"]
    assert alice.find("message") == []
    assert not any(c.errors for c in (alice, bob, carol))


# --- 3. CMD messages ----------------------------------------------------------------------------


def extra_cmd(param: dict[str, Any]) -> dict[str, Any]:
    return {"type": 99, "cmd": "syncMessageExtra", "param": param}


@pytest.mark.parametrize("no_persist", [1, 0])
async def test_api_cmd_reaches_cmd_listener_only(
    node: Node, sdk_factory: SdkFactory, no_persist: int
) -> None:
    tok = {uid: await add_user(node, uid) for uid in ("alice", "bob")}
    bob = await online(sdk_factory, node, "bob", tok["bob"])
    param = {"channel_id": "alice", "channel_type": PERSON, "extra_version": 7}
    sent = await api_send(
        node,
        {
            "header": {"no_persist": no_persist, "red_dot": 0, "sync_once": 1},
            "from_uid": "alice",
            "channel_id": "bob",
            "channel_type": PERSON,
            "payload": b64json(extra_cmd(param)),
        },
    )

    cmd = await bob.wait_for("cmd")
    assert cmd["cmd"] == "syncMessageExtra" and cmd["param"] == param
    assert cmd["content_type"] == 99
    assert cmd["header"]["sync_once"] and cmd["header"]["no_persist"] == bool(no_persist)
    assert cmd["message_id"] == str(sent["message_id"])
    assert cmd["client_msg_no"] == sent["client_msg_no"]

    # A text sent after the CMD goes down the same connection after it: once bob has the text,
    # any message-listener call for the CMD would have happened already.
    await api_send(
        node,
        {
            "header": {"red_dot": 1},
            "from_uid": "alice",
            "channel_id": "bob",
            "channel_type": PERSON,
            "payload": b64json({"type": 1, "content": "after the cmd"}),
        },
    )
    marker = await bob.wait_for("message")
    assert marker["content"] == {"type": 1, "content": "after the cmd"}
    assert [m["content_type"] for m in bob.find("message")] == [1]
    assert len(bob.find("cmd")) == 1
    assert not bob.errors


async def test_persisted_cmd_for_offline_user_is_in_message_sync(
    node: Node, sdk_factory: SdkFactory
) -> None:
    tok = {uid: await add_user(node, uid) for uid in ("alice", "bob", "carol")}
    await make_group(node, "g-cmd", ["alice", "bob", "carol"])
    bob = await online(sdk_factory, node, "bob", tok["bob"])  # carol stays offline
    param = {"channel_id": "g-cmd", "channel_type": GROUP, "extra_version": 3}
    sent = await api_send(
        node,
        {
            "header": {"no_persist": 0, "red_dot": 0, "sync_once": 1},
            "from_uid": "alice",
            "channel_id": "g-cmd",
            "channel_type": GROUP,
            "payload": b64json(extra_cmd(param)),
        },
    )
    online_copy = await bob.wait_for("cmd")
    assert online_copy["cmd"] == "syncMessageExtra" and online_copy["param"] == param
    assert online_copy["channel_id"] == "g-cmd" and online_copy["channel_type"] == GROUP

    async with api(node) as http:
        r = await http.post("/message/sync", json={"uid": "carol", "message_seq": 0, "limit": 100})
    assert r.status_code == 200, r.text
    [queued] = r.json()
    assert queued["header"]["sync_once"] == 1 and queued["header"]["no_persist"] == 0
    assert queued["message_idstr"] == str(sent["message_id"])
    assert queued["client_msg_no"] == sent["client_msg_no"]
    assert (queued["channel_id"], queued["channel_type"]) == ("g-cmd", GROUP)
    assert queued["from_uid"] == "alice" and queued["message_seq"] >= 1
    assert unb64json(queued["payload"]) == extra_cmd(param)

    # A no-persist CMD never reaches the offline queue.
    await api_send(
        node,
        {
            "header": {"no_persist": 1, "sync_once": 1},
            "from_uid": "alice",
            "channel_id": "g-cmd",
            "channel_type": GROUP,
            "payload": b64json(extra_cmd({"extra_version": 4})),
        },
    )
    await bob.wait_for("cmd")
    async with api(node) as http:
        r = await http.post("/message/sync", json={"uid": "carol", "message_seq": 0})
    assert [m["message_idstr"] for m in r.json()] == [str(sent["message_id"])]
    assert not bob.errors


# --- 4. resend after a dropped connection -------------------------------------------------------


async def test_unacked_send_resent_after_reconnect_is_stored_once(
    node: Node, sdk_factory: SdkFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first SEND is held inside ``Messaging.send`` while the SDK's socket is dropped; then
    it commits, but its SENDACK dies with the socket. The SDK reconnects (3 s), resends the
    same client_msg_no, and the server answers it from the dedupe record."""
    tok = {uid: await add_user(node, uid) for uid in ("alice", "bob")}
    alice = await online(sdk_factory, node, "alice", tok["alice"])
    bob = await online(sdk_factory, node, "bob", tok["bob"])

    original = node.messaging.send
    held, release = asyncio.Event(), asyncio.Event()
    results: list[tuple[SendRequest, SendResult]] = []

    async def gated_send(req: SendRequest) -> SendResult:
        if req.from_uid == "alice" and not held.is_set():
            held.set()
            await release.wait()
        result = await original(req)
        if req.from_uid == "alice":
            results.append((req, result))
        return result

    monkeypatch.setattr(node.messaging, "send", gated_send)
    try:
        sent = await alice.send_text("bob", PERSON, "exactly once")
        assert "send_error" not in sent, sent
        await within(held.wait())
        killed = await alice.kill_socket("terminate")
        assert killed["ready_state"] == 1
        await alice.wait_for({"event": "status", "status": DISCONNECTED})
    finally:
        release.set()
    await eventually(lambda: len(results) == 1)
    first_req, first = results[0]
    assert first.reason is ReasonCode.SUCCESS and not first.duplicate
    assert first_req.client_msg_no == sent["client_msg_no"]

    # The SDK reconnects after its fixed 3 s delay and resends the unacked SEND.
    reconnected = await alice.wait_for({"event": "status", "status": CONNECTED}, timeout=15)
    assert reconnected["reason"] == ReasonCode.SUCCESS
    ack = await alice.wait_for({"event": "sendack", "client_seq": sent["client_seq"]})
    assert ack["reason"] == ReasonCode.SUCCESS
    assert ack["message_seq"] == first.message_seq and ack["message_id"] == str(first.message_id)
    assert len(alice.find("sendack")) == 1, "the first SENDACK must have been lost"
    assert len(results) == 2
    resend_req, resend = results[1]
    assert resend_req.client_msg_no == sent["client_msg_no"] and resend.duplicate
    assert resend.message_id == first.message_id

    # Stored once: the channel history has one message with that client_msg_no.
    async with user_http(node, tok["alice"]) as http:
        r = await http.post(
            "/channel/messagesync",
            json={"login_uid": "alice", "channel_id": "bob", "channel_type": PERSON, "limit": 100},
        )
    assert r.status_code == 200, r.text
    history = r.json()["messages"]
    assert [m["client_msg_no"] for m in history] == [sent["client_msg_no"]]
    assert history[0]["message_seq"] == ack["message_seq"]

    # Delivered once: bob gets the message, then a later marker, and nothing in between.
    assert (await bob.wait_for("message"))["client_msg_no"] == sent["client_msg_no"]
    await send_acked(alice, "bob", PERSON, "marker")
    assert (await bob.wait_for("message"))["content"]["content"] == "marker"
    assert [m["client_msg_no"] for m in bob.find("message")].count(sent["client_msg_no"]) == 1
    assert statuses(alice) == [(CONNECTED, 1), (DISCONNECTED, 0), (CONNECTED, 1)]
    assert not alice.errors and not bob.errors


# --- 5. master login kick -----------------------------------------------------------------------


async def test_master_login_kicks_older_connection(node: Node, sdk_factory: SdkFactory) -> None:
    token = await add_user(node, "alice", level=1)
    first = await online(sdk_factory, node, "alice", token, device_flag=1)
    second = await online(sdk_factory, node, "alice", token, device_flag=1)

    kicked = await first.wait_for(
        lambda e: e.get("event") == "status" and e.get("status") != CONNECTED
    )
    assert (kicked["status"], kicked["reason"]) == (CONNECT_KICK, ReasonCode.CONNECT_KICK)
    [session] = node.gateway.online("alice")
    assert session.device_flag == 1
    state = await second.state()
    assert state["status"] == CONNECTED and state["ws_ready_state"] == 1
    assert statuses(second) == [(CONNECTED, 1)]
    assert not first.errors and not second.errors


# --- 6. offline messages after reconnect --------------------------------------------------------


async def test_messages_sent_while_offline_are_synced_after_reconnect(
    node: Node, sdk_factory: SdkFactory
) -> None:
    tok = {uid: await add_user(node, uid) for uid in ("alice", "bob")}
    alice = await online(sdk_factory, node, "alice", tok["alice"])
    bob = await online(sdk_factory, node, "bob", tok["bob"])
    await bob.disconnect()
    await eventually(lambda: node.gateway.online("bob") == [])

    texts = ["while you were out 1", "while you were out 2", "while you were out 3"]
    acks = [await send_acked(alice, "bob", PERSON, text) for text in texts]
    seqs = [a["message_seq"] for a in acks]
    assert seqs == sorted(seqs) and len(set(seqs)) == 3

    status = await bob.connect()
    assert (status["status"], status["reason"]) == (CONNECTED, ReasonCode.SUCCESS)
    async with user_http(node, tok["bob"]) as http:
        body = {"uid": "bob", "version": 0, "msg_count": 10}
        r = await http.post("/conversation/sync", json=body)
        assert r.status_code == 200, r.text
        [conv] = [c for c in r.json() if (c["channel_id"], c["channel_type"]) == ("alice", 1)]
        assert conv["unread"] == 3
        assert conv["last_msg_seq"] == seqs[-1]
        assert conv["last_client_msg_no"] == acks[-1]["client_msg_no"]
        assert [unb64json(m["payload"])["content"] for m in conv["recents"]] == texts

        r = await http.post(
            "/channel/messagesync",
            json={
                "login_uid": "bob",
                "channel_id": "alice",
                "channel_type": PERSON,
                "start_message_seq": 0,
                "end_message_seq": 0,
                "limit": 100,
                "pull_mode": 1,
            },
        )
        assert r.status_code == 200, r.text
        page = r.json()
    assert page["more"] == 0
    history = page["messages"]
    assert [m["message_seq"] for m in history] == seqs
    assert [m["message_idstr"] for m in history] == [a["message_id"] for a in acks]
    for m, text in zip(history, texts, strict=True):
        assert m["channel_id"] == "alice" and m["from_uid"] == "alice"
        assert unb64json(m["payload"]) == {"type": 1, "content": text}
    assert not alice.errors and not bob.errors


# --- 7. payload edges ---------------------------------------------------------------------------


async def test_16k_text_arrives_intact(node: Node, sdk_factory: SdkFactory) -> None:
    tok = {uid: await add_user(node, uid) for uid in ("alice", "bob")}
    alice = await online(sdk_factory, node, "alice", tok["alice"])
    bob = await online(sdk_factory, node, "bob", tok["bob"])
    chunk = 'JSON "quotes" \\ back\\slash\n\ttab {braces} ünïcødé 中文 😀 </script> \x01 '
    text = (chunk * (16 * 1024 // len(chunk) + 1))[: 16 * 1024]
    assert len(text) == 16 * 1024

    ack = await send_acked(alice, "bob", PERSON, text)
    msg = await bob.wait_for("message")
    assert msg["content"] == {"type": 1, "content": text}
    assert msg["message_seq"] == ack["message_seq"]
    async with user_http(node, tok["bob"]) as http:
        r = await http.post(
            "/channel/messagesync",
            json={"login_uid": "bob", "channel_id": "alice", "channel_type": PERSON},
        )
    [stored] = r.json()["messages"]
    assert unb64json(stored["payload"]) == {"type": 1, "content": text}
    assert not alice.errors and not bob.errors


async def test_non_json_payload_is_refused_and_never_reaches_sdk(
    node: Node, sdk_factory: SdkFactory
) -> None:
    """The SDK dies on a payload that is not JSON (spec §3), so the server refuses it."""
    tok = {uid: await add_user(node, uid) for uid in ("alice", "bob")}
    bob = await online(sdk_factory, node, "bob", tok["bob"])
    async with api(node) as http:
        for payload in (b"not json", b'["an", "array"]', b'{"content": "no type"}'):
            r = await http.post(
                "/message/send",
                json={
                    "from_uid": "alice",
                    "channel_id": "bob",
                    "channel_type": PERSON,
                    "payload": base64.b64encode(payload).decode(),
                },
            )
            assert r.status_code == 400, r.text
            assert r.json().get("reason") == ReasonCode.PAYLOAD_DECODE_ERROR, r.text
    await api_send(
        node,
        {
            "from_uid": "alice",
            "channel_id": "bob",
            "channel_type": PERSON,
            "payload": b64json({"type": 1, "content": "fine"}),
        },
    )
    msg = await bob.wait_for("message")
    assert msg["content"]["content"] == "fine"
    assert len(bob.find("message")) == 1 and not bob.errors


# --- heartbeat ----------------------------------------------------------------------------------


async def test_heartbeat_ping_pong_keeps_connection(
    tmp_path: Path, sdk_factory: SdkFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a 500 ms heartbeat the SDK PINGs, the server PONGs, and the connection lives on.

    The SDK gives up after 4 PINGs without a PONG (about 2 s here) and the server's idle timeout
    is 1.5 s, so 3 s on one connection shows both sides work."""
    async with running_node(tmp_path / "node", idle_timeout=1.5 * scaled(1)) as node:
        token = await add_user(node, "alice")
        pings: list[str] = []
        original = node.gateway._dispatch

        def counting(session: Session, packet: Packet) -> None:
            if isinstance(packet, Ping):
                pings.append(session.conn_id)
            original(session, packet)

        monkeypatch.setattr(node.gateway, "_dispatch", counting)
        alice = await online(sdk_factory, node, "alice", token, heartbeat_interval_ms=500)
        [session] = node.gateway.online("alice")
        await asyncio.sleep(scaled(3))

        assert len(pings) >= 4 and set(pings) == {session.conn_id}
        assert node.gateway.online("alice") == [session]
        assert statuses(alice) == [(CONNECTED, 1)]
        state = await alice.state()
        assert state["status"] == CONNECTED and state["ws_ready_state"] == 1
        assert "ping没有响应" not in alice.log_tail(200)
        assert not alice.errors
        await alice.close()
