"""Connection log lines (uid, device, remote address) and what a node never logs at INFO+."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from magpie.logs import configure_logging
from tests.api.helpers import b64, text
from tests.support.nodes import API_KEY, add_user, api, connect, make_group, running_node

GATEWAY = "magpie.gateway.session"


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    """Everything the node logs at DEBUG and above, as JSON lines."""
    out = io.StringIO()
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    configure_logging("DEBUG", "json", stream=out)
    try:
        yield out
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])


def _records(out: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in out.getvalue().splitlines()]


async def test_connection_lines_name_uid_device_and_remote(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=GATEWAY)
    async with running_node(tmp_path) as node:
        token = await add_user(node, "alice")
        client = await connect(node, "alice", token, device_flag=2)
        local = client.local_address
        await client.close()
        refused_token = "not-" + token
        with pytest.raises(Exception, match="refused"):
            await connect(node, "alice", refused_token)
    lines = [r.getMessage() for r in caplog.records if r.name == GATEWAY]
    remote = f"{local[0]}:{local[1]}"
    connected = next(line for line in lines if " connected " in line)
    assert connected.startswith("[c") and "uid=alice device_flag=2" in connected
    assert f"remote={remote}" in connected
    assert any(" disconnected uid=alice device_flag=2" in line for line in lines)
    assert any("CONNECT refused (auth_fail) uid='alice'" in line for line in lines)
    assert not any(token in line or refused_token in line for line in lines)


async def test_json_connection_lines_carry_structured_fields(
    tmp_path: Path, json_log: io.StringIO
) -> None:
    async with running_node(tmp_path) as node:
        token = await add_user(node, "bob")
        client = await connect(node, "bob", token, device_flag=1)
        await client.close()
    lines = [r for r in _records(json_log) if r["logger"] == GATEWAY]
    connected = next(r for r in lines if " connected " in str(r["message"]))
    assert connected["uid"] == "bob" and connected["device_flag"] == 1
    assert str(connected["remote"]).startswith("127.0.0.1:") and str(connected["conn"])[0] == "c"


async def test_no_token_key_or_message_body_is_logged_at_info_or_above(
    tmp_path: Path, json_log: io.StringIO, caplog: pytest.LogCaptureFixture
) -> None:
    """A node's whole output at INFO+ while users register, connect (one with a wrong
    token), send over the gateway and the API, and change an extension."""
    caplog.set_level(logging.DEBUG)
    token = "tok-SECRET-8d1f0c"
    body = "BODY-SECRET-a4e2"
    patch_secret = "EXTRA-SECRET-77b0"
    async with running_node(tmp_path) as node, api(node) as http:
        await add_user(node, "alice", token)
        await add_user(node, "bob", token + "-bob")
        await make_group(node, "g", ["alice", "bob"])
        alice = await connect(node, "alice", token)
        bob = await connect(node, "bob", token + "-bob")
        await alice.send("g", 2, json.dumps({"type": 1, "content": body}).encode())
        await bob.messages.get()
        r = await http.post(
            "/message/send",
            json={"from_uid": "bob", "channel_id": "g", "channel_type": 2, "payload": text(body)},
        )
        message_id = r.json()["data"]["message_id"]
        r = await http.post(
            "/message/extra/update",
            json={"message_id": message_id, "action_id": "a1", "expected_version": 0,
                  "extra_patch": {"note": patch_secret}},
        )  # fmt: skip
        assert r.status_code == 200, r.text
        with pytest.raises(Exception, match="refused"):
            await connect(node, "alice", token + "-wrong")
        await http.post("/user/token", json={"uid": "x", "token": b64(b"t"), "device_flag": 9})
        await alice.close()
        await bob.close()
    secrets = (token, API_KEY, body, patch_secret, b64({"type": 1, "content": body}))
    loud = [r for r in caplog.records if r.levelno >= logging.INFO]
    assert len(loud) > 10, "the node logged its work"
    for record in loud:
        shown = record.getMessage() + str(record.__dict__)
        for secret in secrets:
            assert secret not in shown, (secret, shown)
    for line in _records(json_log):
        if line["level"] != "DEBUG":
            assert not any(s in json.dumps(line) for s in secrets), line
