"""Per-channel delivery order (``magpie.gateway.order``): the orderer alone with a recording
deliverer and an in-memory store read, then a real node whose bus hands it deliveries out of
order (as two other nodes' publications can arrive)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from pathlib import Path

import pytest

from magpie.bus.interface import Delivery
from magpie.gateway.order import ChannelOrder
from magpie.protocol.packets import Flags
from magpie.store.interface import NewMessage, StoredMessage
from tests.support.nodes import add_user, connect, make_group, running_node, settle, time_scale

T = 5 * time_scale()
HOLD = 0.05


def message(seq: int, channel: str = "g", flags: int = 0) -> StoredMessage:
    return StoredMessage(
        message_id=1000 + seq,
        message_seq=seq,
        client_msg_no=f"m{seq}",
        from_uid="alice",
        channel_id=channel,
        channel_type=2,
        timestamp=0,
        payload=b'{"type":1}',
        flags=flags,
    )


def delivery(seq: int, *recipients: str, channel: str = "g") -> Delivery:
    return Delivery(message(seq, channel), recipients or ("bob",))


class Harness:
    """An orderer delivering into a list, reading gaps from ``stored`` (or failing)."""

    def __init__(self, *, hold_unknown: bool = False) -> None:
        self.out: list[Delivery] = []
        self.stored: dict[int, StoredMessage] = {}
        self.reads: list[tuple[int, int]] = []
        self.fail = False
        self.queued: dict[str, dict[int, StoredMessage]] = {}  # uid -> queue seq -> message
        self.online = {"bob", "carol"}
        self.order = ChannelOrder(
            self.out.append,
            self.fetch,
            hold=HOLD,
            hold_unknown=hold_unknown,
            fetch_queue=self.fetch_queue,
            online=self.online.__contains__,
        )

    async def fetch_queue(
        self, uid: str, first: int, end: int
    ) -> Sequence[tuple[int, StoredMessage]]:
        self.reads.append((first, end))
        return [(q, m) for q, m in sorted(self.queued.get(uid, {}).items()) if first <= q < end]

    async def fetch(
        self, channel: str, ctype: int, first: int, end: int
    ) -> Sequence[StoredMessage]:
        self.reads.append((first, end))
        if self.fail:
            raise OSError("store down")
        return [m for s, m in sorted(self.stored.items()) if first <= s < end]

    def seqs(self) -> list[int]:
        return [d.message.message_seq for d in self.out]


def command(n: int, queue_seqs: dict[str, int]) -> Delivery:
    """A sync-once command (no channel seq) with per-recipient queue seqs."""
    msg = StoredMessage(
        message_id=5000 + n,
        message_seq=0,
        client_msg_no=f"q{n}",
        from_uid="admin",
        channel_id="x",
        channel_type=1,
        timestamp=0,
        payload=b'{"type":99}',
        flags=int(Flags.SYNC_ONCE),
    )
    return Delivery(msg, tuple(queue_seqs), "", queue_seqs)


def queued(h: Harness, uid: str) -> list[int]:
    return [d.queue_seqs[uid] for d in h.out if d.recipients == (uid,)]


async def test_queued_commands_reach_each_user_in_queue_order() -> None:
    """Sync-once commands from several nodes arrive out of queue order: each online user
    gets them in its queue's order (one event per user), a gap still open after the hold is
    read from that user's queue, and an offline user costs nothing."""
    h = Harness()
    h.order.accept(command(1, {"bob": 1, "carol": 1, "dave": 1}))
    h.order.accept(command(3, {"bob": 3, "carol": 2, "dave": 3}))
    assert queued(h, "bob") == [1] and queued(h, "carol") == [1, 2]
    h.order.accept(command(2, {"bob": 2, "dave": 2}))
    assert queued(h, "bob") == [1, 2, 3], "3 waited for 2"
    assert not [d for d in h.out if "dave" in d.recipients], "dave is not online here"
    assert len(h.order) == 2, "a line for bob's queue and carol's, none for dave's"
    h.queued["carol"] = {3: command(4, {"carol": 3}).message}
    h.order.accept(command(5, {"carol": 4}))
    await asyncio.sleep(HOLD * 4)
    assert queued(h, "carol") == [1, 2, 3, 4] and h.reads == [(3, 4)]
    assert h.out[-2].message.message_id == 5004, "carol's 3 read from her queue"
    h.order.accept(command(4, {"carol": 3}))  # its own copy, late: dropped
    assert queued(h, "carol") == [1, 2, 3, 4]


async def test_in_order_deliveries_go_out_at_once() -> None:
    h = Harness()
    for seq in (1, 2, 3):
        h.order.accept(delivery(seq))
        assert h.seqs()[-1] == seq
    assert h.order.counts.held == 0


async def test_an_overtaking_delivery_waits_for_the_missing_one() -> None:
    h = Harness()
    h.order.accept(delivery(1))
    h.order.accept(delivery(3))
    h.order.accept(delivery(4))
    assert h.seqs() == [1], "3 and 4 wait for 2"
    h.order.accept(delivery(2))
    assert h.seqs() == [1, 2, 3, 4]
    await asyncio.sleep(HOLD * 3)
    assert h.reads == [], "the gap closed before the hold ran out: no store read"


async def test_a_gap_still_open_after_the_hold_is_read_from_the_store() -> None:
    h = Harness()
    h.stored = {s: message(s) for s in range(1, 6)}
    h.order.accept(delivery(1, "bob"))
    h.order.accept(delivery(4, "bob", "carol"))
    h.order.accept(delivery(5, "carol"))
    await asyncio.sleep(HOLD / 2)
    assert h.seqs() == [1]
    await asyncio.sleep(HOLD * 3)
    assert h.seqs() == [1, 2, 3, 4, 5]
    assert h.reads == [(2, 4)]
    filled = h.out[1:3]
    assert all(d.recipients == ("bob", "carol") for d in filled), "the held ones' recipients"
    # the bus copies of 2 and 3 arrive after all: dropped, not shown twice
    h.order.accept(delivery(2))
    h.order.accept(delivery(3))
    assert h.seqs() == [1, 2, 3, 4, 5]
    assert (h.order.counts.filled, h.order.counts.dropped) == (2, 2)
    h.order.accept(delivery(6))
    assert h.seqs()[-1] == 6


async def test_a_store_that_cannot_answer_skips_the_gap() -> None:
    h = Harness()
    h.fail = True
    h.order.accept(delivery(1))
    h.order.accept(delivery(3))
    await asyncio.sleep(HOLD * 3)
    assert h.seqs() == [1, 3] and h.order.counts.skipped == 1
    h.order.accept(delivery(2))  # the skipped one turns up: late rather than lost
    assert h.seqs() == [1, 3, 2] and h.order.counts.late == 1


async def test_deliveries_arriving_while_the_store_is_read_keep_their_order() -> None:
    h = Harness()
    h.stored = {s: message(s) for s in range(1, 10)}
    release = asyncio.Event()
    read = h.fetch

    async def slow(channel: str, ctype: int, first: int, end: int) -> Sequence[StoredMessage]:
        await release.wait()
        return await read(channel, ctype, first, end)

    h.order = ChannelOrder(h.out.append, slow, hold=HOLD, hold_unknown=False)
    h.order.accept(delivery(1))
    h.order.accept(delivery(5))
    await asyncio.sleep(HOLD * 2)  # the read of 2..4 has started and waits
    h.order.accept(delivery(2))  # the expected one: out at once
    h.order.accept(delivery(7))  # another gap above: held
    h.order.accept(delivery(3))
    assert h.seqs() == [1, 2, 3]
    release.set()
    await asyncio.sleep(HOLD * 4)
    assert h.seqs() == [1, 2, 3, 4, 5, 6, 7]
    assert h.reads == [(2, 5), (6, 7)]


async def test_a_channel_seen_first_is_held_in_a_cluster_only() -> None:
    single = Harness(hold_unknown=False)
    single.order.accept(delivery(7))
    assert single.seqs() == [7]
    cluster = Harness(hold_unknown=True)
    cluster.order.accept(delivery(1, channel="new"))
    assert cluster.seqs() == [1], "a channel's first seq has nothing before it"
    cluster.order.accept(delivery(7))
    cluster.order.accept(delivery(6))
    assert cluster.seqs() == [1]
    await asyncio.sleep(HOLD * 3)
    assert cluster.seqs() == [1, 6, 7]
    assert cluster.reads == [], "nothing known below the first seq seen: nothing read"


async def test_messages_without_a_channel_seq_pass_straight_through() -> None:
    h = Harness(hold_unknown=True)
    h.order.accept(delivery(5))
    h.order.accept(Delivery(message(0, flags=int(Flags.NO_PERSIST)), ("bob",)))
    # a queued command is ordered by its user's queue seq instead: 1 goes out at once
    h.order.accept(Delivery(message(0), ("bob",), queue_seqs={"bob": 1}))
    assert h.seqs() == [0, 0]


async def test_channels_are_independent_and_idle_ones_are_forgotten() -> None:
    h = Harness()
    h.order.accept(delivery(1, channel="a"))
    h.order.accept(delivery(3, channel="a"))
    h.order.accept(delivery(1, channel="b"))
    h.order.accept(delivery(2, channel="b"))
    assert h.seqs() == [1, 1, 2]
    h.order.sweep()
    h.order.sweep()
    assert len(h.order) == 1, "b is idle; a holds a delivery and stays"
    await h.order.close()


async def test_close_cancels_what_waits() -> None:
    h = Harness()
    h.order.accept(delivery(1))
    h.order.accept(delivery(3))
    await h.order.close()
    await asyncio.sleep(HOLD * 2)
    assert h.seqs() == [1] and h.reads == []


# --- a real node whose bus delivers out of order -------------------------------------------


def text(s: str) -> bytes:
    return json.dumps({"type": 1, "content": s}).encode()


@pytest.mark.parametrize("lost", [False, True], ids=["reordered", "lost"])
async def test_a_node_shows_a_channel_in_seq_order_whatever_the_bus_order(
    tmp_path: Path, lost: bool
) -> None:
    """After a first message sent normally, three more are committed into the group and their
    deliveries handed to the node's bus in the order 4, 2, 3 (another node's publications
    overtaking) — or 4, 2 with 3 never arriving (a dropped frame): bob's client sees 2, 3, 4
    either way, each once."""
    async with running_node(tmp_path, order_hold=0.2) as node:
        tok = {uid: await add_user(node, uid) for uid in ("alice", "bob")}
        await make_group(node, "g1", ["alice", "bob"])
        alice = await connect(node, "alice", tok["alice"])
        bob = await connect(node, "bob", tok["bob"])
        assert (await alice.send("g1", 2, text("m1"))).message_seq == 1
        assert (await asyncio.wait_for(bob.messages.get(), T)).packet.message_seq == 1
        stored = {}
        for i in (2, 3, 4):
            new = NewMessage(
                message_id=node.messaging._ids.next_id(),
                client_msg_no=f"c{i}",
                from_uid="alice",
                channel_id="g1",
                channel_type=2,
                timestamp=0,
                payload=text(f"m{i}"),
                flags=int(Flags.RED_DOT),
            )
            appended = await node.store.append_message(new, ["alice", "bob"])
            stored[appended.message.message_seq] = appended.message
        for seq in [4, 2] if lost else [4, 2, 3]:
            await node.bus.publish(Delivery(stored[seq], ("alice", "bob")))
        got = [await asyncio.wait_for(bob.messages.get(), T) for _ in range(3)]
        assert [g.packet.message_seq for g in got] == [2, 3, 4]
        assert [json.loads(g.payload)["content"] for g in got] == ["m2", "m3", "m4"]
        await settle(0.3)
        assert bob.messages.empty(), "each message once"
        assert node.gateway.order.counts.filled == (1 if lost else 0)
        for c in (alice, bob):
            await c.close()


async def test_a_message_filled_before_its_own_node_published_it_skips_its_sender(
    tmp_path: Path,
) -> None:
    """Alice's seq 2 commits on this node, but its publication is late (the node was slow
    between the commit and the publish) while seq 3 — from another node — arrives and is held;
    the hold runs out and seq 2 is read from the store and delivered. It goes to bob and to
    alice's other device, never to the connection that sent it (which has its SENDACK, and
    which the WuKongIM semantics never send a RECV of its own message), and its own late
    publication is dropped: each connection gets each message at most once."""
    async with running_node(tmp_path, order_hold=0.05) as node:
        tok = {uid: await add_user(node, uid) for uid in ("alice", "bob")}
        await make_group(node, "g1", ["alice", "bob"])
        sender = await connect(node, "alice", tok["alice"], device_flag=1)
        other = await connect(node, "alice", tok["alice"], device_flag=2)
        bob = await connect(node, "bob", tok["bob"])
        assert (await sender.send("g1", 2, text("m1"))).message_seq == 1
        for client in (other, bob):
            assert (await asyncio.wait_for(client.messages.get(), T)).packet.message_seq == 1
        append = node.store.append_message

        async def late_publish(new: NewMessage, *args: object, **kw: object) -> object:
            appended = await append(new, *args, **kw)  # type: ignore[arg-type]
            overtaking = NewMessage(
                message_id=node.messaging._ids.next_id(),
                client_msg_no="from-another-node",
                from_uid="bob",
                channel_id="g1",
                channel_type=2,
                timestamp=0,
                payload=text("m3"),
                flags=int(Flags.RED_DOT),
            )
            third = (await append(overtaking, ["alice", "bob"])).message
            await node.bus.publish(Delivery(third, ("alice", "bob")))  # held: 2 is missing
            await asyncio.sleep(0.4)  # the hold runs out, seq 2 is read from the store
            return appended

        node.store.append_message = late_publish  # type: ignore[method-assign]
        ack = await sender.send("g1", 2, text("m2"))
        assert ack.message_seq == 2
        node.store.append_message = append  # type: ignore[method-assign]
        for client in (other, bob):
            got = [await asyncio.wait_for(client.messages.get(), T) for _ in range(2)]
            assert [g.packet.message_seq for g in got] == [2, 3]
        third = await asyncio.wait_for(sender.messages.get(), T)
        assert third.packet.message_seq == 3, "the sender gets bob's message, not its own"
        await settle(0.3)
        for client in (sender, other, bob):
            assert client.messages.empty(), "each message once"
        assert node.gateway.order.counts.filled == 1
        assert node.gateway.order.counts.dropped == 1
        for c in (sender, other, bob):
            await c.close()
