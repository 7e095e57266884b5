"""Coalesced ``syncMessageExtra`` CMDs, with a recording sender instead of the send flow."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from magpie.ext.notify import Cmd, Notifier, commands
from tests.support.nodes import settle


class Recorder:
    """A CmdSender that records; ``gate`` (when set) holds each send until released."""

    def __init__(self) -> None:
        self.sent: list[Cmd] = []
        self.gate: asyncio.Event | None = None
        self.fail = False

    async def __call__(self, cmd: Cmd) -> bool:
        if self.gate is not None:
            await self.gate.wait()
        if self.fail:
            raise RuntimeError("send flow down")
        self.sent.append(cmd)
        return True

    def params(self) -> list[dict[str, Any]]:
        return [json.loads(c.payload)["param"] for c in self.sent]


def test_the_cmd_payload_and_person_channels() -> None:
    (group,) = commands("g1", 2, 7, important=False)
    assert (group.from_uid, group.channel_id, group.subscribers, group.persisted) == (
        "",
        "g1",
        None,
        False,
    )
    assert json.loads(group.payload) == {
        "type": 99,
        "cmd": "syncMessageExtra",
        "param": {"channel_id": "g1", "channel_type": 2, "extra_version": 7},
    }
    to_a, to_b = commands("a@b", 1, 3, important=True)
    # each party gets its own CMD naming the peer, "from" the peer (so the RECV shows the peer)
    assert (to_a.from_uid, to_a.channel_id, to_a.subscribers) == ("b", "a", ("a",))
    assert json.loads(to_a.payload)["param"]["channel_id"] == "b"
    assert (to_b.from_uid, to_b.channel_id, to_b.subscribers) == ("a", "b", ("b",))
    assert json.loads(to_b.payload)["param"]["channel_id"] == "a"
    assert to_a.persisted and to_b.persisted
    assert len(commands("a@a", 1, 1, important=False)) == 1


async def test_no_window_sends_one_cmd_per_change() -> None:
    rec = Recorder()
    notifier = Notifier(rec, window=0)
    for ev in (1, 2, 3):
        notifier.changed("g1", 2, ev, important=False)
        await asyncio.sleep(0)
    await notifier.flush()
    assert [p["extra_version"] for p in rec.params()] == [1, 2, 3]


async def test_a_burst_is_coalesced_into_the_highest_extra_version() -> None:
    rec = Recorder()
    notifier = Notifier(rec, window=0.05)
    for ev in (3, 1, 9, 4):  # commit order may differ from extra_version order
        notifier.changed("g1", 2, ev, important=False)
    notifier.changed("g2", 2, 5, important=True)
    notifier.changed("g1", 2, 2, important=True)
    assert rec.sent == [], "nothing before the window closes"
    await settle(0.15)  # the 0.05 s windows have closed
    by_channel = {
        p["channel_id"]: (p["extra_version"], c.persisted)
        for p, c in zip(rec.params(), rec.sent, strict=True)
    }
    assert by_channel == {"g1": (9, True), "g2": (5, True)}
    assert len(rec.sent) == 2


async def test_a_change_during_a_send_is_not_lost() -> None:
    rec = Recorder()
    rec.gate = asyncio.Event()
    notifier = Notifier(rec, window=0.01)
    notifier.changed("g1", 2, 1, important=False)
    await settle(0.05)  # the first window fired; its send is held at the gate
    notifier.changed("g1", 2, 2, important=False)
    notifier.changed("g1", 2, 3, important=False)
    await settle(0.05)
    rec.gate.set()
    await notifier.flush()
    assert sorted(p["extra_version"] for p in rec.params()) == [1, 3]


async def test_close_sends_pending_cmds_at_once() -> None:
    rec = Recorder()
    notifier = Notifier(rec, window=60)
    notifier.changed("g1", 2, 4, important=False)
    await asyncio.wait_for(notifier.close(), 1)
    assert [p["extra_version"] for p in rec.params()] == [4]


async def test_a_failing_sender_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    rec = Recorder()
    rec.fail = True
    notifier = Notifier(rec, window=0)
    notifier.changed("g1", 2, 1, important=False)
    await notifier.flush()
    assert "syncMessageExtra CMD failed" in caplog.text
    rec.fail = False
    notifier.changed("g1", 2, 2, important=False)
    await notifier.flush()
    assert [p["extra_version"] for p in rec.params()] == [2]
