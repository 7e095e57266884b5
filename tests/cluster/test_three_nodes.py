"""Three ``magpie serve`` processes on one PostgreSQL database and one Redis, clients on
different nodes: the guarantees of one node hold for the cluster (``docs/architecture.md``)."""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from collections.abc import Sequence
from typing import Any

import httpx

from magpie.client.raw import RawClient, ReceivedMessage
from magpie.protocol.packets import Disconnect, Flags, ReasonCode, Recvack
from tests.cluster.conftest import Hooks
from tests.support.cluster import Cluster, ServeNode
from tests.support.nodes import settle, time_scale

T = 10 * time_scale()
GROUP = 2


def text(s: str) -> bytes:
    return json.dumps({"type": 1, "content": s}).encode()


def b64(obj: Any) -> str:
    return base64.b64encode(json.dumps(obj).encode()).decode()


def uids(prefix: str, n: int) -> list[str]:
    tag = uuid.uuid4().hex[:6]
    return [f"{prefix}{tag}{i}" for i in range(n)]


async def collect(client: RawClient, n: int, timeout: float = T) -> list[ReceivedMessage]:
    """The next ``n`` messages ``client`` receives (fails on a timeout)."""
    out = []
    async with asyncio.timeout(timeout):
        while len(out) < n:
            out.append(await client.messages.get())
    return out


async def collect_distinct(
    client: RawClient, n: int, timeout: float = T
) -> tuple[list[ReceivedMessage], int]:
    """The next ``n`` distinct messages (by message id) ``client`` receives, and how many
    repeats of one came among them: a RECV resent because the node had not yet seen the
    client's RECVACK is the same packet again (WuKongIM sets no flag on a retry)."""
    out: list[ReceivedMessage] = []
    ids: set[int] = set()
    repeats = 0
    async with asyncio.timeout(timeout):
        while len(out) < n:
            got = await client.messages.get()
            if got.packet.message_id in ids:
                repeats += 1
                continue
            ids.add(got.packet.message_id)
            out.append(got)
    return out, repeats


async def recv_retries(cluster: Cluster) -> int:
    """RECVs the nodes resent so far (``magpie_recv_retries_total``, every node)."""
    total = 0
    for node in cluster:
        async with node.api() as http:
            metrics = (await http.get("/metrics")).text
        for line in metrics.splitlines():
            if line.startswith("magpie_recv_retries_total "):
                total += int(float(line.split()[1]))
    return total


async def close_all(clients: Sequence[RawClient]) -> None:
    await asyncio.gather(*(c.close() for c in clients), return_exceptions=True)


async def test_concurrent_sends_from_three_nodes_are_gap_free_once_and_in_order(
    shared: Cluster,
) -> None:
    """Six senders, two per node, send into one group at once; three listeners (one per
    node) and every sender see every message exactly once, in seq order (a sender never gets
    its own message, even one its node filled from the store before publishing it).

    The group's first message goes out before the burst: a node that has never seen a
    channel cannot tell an overtaken earlier seq from one its clients already synced, so it
    starts at the lowest seq that arrives and delivers earlier ones late (docs/architecture.md,
    *Per-channel order across nodes*); the order is promised for a channel the node knows."""
    senders, listeners = uids("s", 6), uids("l", 3)
    group = f"g{uuid.uuid4().hex[:8]}"
    await shared.add_users(senders + listeners)
    await shared.make_group(group, senders + listeners)
    send_clients = [await shared[i % 3].connect(uid) for i, uid in enumerate(senders)]
    listen_clients = [await shared[i].connect(uid) for i, uid in enumerate(listeners)]
    per_sender = 15

    async def burst(client: RawClient) -> list[Any]:
        return list(
            await asyncio.gather(
                *(client.send(group, GROUP, text(f"{client.uid}-{k}")) for k in range(per_sender))
            )
        )

    try:
        first = await listen_clients[0].send(group, GROUP, text("first"))
        assert first.message_seq == 1
        for client in send_clients + listen_clients[1:]:
            (got_first,) = await collect(client, 1)
            assert got_first.packet.message_seq == 1
        acks = await asyncio.gather(*(burst(c) for c in send_clients))
        total = per_sender * len(senders)
        seqs = sorted(a.message_seq for batch in acks for a in batch)
        assert all(a.reason_code == ReasonCode.SUCCESS for b in acks for a in b)
        assert seqs == list(range(2, total + 2)), "gap-free, one seq per message"
        by_seq = {a.message_seq: a.message_id for batch in acks for a in batch}
        own = {
            c.uid: {a.message_seq for a in batch}
            for c, batch in zip(send_clients, acks, strict=True)
        }
        expected = {c.uid: total - len(own.get(c.uid, ())) for c in send_clients + listen_clients}
        retried = await recv_retries(shared)
        got = await asyncio.gather(
            *(collect_distinct(c, expected[c.uid]) for c in send_clients + listen_clients)
        )
        await settle(0.5)
        repeats = sum(r for _, r in got)
        for client, (messages, _) in zip(send_clients + listen_clients, got, strict=True):
            seen = [m.packet.message_seq for m in messages]
            assert seen == sorted(seen), f"{client.uid} saw seqs out of order: {seen}"
            assert set(seen) == set(range(2, total + 2)) - own.get(client.uid, set())
            assert all(by_seq[m.packet.message_seq] == m.packet.message_id for m in messages)
            ids = {m.packet.message_id for m in messages}
            while not client.messages.empty():
                extra = client.messages.get_nowait()
                assert extra.packet.message_id in ids, f"{client.uid} got a message not sent"
                repeats += 1
        # A repeat is only allowed as a RECV retry (a RECVACK the node had not seen within
        # retry_interval, 0.5 s here, under load): never more repeats than resends.
        resent = await recv_retries(shared) - retried
        assert repeats <= resent, f"{repeats} messages came twice, {resent} RECVs were resent"
        history = await shared.history(group, GROUP, listeners[0])
        assert [m["message_seq"] for m in history] == list(range(1, total + 2))
    finally:
        await close_all(send_clients + listen_clients)


async def test_a_resend_to_another_node_is_stored_once(shared: Cluster) -> None:
    """An acked message resent to another node after a reconnect, and an unacked one (the
    connection dropped right after the SEND) resent likewise: one stored message each."""
    alice, bob = uids("a", 1)[0], uids("b", 1)[0]
    await shared.add_users([alice, bob])
    first = await shared[0].connect(alice)
    ack = await first.send(bob, 1, text("once"), client_msg_no="cmn-acked")
    await first.close()
    again = await shared[1].connect(alice)
    repeat = await again.send(bob, 1, text("once"), client_msg_no="cmn-acked")
    assert (repeat.message_id, repeat.message_seq) == (ack.message_id, ack.message_seq)
    # unacked: the SEND is written, the connection dropped before any SENDACK is read
    lost = await shared[2].connect(alice)
    await lost.write(lost.seal(bob, 1, text("maybe"), lost.next_client_seq(), "cmn-unacked"))
    lost.abort()
    await settle(0.2)
    resent = await again.send(bob, 1, text("maybe"), client_msg_no="cmn-unacked")
    assert resent.reason_code == ReasonCode.SUCCESS
    history = await shared.history(alice, 1, bob)
    numbers = [m["client_msg_no"] for m in history]
    assert numbers == ["cmn-acked", "cmn-unacked"], numbers
    assert history[1]["message_id"] == resent.message_id
    await close_all([again, lost])


async def test_fifty_cas_updaters_over_three_nodes_one_winner_per_version(
    shared: Cluster,
) -> None:
    sender = uids("c", 1)[0]
    group = f"g{uuid.uuid4().hex[:8]}"
    await shared.make_group(group, [sender])
    async with shared[0].api() as http:
        r = await http.post(
            "/message/send",
            json={"from_uid": sender, "channel_id": group, "channel_type": GROUP,
                  "payload": b64({"type": 1, "content": "counter"})},
        )  # fmt: skip
        assert r.status_code == 200, r.text
        mid = r.json()["data"]["message_id"]
    limits = httpx.Limits(max_connections=60)
    apis = [node.api(limits=limits) for node in shared]
    rounds = 4

    async def updater(i: int) -> list[int]:
        """CAS from what it last saw: a win moves it on, a 409 names the current row."""
        http, won = apis[i % 3], []
        version, extra = 0, {}
        for rnd in range(rounds):
            r = await http.post(
                "/message/extra/update",
                json={"message_id": mid, "expected_version": version,
                      "action_id": f"{i}-{rnd}",
                      "extra_patch": {"total": int(extra.get("total", 0)) + 1}},
            )  # fmt: skip
            assert r.status_code in (200, 409), r.text
            row = r.json()["data"] if r.status_code == 200 else r.json()["current"]
            if r.status_code == 200:
                assert row["version"] == version + 1
                won.append(row["version"])
            else:
                assert row["version"] > version
            version, extra = row["version"], row["extra"] or {}
        return won

    try:
        wins = sorted(
            v for won in await asyncio.gather(*(updater(i) for i in range(50))) for v in won
        )
        assert wins == list(range(1, len(wins) + 1)), "one winner per version, no version lost"
        # one more CAS from a stale version names the final row
        r = await apis[2].post(
            "/message/extra/update",
            json={"message_id": mid, "expected_version": 0, "action_id": "probe",
                  "extra_patch": {"x": 1}},
        )  # fmt: skip
        final = r.json()["current"]
        assert final["extra"]["total"] == len(wins) == final["version"]
    finally:
        for http in apis:
            await http.aclose()


async def test_twenty_approvers_over_three_nodes_make_one_decision(shared: Cluster) -> None:
    boss, *approvers = uids("p", 21)
    group = f"g{uuid.uuid4().hex[:8]}"
    await shared.add_users([boss, *approvers])
    await shared.make_group(group, [boss, *approvers])
    async with shared[0].api() as http:
        body = {
            "channel_id": group,
            "channel_type": GROUP,
            "card": {"type": "approval@1", "title": "Go?", "approvers": approvers,
                     "mode": "single"},
        }  # fmt: skip
        r = await http.post("/cards", json=body, headers={"Authorization": f"Bearer tok-{boss}"})
        assert r.status_code == 200, r.text
        mid = r.json()["message_id"]
    apis = [node.api(limits=httpx.Limits(max_connections=30)) for node in shared]

    async def decide(i: int, uid: str) -> httpx.Response:
        body = {
            "action": "approve" if i % 2 else "reject",
            "params": {},
            "action_id": uuid.uuid4().hex,
            "base_version": 1,
        }
        headers = {"Authorization": f"Bearer tok-{uid}"}
        return await apis[i % 3].post(f"/cards/{mid}/actions", json=body, headers=headers)

    try:
        answers = await asyncio.gather(*(decide(i, uid) for i, uid in enumerate(approvers)))
        codes = sorted(r.status_code for r in answers)
        assert codes == [200] + [409] * 19, [r.text for r in answers if r.status_code != 409]
        (won,) = [r.json() for r in answers if r.status_code == 200]
        (decision,) = won["state"]["decisions"]
        for r in answers:
            if r.status_code == 409:
                assert r.json()["winner"]["uid"] == decision["uid"]
    finally:
        for http in apis:
            await http.aclose()


async def test_a_master_login_on_one_node_kicks_the_device_on_another(shared: Cluster) -> None:
    (uid,) = uids("k", 1)
    await shared.add_users([uid], level=1)
    old = await shared[0].connect(uid, device_flag=0)
    new = await shared[2].connect(uid, device_flag=0)
    other_flag = await shared[1].connect(uid, device_flag=1)
    kicked = await asyncio.wait_for(old.packets.get(), T)
    assert isinstance(kicked, Disconnect) and kicked.reason_code == ReasonCode.CONNECT_KICK
    await asyncio.wait_for(old.closed.wait(), T)
    await settle(0.3)
    assert not new.closed.is_set() and not other_flag.closed.is_set(), "only the same flag"
    await close_all([new, other_flag])


async def test_a_recv_is_resent_across_nodes_until_recvacked(shared: Cluster) -> None:
    """The cluster runs with retry_interval 0.5 s: a RECV delivered on node 2 for a message
    sent on node 1 comes again until the device acknowledges it, then never again."""
    alice, carol = uids("r", 2)
    await shared.add_users([alice, carol])
    receiver = await shared[1].connect(carol, auto_ack=False)
    sender = await shared[0].connect(alice)
    ack = await sender.send(carol, 1, text("ack me"))
    first, again = await collect(receiver, 2)
    assert first.packet.message_id == again.packet.message_id == ack.message_id
    p = again.packet
    await receiver.write(Recvack(p.message_id, p.message_seq, flags=p.flags))
    await settle(1.5)
    assert receiver.messages.empty(), "no resend after the RECVACK"
    await close_all([receiver, sender])


async def test_the_offline_command_queue_across_nodes(shared: Cluster) -> None:
    """Sync-once commands sent through node 1 while the user is offline are read and acked
    through other nodes; one sent while the user is online on node 2 arrives live with its
    queue seq, and a master device's RECVACK on node 2 advances the cursor."""
    admin, dave = uids("q", 2)
    await shared.add_users([admin])
    await shared.add_users([dave], level=1)
    cmd = {
        "header": {"no_persist": 0, "red_dot": 0, "sync_once": 1},
        "from_uid": admin,
        "channel_id": dave,
        "channel_type": 1,
        "payload": b64({"type": 99, "cmd": "refresh", "param": {}}),
    }
    async with shared[0].api() as one, shared[1].api() as two, shared[2].api() as three:
        for _ in range(2):
            r = await one.post("/message/send", json=cmd)
            assert r.status_code == 200 and r.json()["data"]["message_seq"] == 0, r.text
        queued = (await three.post("/message/sync", json={"uid": dave})).json()
        assert [m["message_seq"] for m in queued] == [1, 2]
        r = await two.post("/message/syncack", json={"uid": dave, "last_message_seq": 1})
        assert r.status_code == 200
        rest = (await one.post("/message/sync", json={"uid": dave})).json()
        assert [m["message_seq"] for m in rest] == [2]
        master = await shared[1].connect(dave, device_flag=0)
        r = await three.post("/message/send", json=cmd)
        assert r.status_code == 200
        (live,) = await collect(master, 1)
        assert live.packet.message_seq == 3 and live.packet.flags & Flags.SYNC_ONCE
        await settle(0.3)  # the auto RECVACK (master device) advanced the cursor to 3
        assert (await one.post("/message/sync", json={"uid": dave})).json() == []
        await master.close()


async def test_offline_commands_from_three_nodes_come_back_in_queue_order_on_any_node(
    shared: Cluster,
) -> None:
    """Sync-once commands for an offline user sent through all three nodes at once (each
    node's in its own order): the queue seqs are gap-free, each node's commands keep their
    order, and ``/message/sync`` through every node, after reconnecting there, answers the
    same list in queue-seq order; nothing is pushed on reconnect, and after a syncack through
    one node every node answers the rest alone."""
    admins, (erin,) = uids("qa", 3), uids("qe", 1)
    await shared.add_users(admins)
    await shared.add_users([erin], level=1)
    per_node = 8

    def cmd(admin: str, k: int) -> dict[str, Any]:
        return {
            "header": {"no_persist": 0, "red_dot": 0, "sync_once": 1},
            "from_uid": admin,
            "channel_id": erin,
            "channel_type": 1,
            "payload": b64({"type": 99, "cmd": "refresh", "param": {"k": f"{admin}-{k}"}}),
        }

    async def series(node: ServeNode, admin: str) -> None:
        async with node.api() as http:
            for k in range(per_node):  # one after the other: this node's order
                r = await http.post("/message/send", json=cmd(admin, k))
                assert r.status_code == 200, r.text

    await asyncio.gather(*(series(n, a) for n, a in zip(shared, admins, strict=True)))
    total = per_node * len(admins)
    answers = []
    for node in shared:
        client = await node.connect(erin, device_flag=0)
        try:
            async with node.api() as http:
                answers.append((await http.post("/message/sync", json={"uid": erin})).json())
            await settle(0.2)
            assert client.messages.empty(), "queued commands are pulled, not pushed"
        finally:
            await client.close()
    first = answers[0]
    assert [m["message_seq"] for m in first] == list(range(1, total + 1)), "gap-free seqs"
    for other in answers[1:]:
        assert [(m["message_seq"], m["message_id"]) for m in other] == [
            (m["message_seq"], m["message_id"]) for m in first
        ], "every node answers the same queue in the same order"
    keys = [json.loads(base64.b64decode(m["payload"]))["param"]["k"] for m in first]
    for admin in admins:
        mine = [k for k in keys if k.startswith(f"{admin}-")]
        assert mine == [f"{admin}-{k}" for k in range(per_node)], f"{admin}'s order kept"
    async with shared[1].api() as two:
        r = await two.post("/message/syncack", json={"uid": erin, "last_message_seq": 10})
        assert r.status_code == 200
    for node in shared:
        async with node.api() as http:
            rest = (await http.post("/message/sync", json={"uid": erin})).json()
        assert [m["message_seq"] for m in rest] == list(range(11, total + 1))


async def test_live_commands_from_three_nodes_arrive_in_queue_order(shared: Cluster) -> None:
    """Sync-once commands for an online master device, sent through all three nodes at once,
    reach it live in queue-seq order, each once: its RECVACK of a seq moves the queue's
    cursor past every lower one, so a lower seq still on its way would be lost from the
    queue if the device went away before it arrived."""
    admins, (fay,) = uids("la", 3), uids("lf", 1)
    await shared.add_users(admins)
    await shared.add_users([fay], level=1)
    master = await shared[1].connect(fay, device_flag=0)
    per_node = 10

    async def series(node: ServeNode, admin: str) -> None:
        async with node.api() as http:
            for k in range(per_node):
                body = {
                    "header": {"no_persist": 0, "red_dot": 0, "sync_once": 1},
                    "from_uid": admin,
                    "channel_id": fay,
                    "channel_type": 1,
                    "payload": b64({"type": 99, "cmd": "refresh", "param": {"k": k}}),
                }
                r = await http.post("/message/send", json=body)
                assert r.status_code == 200, r.text

    try:
        await asyncio.gather(*(series(n, a) for n, a in zip(shared, admins, strict=True)))
        total = per_node * len(admins)
        got = await collect(master, total)
        seqs = [m.packet.message_seq for m in got]
        assert seqs == list(range(1, total + 1)), f"live in queue order, each once: {seqs}"
        await settle(0.3)
        assert master.messages.empty()
    finally:
        await master.close()


async def test_a_webhook_receiver_sees_each_message_once(shared: Cluster, hooks: Hooks) -> None:
    """Messages sent through all three nodes: each reaches the receiver in exactly one
    msg.notify entry, and no event id comes twice (one node claims each outbox row)."""
    sender, peer = uids("w", 2)
    await shared.add_users([sender, peer])
    clients = [await node.connect(sender, device_flag=i) for i, node in enumerate(shared)]
    acks = await asyncio.gather(
        *(c.send(peer, 1, text(f"hook {i}")) for i in range(10) for c in clients)
    )
    ids = {a.message_id for a in acks}
    async with asyncio.timeout(T * 2):
        while not ids <= set(hooks.notified()):
            await asyncio.sleep(0.1)
    await settle(1.5)  # the batch interval is 0.1 s: any second copy would have come
    mine = [i for i in hooks.notified() if i in ids]
    assert sorted(mine) == sorted(ids), "each message once"
    events = hooks.event_ids()
    assert len(events) == len(set(events)), "no event id twice"
    await close_all(clients)
