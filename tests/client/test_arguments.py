"""Bad arguments raise clear errors (InvalidArgument names the argument) before anything is
sent; the message model parses what the server sends."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from magpie.client import Channel, Client, ClientClosed, ClientOptions, InvalidArgument
from magpie.client.model import encode_content, message_from_json

URL, API = "ws://127.0.0.1:1", "http://127.0.0.1:1"


@pytest.mark.parametrize(
    ("args", "argument"),
    [
        (("", 2), "channel_id"),
        (("a b", 2), "channel_id"),
        (("x" * 129, 2), "channel_id"),
        (("a@b", 1), "channel_id"),
        (("g", 0), "channel_type"),
        (("g", 13), "channel_type"),
        (("g", True), "channel_type"),
        (("g", "2"), "channel_type"),
        ((7, 2), "channel_id"),
    ],
)
def test_bad_channels(args: tuple[Any, Any], argument: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        Channel(*args)
    assert info.value.argument == argument and isinstance(info.value, ValueError)


def test_channel_helpers() -> None:
    assert Channel("x" * 128, 2).channel_type == 2
    assert Channel.parse("team:2") == Channel.group("team")
    assert Channel.parse("bob") == Channel.person("bob") and str(Channel.person("bob")) == "bob:1"
    assert Channel.parse("a:b:2") == Channel("a:b", 2)


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ("hello", "JSON object"),
        ({"content": "x"}, "integer 'type'"),
        ({"type": "1"}, "integer 'type'"),
        ({"type": True}, "integer 'type'"),
        ({"type": 99, "cmd": "x"}, "command"),
        ({"type": 1, "x": object()}, "JSON-serialisable"),
        ({"type": 1, "x": float("nan")}, "JSON-serialisable"),
    ],
)
def test_bad_content(content: Any, match: str) -> None:
    with pytest.raises(InvalidArgument, match=match):
        encode_content(content, 1024)


def test_content_size_limit_n_and_n_plus_1() -> None:
    base = len(json.dumps({"type": 1, "content": ""}, separators=(",", ":")))
    exact = {"type": 1, "content": "x" * (100 - base)}
    assert len(encode_content(exact, 100)) == 100
    with pytest.raises(InvalidArgument, match="101 bytes"):
        encode_content({"type": 1, "content": "x" * (101 - base)}, 100)
    assert encode_content({"type": 1, "content": "é"}, 100) == '{"type":1,"content":"é"}'.encode()


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"url": "http://x"}, "url"),
        ({"uid": ""}, "uid"),
        ({"uid": "a@b"}, "uid"),
        ({"uid": "a b"}, "uid"),
        ({"token": ""}, "token"),
        ({"device_flag": 7}, "device_flag"),
        ({"device_flag": True}, "device_flag"),
        ({"api_url": "ws://x"}, "api_url"),
    ],
)
def test_bad_client_arguments(kwargs: dict[str, Any], argument: str) -> None:
    args: dict[str, Any] = {"url": URL, "uid": "alice", "token": "t", **kwargs}
    with pytest.raises(InvalidArgument) as info:
        Client(**args)
    assert info.value.argument == argument


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("heartbeat_interval", 0),
        ("connect_timeout", -1),
        ("backoff_jitter", 1.5),
        ("backoff_max", float("inf")),
        ("sync_page_size", 10_001),
        ("sync_page_size", 0),
        ("max_payload_bytes", 1.5),
        ("cache_synchronous", "SOMETIMES"),
        ("history_limit", 0),
        ("recv_batch", True),
    ],
)
def test_bad_options(option: str, value: Any) -> None:
    with pytest.raises(InvalidArgument) as info:
        ClientOptions(**{option: value})
    assert info.value.argument == option


def test_options_replace_validates() -> None:
    assert ClientOptions().replace(history_limit=None).history_limit is None
    assert ClientOptions().replace(sync_page_size=10_000).sync_page_size == 10_000
    with pytest.raises(InvalidArgument):
        ClientOptions().replace(pong_timeout=0)


async def test_send_validates_before_anything_is_sent(tmp_path: Path) -> None:
    async with Client(URL, "alice", "t", cache_path=tmp_path / "c.db", api_url=API) as client:
        small = ClientOptions(max_payload_bytes=64)
        with pytest.raises(InvalidArgument, match="channel"):
            await client.send("g1", {"type": 1})  # type: ignore[arg-type]
        with pytest.raises(InvalidArgument, match="integer 'type'"):
            await client.send(Channel.group("g1"), {"content": "no type"})
        with pytest.raises(InvalidArgument, match="client_msg_no"):
            await client.send(Channel.group("g1"), {"type": 1}, client_msg_no="")
        with pytest.raises(InvalidArgument, match="limit"):
            await client.history(Channel.group("g1"), limit=0)
        with pytest.raises(InvalidArgument, match="message_id"):
            await client.cards.act(0, "approve")
        with pytest.raises(InvalidArgument, match="action"):
            await client.cards.act(1, "")
        with pytest.raises(InvalidArgument, match="params"):
            await client.cards.act(1, "approve", ["x"])  # type: ignore[arg-type]
        assert client.api_requests == 0
    sized = Client(URL, "alice", "t", options=small)
    await sized.open(connect=False)
    with pytest.raises(InvalidArgument, match="limit 64"):
        await sized.send(Channel.group("g1"), {"type": 1, "content": "x" * 64})
    await sized.close()
    with pytest.raises(ClientClosed):
        await sized.send(Channel.group("g1"), {"type": 1})


async def test_cards_need_an_api_url() -> None:
    client = Client(URL, "alice", "t")
    await client.open(connect=False)
    with pytest.raises(InvalidArgument, match="api_url"):
        await client.cards.act(1, "approve")
    await client.close()


def test_message_from_json_with_extra() -> None:
    item = {
        "message_id": 5,
        "message_idstr": "12345678901234567890",
        "message_seq": 3,
        "client_msg_no": "c",
        "from_uid": "bob",
        "channel_id": "ignored",
        "channel_type": 2,
        "timestamp": 9,
        "payload": base64.b64encode(b'{"type":1,"content":"hi"}').decode(),
        "message_extra": {
            "message_id": 5,
            "message_id_str": "12345678901234567890",
            "version": 2,
            "extra_version": 7,
            "status": "ok",
        },
    }
    m = message_from_json(item, Channel.group("g"))
    assert (m.message_id, m.channel, m.text) == (12345678901234567890, Channel.group("g"), "hi")
    assert m.ext is not None and (m.ext.version, m.ext.status) == (2, "ok")
    assert message_from_json({**item, "message_extra": None}).ext is None
    with pytest.raises(ValueError, match="base64"):
        message_from_json({**item, "payload": "***"})
