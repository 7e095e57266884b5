"""Self-tests of the interop harness (host + driver bundles, SdkHost, SdkClient) that need no
Magpie server.

The first test is the smoke test: a bare WebSocket responder records the SDK's first frame and
checks it is a CONNECT, which proves the bundles load under Node 20 (the driver in a worker
thread of the host), the ``ws`` shim works and the JSON-lines protocol works. Two tests pin
what sharing one host process must not change: clients are separate SDK instances, and closing
the host leaves no process and no connection behind. The others run the real SDK against
``loopback.LoopbackPeer`` (a minimal test-only v2 peer) so every driver command and event is
exercised, and pin SDK 1.0.4 behaviour the server has to live with (reconnect delay, resend
without DUP, kick, no reconnect after a failed CONNACK, unhandled rejections on bad payloads).
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import threading
import time
from collections.abc import Awaitable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar

import pytest
from websockets.asyncio.server import ServerConnection, serve

from .loopback import LoopbackPeer, PeerConn, parse_connect
from .sdk import DriverError, SdkClient, SdkFactory, SdkHost, scaled

pytestmark = pytest.mark.interop

UID = "harness-u1"
TOKEN = "tok-harness-1"
T = TypeVar("T")


async def within(aw: Awaitable[T], seconds: float = 10.0) -> T:
    return await asyncio.wait_for(aw, scaled(seconds))


def assert_process_gone(pid: int | None) -> None:
    assert pid is not None
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


async def connected(
    sdk_factory: SdkFactory, peer: LoopbackPeer, **kwargs: Any
) -> tuple[SdkClient, PeerConn]:
    client = await sdk_factory(peer.url, None, UID, TOKEN, **kwargs)
    status = await client.connect()
    assert (status["status"], status["reason"]) == (1, 1), status
    conn = await within(peer.conns.get())
    return client, conn


# ---------------------------------------------------------------------------------------------


async def test_sdk_sends_connect_frame(sdk_factory: SdkFactory, sdk_host: SdkHost) -> None:
    loop = asyncio.get_running_loop()
    first: asyncio.Future[bytes] = loop.create_future()

    async def handler(ws: ServerConnection) -> None:
        async for message in ws:
            if isinstance(message, bytes) and not first.done():
                first.set_result(message)

    async with serve(handler, "127.0.0.1", 0) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        client = await sdk_factory(f"ws://127.0.0.1:{port}", None, UID, TOKEN)
        ready = client.events[0]
        assert ready["event"] == "ready"
        assert ready["sdk"] == "1.0.4"
        assert ready["node"].startswith("v")
        assert ready["pid"] == client.pid == sdk_host.pid  # the module's one Node process
        assert isinstance(ready["thread_id"], int) and ready["thread_id"] > 0

        await client.request({"cmd": "connect"}, "done")
        data = await within(first)

        assert data[0] == 0x10  # CONNECT, no flags
        assert UID.encode() in data
        assert TOKEN.encode() in data
        keys = re.findall(rb"[A-Za-z0-9+/]{43}=", data)
        assert len(keys) == 1
        assert len(base64.b64decode(keys[0])) == 32

        info = parse_connect(data)
        assert (info.version, info.device_flag, info.uid, info.token) == (2, 1, UID, TOKEN)
        assert re.fullmatch(r"[0-9a-f]{32}W", info.device_id), info.device_id
        assert abs(info.client_timestamp - time.time() * 1000) < 60_000
        assert info.client_key == keys[0].decode()

        await client.close()
        assert client.returncode == 0, "the thread ended by itself after the exit command"
        assert not client.running and sdk_host.running
        assert not client.errors


async def test_send_receive_cmd_and_bad_payload(sdk_factory: SdkFactory) -> None:
    async with LoopbackPeer() as peer:
        client, conn = await connected(sdk_factory, peer)
        assert (conn.info.uid, conn.info.version, conn.info.device_flag) == (UID, 2, 1)

        sent = await client.send_text("u2", 1, "hello")
        assert sent["client_seq"] == 1
        assert re.fullmatch(r"[0-9a-f]{32}3", sent["client_msg_no"]), sent
        local = await client.wait_for("local_message")
        assert local["client_msg_no"] == sent["client_msg_no"]
        assert local["message_id"] is None

        send = await within(conn.sends.get())
        assert send.flags == 0x02  # RedDot always set by 1.0.4
        assert send.setting == 0
        assert (send.client_seq, send.client_msg_no) == (1, sent["client_msg_no"])
        assert (send.channel_id, send.channel_type) == ("u2", 1)
        assert send.msg_key_ok
        assert send.payload == {"content": "hello", "type": 1}

        ack = await client.wait_for("sendack")
        assert ack["client_seq"] == 1
        assert ack["message_id"] == "1001"
        assert (ack["message_seq"], ack["reason"]) == (1, 1)

        big_id = 1234567890123456790  # > 2**53: must arrive as an exact string
        payload = {"type": 1, "content": "yo"}
        await conn.recv(
            from_uid="u2",
            channel_id="u2",
            channel_type=1,
            payload=json.dumps(payload).encode(),
            message_id=big_id,
            message_seq=8,
            client_msg_no="cmn-2",
            timestamp=1700000000,
        )
        message = await client.wait_for("message")
        assert message["message_id"] == str(big_id)
        assert (message["message_seq"], message["client_msg_no"]) == (8, "cmn-2")
        assert (message["from_uid"], message["channel_id"], message["channel_type"]) == (
            "u2",
            "u2",
            1,
        )
        assert message["timestamp"] == 1700000000
        assert (message["content"], message["content_type"]) == (payload, 1)
        assert message["header"] == {
            "red_dot": True,
            "no_persist": False,
            "sync_once": False,
            "dup": False,
        }
        assert await within(conn.recvacks.get()) == (0x02, big_id, 8)

        cmd_payload = {"type": 99, "cmd": "syncMessageExtra", "param": {"a": 1}}
        await conn.recv(
            from_uid="",
            channel_id="g1",
            channel_type=2,
            payload=json.dumps(cmd_payload).encode(),
            message_id=77,
            message_seq=0,
            client_msg_no="cmd-1",
            flags=0x05,  # SyncOnce | NoPersist
        )
        cmd = await client.wait_for("cmd")
        assert (cmd["cmd"], cmd["param"]) == ("syncMessageExtra", {"a": 1})
        assert (cmd["channel_id"], cmd["channel_type"], cmd["message_id"]) == ("g1", 2, "77")
        assert cmd["header"]["sync_once"] and cmd["header"]["no_persist"]
        assert await within(conn.recvacks.get()) == (0x05, 77, 0)
        assert not client.find("message", include_consumed=False)  # CMDs are not messages

        # A payload that is not JSON: the SDK throws inside an async handler. The driver must
        # report it and keep running; the SDK sends no RECVACK for it.
        await conn.recv(
            from_uid="u2",
            channel_id="u2",
            channel_type=1,
            payload=b"not json",
            message_id=78,
            message_seq=9,
            client_msg_no="cmn-3",
        )
        error = await client.wait_for("error")
        assert error["source"] == "unhandledRejection"
        state = await client.state()
        assert state["status"] == 1
        assert state["sending"] == []
        assert conn.recvacks.empty()
        assert not peer.errors
        assert not client.find("_invalid")  # SDK log noise never reaches stdout


async def test_kill_socket_reconnects_and_resends_unacked(sdk_factory: SdkFactory) -> None:
    async with LoopbackPeer() as peer:
        client, conn1 = await connected(sdk_factory, peer)
        peer.auto_ack = False
        sent = await client.send_text("u2", 1, "pending")
        first = await within(conn1.sends.get())
        assert (await client.state())["sending"] == [sent["client_seq"]]
        peer.auto_ack = True

        done = await client.kill_socket()
        assert done["ready_state"] == 1  # was OPEN
        down = await client.wait_for({"event": "status", "status": 0})
        await within(conn1.closed.wait())

        conn2 = await within(peer.conns.get(), 15)
        up = await client.wait_for({"event": "status", "status": 1}, 15)
        assert up["ts"] - down["ts"] >= 2500  # fixed 3 s reconnect delay in 1.0.4
        assert conn2.info.device_id != conn1.info.device_id  # new device_id on every connect
        assert conn2.info.client_key != conn1.info.client_key  # and a new key pair

        again = await within(conn2.sends.get())
        assert (again.client_seq, again.client_msg_no) == (first.client_seq, first.client_msg_no)
        assert again.flags == first.flags == 0x02  # resend carries no DUP flag
        assert again.msg_key_ok
        assert again.payload == first.payload
        ack = await client.wait_for("sendack")
        assert ack["client_seq"] == sent["client_seq"]
        assert (await client.state())["sending"] == []
        assert not client.errors
        assert not peer.errors


async def test_connack_failure_does_not_reconnect(sdk_factory: SdkFactory) -> None:
    async with LoopbackPeer(connack_reason=2) as peer:
        client = await sdk_factory(peer.url, None, UID, "wrong-token")
        status = await client.connect()
        assert (status["status"], status["reason"]) == (3, 2)
        await asyncio.sleep(scaled(3.5))
        assert len(peer.first_frames) == 1


async def test_kick_reports_connect_kick(sdk_factory: SdkFactory) -> None:
    async with LoopbackPeer() as peer:
        client, conn = await connected(sdk_factory, peer)
        await conn.disconnect(12, "login in other device")
        status = await client.wait_for({"event": "status", "status": 4})
        assert status["reason"] == 12


async def test_heartbeat_interval_is_configurable(sdk_factory: SdkFactory) -> None:
    async with LoopbackPeer() as peer:
        client, conn = await connected(sdk_factory, peer, heartbeat_interval_ms=150)
        deadline = time.monotonic() + scaled(5)
        while conn.pings < 3 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert conn.pings >= 3
        assert (await client.state())["status"] == 1
        assert not client.errors


class _ExtrasApi(BaseHTTPRequestHandler):
    rows: list[dict[str, Any]] = []  # noqa: RUF012 - set per test
    requests: list[tuple[str, str, Any]] = []  # noqa: RUF012
    fail = False

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
        type(self).requests.append((self.path, self.headers.get("Authorization", ""), body))
        status, data = (500, b'{"msg":"boom"}') if type(self).fail else (200, b"")
        if not data:
            data = json.dumps(type(self).rows).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def extras_api() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _ExtrasApi)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


async def test_sync_extras_posts_and_converts(sdk_factory: SdkFactory) -> None:
    rows: list[dict[str, Any]] = [
        {
            "message_id": 1234567890123456790,
            "message_id_str": "1234567890123456790",
            "message_seq": 8,
            "extra_version": 3,
            "extra": {"status": "approved", "by": "u9"},
            "readed": 1,
            "readed_count": 2,
            "edited_at": 1700000000,
            "content_edit": {"type": 1, "content": "edited"},
        },
        {"message_id": 5, "message_seq": 9, "extra_version": 4, "status": "rejected"},
    ]
    _ExtrasApi.rows, _ExtrasApi.requests, _ExtrasApi.fail = rows, [], False
    with extras_api() as api:
        # sync_extras is plain HTTP: the WebSocket is never opened here.
        client = await sdk_factory("ws://127.0.0.1:9", api, UID, TOKEN)
        event = await client.sync_extras("g1", 2, 2)

        assert _ExtrasApi.requests == [
            (
                "/message/extra/sync",
                f"Bearer {TOKEN}",
                {"channel_id": "g1", "channel_type": 2, "extra_version": 2, "limit": 100},
            )
        ]
        assert (event["channel_id"], event["channel_type"], event["extra_version"]) == ("g1", 2, 2)
        assert json.loads(event["raw_body"]) == rows  # exact, unlike JS numbers > 2**53
        assert len(event["rows"]) == 2
        first, second = event["extras"]
        assert first["message_id"] == "1234567890123456790"
        assert (first["message_seq"], first["extra_version"]) == (8, 3)
        assert first["extra"] == {"status": "approved", "by": "u9"}
        assert (first["readed"], first["readed_count"], first["is_edit"]) == (True, 2, True)
        assert first["content_edit"] == {"type": 1, "content": "edited"}
        assert (first["channel_id"], first["channel_type"]) == ("g1", 2)
        assert second["message_id"] == "5"
        assert second["extra"] == {"status": "rejected"}  # top-level status copied into extra
        assert second["extra_version"] == 4

        _ExtrasApi.fail = True
        with pytest.raises(DriverError, match="HTTP 500"):
            await client.sync_extras("g1", 2, 4)
        assert client.errors[-1]["cmd"] == "sync_extras"


async def test_errors_and_forced_close(sdk_factory: SdkFactory) -> None:
    # Nothing listens on port 9: the SDK reports Disconnect and keeps retrying every 3 s.
    client = await sdk_factory("ws://127.0.0.1:9", None, UID, TOKEN)
    with pytest.raises(DriverError, match="unknown command"):
        await client.request({"cmd": "no-such-command"}, "done")
    await client.request({"cmd": "connect"}, "done")
    status = await client.wait_for("status")
    assert (status["status"], status["reason"]) == (0, 0)
    with pytest.raises(TimeoutError, match="no event 'never'"):
        await client.wait_for("never", 0.2)

    await client.close(graceful=False)  # the host terminates the thread
    assert client.returncode == 1, "Worker.terminate() ends a thread with code 1"
    assert not client.running
    with pytest.raises(DriverError):
        client.send_cmd({"cmd": "state"})
    with pytest.raises(DriverError, match="exited"):
        await client.wait_for("never")


async def test_clients_in_one_host_are_separate_sdk_instances(sdk_factory: SdkFactory) -> None:
    """Two clients of one host: each has its own thread and SDK singletons (its own client_seq
    counter, connection and reconnect logic), so one client's traffic never shows in the
    other."""
    async with LoopbackPeer() as peer:
        first, conn1 = await connected(sdk_factory, peer)
        second, conn2 = await connected(sdk_factory, peer)
        assert first.events[0]["thread_id"] != second.events[0]["thread_id"]
        assert conn1.info.device_id != conn2.info.device_id

        sent = [await c.send_text("u2", 1, f"from {n}") for n, c in enumerate((first, second))]
        assert [s["client_seq"] for s in sent] == [1, 1], "each SDK counts its own sends"
        assert (await within(conn1.sends.get())).payload["content"] == "from 0"
        assert (await within(conn2.sends.get())).payload["content"] == "from 1"

        await first.kill_socket()
        await first.wait_for({"event": "status", "status": 0})
        assert (await second.state())["status"] == 1
        assert not second.find({"event": "status", "status": 0})
        assert len(second.find("sendack")) == 1 and len(second.find("local_message")) == 1


async def test_closing_the_host_ends_every_client_and_its_process(node_bin: str) -> None:
    async with LoopbackPeer() as peer:
        with SdkHost(node_bin) as host:
            host.start()
            client = SdkClient(host, UID)
            await client.start(peer.url, None, UID, TOKEN)
            status = await client.connect()
            assert status["status"] == 1
            conn = await within(peer.conns.get())
            pid = host.pid
        assert_process_gone(pid)
        await within(conn.closed.wait())
        with pytest.raises(DriverError):
            await client.wait_for("never")
        assert not client.running and not host.running
