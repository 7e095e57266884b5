"""What the client does with a batch of RECVs: cache durably, *then* RECVACK each one;
publish new messages once; route commands to the command listeners."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest

from magpie.client import Channel, Client
from magpie.client.cache import Stored
from magpie.client.model import Message
from magpie.client.raw import RawClient, ReceivedMessage
from magpie.protocol.packets import Flags, Recv, Recvack, Setting


class FakeLink:
    def __init__(self, log: list[Any]) -> None:
        self.log = log

    async def write(self, packet: Any) -> None:
        assert isinstance(packet, Recvack)
        self.log.append(("ack", packet.message_id, packet.flags))


def recv(mid: int, seq: int, payload: bytes, flags: Flags = Flags.RED_DOT) -> ReceivedMessage:
    packet = Recv(Setting.NONE, "", "alice", "g1", 2, f"c{mid}", mid, seq, 1, b"", flags=flags)
    return ReceivedMessage(packet, payload)


@pytest.fixture
async def client() -> AsyncIterator[Client]:
    c = Client("ws://127.0.0.1:1", "bob", "t")
    await c.open(connect=False)
    yield c
    await c.close()


def spy(client: Client, log: list[Any], fail: bool = False) -> None:
    real = client.cache.put_messages

    async def put(messages: Sequence[Message]) -> Stored:
        if fail:
            raise OSError("disk full")
        stored = await real(messages)
        log.append(("cached", [m.message_id for m in messages]))
        return stored

    client.cache.put_messages = put  # type: ignore[method-assign]


async def test_recvack_only_after_the_batch_is_cached(client: Client) -> None:
    log: list[Any] = []
    spy(client, log)
    text = b'{"type":1,"content":"hi"}'
    batch = [recv(1, 1, text), recv(2, 2, text, Flags.RED_DOT | Flags.SYNC_ONCE)]
    await client._received(FakeLink(log), batch)  # type: ignore[arg-type]
    assert log == [
        ("cached", [1, 2]),
        ("ack", 1, Flags.RED_DOT),
        ("ack", 2, Flags.RED_DOT | Flags.SYNC_ONCE),
    ]


async def test_no_recvack_when_caching_fails(client: Client) -> None:
    log: list[Any] = []
    spy(client, log, fail=True)
    with pytest.raises(OSError, match="disk full"):
        await client._received(FakeLink(log), [recv(1, 1, b'{"type":1}')])  # type: ignore[arg-type]
    assert log == [], "the server keeps the message and retries it"


async def test_duplicates_are_acked_but_published_once(client: Client) -> None:
    log: list[Any] = []
    messages = client.messages.stream()
    link: RawClient = FakeLink(log)  # type: ignore[assignment]
    await client._received(link, [recv(1, 1, b'{"type":1,"content":"a"}')])
    await client._received(link, [recv(1, 1, b'{"type":1,"content":"a"}')])
    assert [m.message_id for m in messages.pending()] == [1]
    assert [entry[1] for entry in log] == [1, 1]


async def test_commands_go_to_command_listeners(client: Client) -> None:
    log: list[Any] = []
    messages, commands = client.messages.stream(), client.commands.stream()
    cmd = b'{"type":99,"cmd":"syncMessageExtra","param":{"channel_id":"g1","channel_type":2}}'
    await client._received(FakeLink(log), [recv(5, 0, cmd, Flags.SYNC_ONCE | Flags.NO_PERSIST)])  # type: ignore[arg-type]
    (command,) = commands.pending()
    assert command.cmd == "syncMessageExtra" and command.channel == Channel.group("g1")
    assert dict(command.param) == {"channel_id": "g1", "channel_type": 2}
    assert messages.pending() == [] and log == [("ack", 5, Flags.SYNC_ONCE | Flags.NO_PERSIST)]
