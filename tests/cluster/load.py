"""A message load over a cluster that survives node deaths and outages the way a client does:
each sender sends one message at a time into a group and waits for its SENDACK; on a failed
SENDACK, a dropped connection or a timeout it reconnects (to the next live node) and sends the
same ``client_msg_no`` again, until it is acknowledged. Listeners record what they receive."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from dataclasses import dataclass, field

from magpie.client.raw import RawClient, ReceivedMessage
from magpie.protocol.packets import ReasonCode
from tests.support.cluster import Cluster, ServeNode
from tests.support.nodes import time_scale

GROUP = 2


@dataclass
class Sender:
    """One user sending into the group; ``acked`` maps client_msg_no -> (message_id, seq)."""

    uid: str
    node: int
    acked: dict[str, tuple[int, int]] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    reconnects: list[int] = field(default_factory=list)
    client: RawClient | None = None


@dataclass
class Listener:
    """One member receiving on one node (not reconnected: put it on a node that lives)."""

    uid: str
    client: RawClient
    got: list[ReceivedMessage] = field(default_factory=list)
    task: asyncio.Task[None] | None = None

    async def run(self) -> None:
        while True:
            self.got.append(await self.client.messages.get())

    @property
    def seqs(self) -> list[int]:
        return [m.packet.message_seq for m in self.got]


class Load:
    """Senders looping over a cluster until :meth:`stop`; see the module doc."""

    def __init__(self, cluster: Cluster, group: str, senders: list[Sender]) -> None:
        self.cluster = cluster
        self.group = group
        self.senders = senders
        self.running = True
        self.tasks: list[asyncio.Task[None]] = []
        self.counter = itertools.count()
        self.timeout = 5 * time_scale()

    async def __aenter__(self) -> Load:
        loop = asyncio.get_running_loop()
        self.tasks = [loop.create_task(self._run(s)) for s in self.senders]
        return self

    async def __aexit__(self, *exc: object) -> None:
        """Whatever still runs (a test that failed early) is cancelled; clients closed."""
        self.running = False
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        for s in self.senders:
            if s.client is not None:
                s.client.abort()

    async def stop(self) -> None:
        """Let each sender finish the message it is on (acked), then close the clients."""
        self.running = False
        await asyncio.gather(*self.tasks)
        for s in self.senders:
            if s.client is not None:
                await s.client.close()

    def acked(self) -> dict[str, tuple[int, int]]:
        return {k: v for s in self.senders for k, v in s.acked.items()}

    def live_node(self, after: int) -> tuple[int, ServeNode]:
        nodes = self.cluster.nodes
        for step in range(1, len(nodes) + 1):
            i = (after + step) % len(nodes)
            if nodes[i].running:
                return i, nodes[i]
        raise AssertionError("no node is running")

    async def _connect(self, s: Sender) -> RawClient:
        node = self.cluster.nodes[s.node]
        while True:
            if node.running:
                with contextlib.suppress(OSError, TimeoutError, ConnectionError, Exception):
                    return await node.connect(s.uid, device_flag=1)
            await asyncio.sleep(0.2)
            s.node, node = self.live_node(s.node)
            s.reconnects.append(s.node)

    async def _run(self, s: Sender) -> None:
        while self.running:
            number = f"{s.uid}-{next(self.counter)}"
            payload = json.dumps({"type": 1, "content": number}).encode()
            while True:  # this one message, until acknowledged
                if s.client is None or s.client.closed.is_set():
                    s.client = await self._connect(s)
                try:
                    ack = await asyncio.wait_for(
                        s.client.send(self.group, GROUP, payload, client_msg_no=number),
                        self.timeout,
                    )
                except (ConnectionError, TimeoutError, OSError, Exception) as exc:
                    s.failures.append(type(exc).__name__)
                    with contextlib.suppress(Exception):
                        s.client.abort()
                    s.client = None
                    await asyncio.sleep(0.1)
                    continue
                if ack.reason_code == ReasonCode.SUCCESS:
                    s.acked[number] = (ack.message_id, ack.message_seq)
                    break
                s.failures.append(f"reason {ack.reason_code}")
                await asyncio.sleep(0.1)
            await asyncio.sleep(0.01)


def check_history(history: list[dict[str, object]], acked: dict[str, tuple[int, int]]) -> None:
    """Every acknowledged message is stored once with its acked id and seq; seqs gap-free."""
    seqs = [m["message_seq"] for m in history]
    assert seqs == list(range(1, len(history) + 1)), "gap-free seqs"
    numbers = [str(m["client_msg_no"]) for m in history]
    assert len(numbers) == len(set(numbers)), "no message stored twice"
    stored = {str(m["client_msg_no"]): (m["message_id"], m["message_seq"]) for m in history}
    for number, ids in acked.items():
        assert stored.get(number) == ids, f"acked {number} {ids} but stored {stored.get(number)}"


def check_listener(listener: Listener, history: list[dict[str, object]]) -> None:
    """The listener saw every stored message exactly once, in seq order."""
    seqs = listener.seqs
    assert seqs == sorted(seqs), f"{listener.uid} saw seqs out of order"
    assert len(seqs) == len(set(seqs)), f"{listener.uid} saw a message twice"
    missing = {int(str(m["message_seq"])) for m in history} - set(seqs)
    assert not missing, f"{listener.uid} never received seqs {sorted(missing)[:20]}"
