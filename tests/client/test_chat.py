"""``magpie chat`` as a person uses it: a subprocess driven over stdin against a real node."""

from __future__ import annotations

import asyncio
import re
import sys
from pathlib import Path

from magpie.app import Node
from magpie.client import Channel
from tests.client.support import T, client_of, ext_update
from tests.support.nodes import add_user, api, make_group, running_node


class Terminal:
    """The chat process: write command lines, wait for output lines."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.seen: list[str] = []

    async def type(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line.encode() + b"\n")
        await self.proc.stdin.drain()

    async def expect(self, pattern: str) -> re.Match[str]:
        assert self.proc.stdout is not None
        regex = re.compile(pattern)
        while True:
            try:
                raw = await asyncio.wait_for(self.proc.stdout.readline(), T)
            except TimeoutError:
                raise AssertionError(f"no line matched {pattern!r}; output: {self.seen}") from None
            assert raw, f"the chat exited waiting for {pattern!r}; output: {self.seen}"
            line = raw.decode().rstrip("\n")
            self.seen.append(line)
            if match := regex.search(line):
                return match

    async def expect_all(self, *patterns: str) -> None:
        """Lines matching every pattern, in any order (e.g. a message and the reminder its
        CMD caused: the CMD may overtake the message)."""
        waiting = list(patterns)
        while waiting:
            match = await self.expect("|".join(f"(?:{p})" for p in waiting))
            waiting = [p for p in waiting if not re.search(p, match.string)]


async def start_chat(node: Node, uid: str, cache: Path) -> Terminal:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "magpie.cli",
        "chat",
        "--uid",
        uid,
        "--token",
        f"tok-{uid}",
        "--url",
        f"ws://127.0.0.1:{node.ws_port}",
        "--api",
        f"http://127.0.0.1:{node.api_port}",
        "--cache",
        str(cache),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    return Terminal(proc)


async def test_chat_shows_messages_and_state_live_and_runs_commands(tmp_path: Path) -> None:
    async with running_node(tmp_path / "node", ext_coalesce_ms=0) as node:
        for uid in ("alice", "bob"):
            await add_user(node, uid)
        await make_group(node, "g1", ["alice", "bob"])
        alice = client_of(node, "alice", "tok-alice", None)
        await alice.open()
        await alice.wait_synced(T)
        welcome = await alice.send(Channel.group("g1"), {"type": 1, "content": "welcome"})
        bob = await start_chat(node, "bob", tmp_path / "bob.db")
        try:
            await bob.expect(r"^\[state\] connected")
            await bob.expect(rf"^\[msg\] \(1\) g1:2 #1 id={welcome.message_id} alice: welcome$")
            await bob.expect(r"^\[sync\] done")

            live = await alice.send(Channel.group("g1"), {"type": 1, "content": "hi bob"})
            await bob.expect(rf"^\[msg\] \(2\) g1:2 #2 id={live.message_id} alice: hi bob$")
            await ext_update(node, welcome.message_id, status="approved", extra_patch={"n": 1})
            await bob.expect(
                rf"^\[ext\] \(1\) g1:2 id={welcome.message_id} v1 status approved · extra n=1$"
            )

            heard = alice.messages.stream()
            await bob.type("/send g1 hello alice")
            sent = await bob.expect(r"^\[sent\] g1:2 #3 id=(\d+)$")
            got = await heard.get(T)
            assert (got.text, got.message_id) == ("hello alice", int(sent[1]))

            await bob.type("/history g1:2")
            await bob.expect(
                rf"^\[history\] \(1\) g1:2 #1 id={welcome.message_id} alice: welcome"
                r" · status approved$"
            )
            await bob.expect(r"^\[history\] \(3\) g1:2 #3 id=\d+ bob: hello alice$")
            await bob.expect(r"^\[history\] g1:2: 3 message\(s\)$")

            await bob.type("/act 12 approve")
            await bob.expect(r"^\[error\] .*/cards/12/actions: HTTP 404")
            await bob.type("/act twelve approve")
            await bob.expect(r"^\[error\] usage: /act")
            await bob.type("/bogus")
            await bob.expect(r"^\[error\] unknown command '/bogus'")
            await bob.type("/quit")
            await bob.expect(r"^\[bye\] bob$")
            assert await asyncio.wait_for(bob.proc.wait(), T) == 0
        finally:
            if bob.proc.returncode is None:
                bob.proc.kill()
                await bob.proc.wait()
            await alice.close()


async def test_chat_restarts_from_its_cache_offline(tmp_path: Path) -> None:
    async with running_node(tmp_path / "node") as node:
        await add_user(node, "bob")
        await make_group(node, "g1", ["bob"])
        async with api(node) as http:
            body = {
                "from_uid": "bob",
                "channel_id": "g1",
                "channel_type": 2,
                "payload": "eyJ0eXBlIjoxLCJjb250ZW50Ijoia2VwdCJ9",
            }
            assert (await http.post("/message/send", json=body)).status_code == 200
        first = await start_chat(node, "bob", tmp_path / "bob.db")
        await first.expect(r"^\[sync\] done")
        await first.type("/quit")
        assert await asyncio.wait_for(first.proc.wait(), T) == 0
    again = await start_chat(node, "bob", tmp_path / "bob.db")  # the node is gone
    try:
        await again.type("/history g1")
        await again.expect(r"^\[history\] \(1\) g1:2 #1 id=\d+ bob: kept$")
        await again.type("/state")
        await again.expect(r"^\[state\] (connecting|waiting) sync=idle")
        again.proc.stdin.close()  # type: ignore[union-attr]
        await again.expect(r"^\[bye\] bob$")
    finally:
        if again.proc.returncode is None:
            again.proc.kill()
        await again.proc.wait()


async def test_chat_shows_a_card_as_text_and_takes_numbered_actions(tmp_path: Path) -> None:
    async with running_node(tmp_path / "node") as node:
        for uid in ("alice", "bob"):
            await add_user(node, uid)
        await make_group(node, "g1", ["alice", "bob"])
        alice = client_of(node, "alice", "tok-alice", None)
        await alice.open()
        vote = await alice.cards.create_vote(Channel.group("g1"), "Lunch", ["pizza", "sushi"])
        mid = vote.message_id
        bob = await start_chat(node, "bob", tmp_path / "bob.db")
        try:
            await bob.expect(r"^\[sync\] done")
            await bob.type(f"/card {mid}")
            await bob.expect(r"^\[card\] Lunch \[vote@1\] — open \(v1\)$")
            await bob.expect(r"^\[card\]   1\) sushi \[\.+\] 0$")
            await bob.expect(r"^\[card\]   \[1\] Vote — fill in: options")
            await bob.expect(r"^\[card\]   \[2\] Close .*\(unavailable: ")
            await bob.type(f"/do {mid} 2")
            await bob.expect(r"^\[error\] Close: ")
            await bob.type(f"/do {mid} 9")
            await bob.expect(rf"^\[error\] the card has no action 9 \(/card {mid} lists them\)")
            await bob.type(f'/do {mid} 1 {{"options": [1]}}')
            await bob.expect(rf"^\[card\] id={mid} v2 status=open$")
            await bob.type(f"/card {mid}")
            await bob.expect(r"^\[card\]   1\) sushi \[#+\] 1$")
            await bob.expect(r"^\[card\] your vote: 1$")
            await bob.type("/quit")
            assert await asyncio.wait_for(bob.proc.wait(), T) == 0
        finally:
            if bob.proc.returncode is None:
                bob.proc.kill()
                await bob.proc.wait()
            await alice.close()


async def test_chat_renders_conversation_state_and_runs_its_commands(tmp_path: Path) -> None:
    async with running_node(tmp_path / "node", ext_coalesce_ms=0) as node:
        for uid in ("alice", "bob", "carol"):
            await add_user(node, uid)
        await make_group(node, "g1", ["alice", "bob", "carol"])
        g1 = Channel.group("g1")
        alice = client_of(node, "alice", "tok-alice", None)
        await alice.open()
        await alice.wait_synced(T)
        bob = await start_chat(node, "bob", tmp_path / "bob.db")
        try:
            await bob.expect(r"^\[sync\] done")
            ask = {"type": 1, "content": "lunch at noon?", "mention": {"uids": ["bob"]}}
            first = await alice.send(g1, ask, receipt=True)
            await bob.expect_all(
                rf"^\[msg\] \(1\) g1:2 #1 id={first.message_id} alice: lunch at noon\?  @you$",
                r"^\[@you\] g1:2 #1 alice mentioned you \(/done \d+ to clear\)$",
            )

            heard = alice.messages.stream()
            await bob.type("/reply 1 yes, at noon")
            await bob.expect(
                r'^\[msg\] \(2\) g1:2 #2 id=\d+ bob: yes, at noon  ↪ alice: "lunch at noon\?"$'
            )
            reply = await heard.get(T)
            assert reply.reply is not None and reply.reply.message_id == first.message_id

            await bob.type("/thread 1")
            await bob.expect(r"^\[thread\] \(2\) g1:2 #2 id=\d+ bob: yes, at noon  ↪ alice")
            await bob.expect(r"^\[thread\] \(1\): 1 reply\(ies\)$")
            await bob.type("/react 1 👍")
            await bob.expect(r"^\[react\] \(1\) g1:2 👍 1 \(bob\)$")
            await alice.react(first.message_id, "👍")
            await bob.expect(r"^\[react\] \(1\) g1:2 👍 2 \(bob, alice\)$")

            await bob.type("/read g1")
            await bob.expect(r"^\[read\] g1:2 0 unread; 1 receipt\(s\) counted$")
            await bob.type("/reminders")
            await bob.expect(r"^\[reminder\] \d+: g1:2 #1 from alice @you$")

            await alice.edit(first.message_id, "lunch at one?")
            await bob.expect(
                r"^\[edit\] \(1\) g1:2 #1 id=\d+ alice: lunch at one\?  @you · edited · read by 1"
                r" · 👍 2 \(bob, alice\)$"
            )
            await bob.type("/history g1")
            await bob.expect(r"^\[history\] \(1\) g1:2 #1 .*alice: lunch at one\?.* · edited")
            await bob.expect(r'^\[history\] \(2\) g1:2 #2 .*↪ alice: "lunch at one\?"$')
            await alice.send_typing(g1)
            await bob.expect(r"^\[typing\] g1:2 alice is typing…$")
            await alice.revoke(first.message_id)
            await bob.expect(r"^\[edit\] \(1\) g1:2 #1 id=\d+ alice: \(withdrawn\)")
            await bob.type("/history g1")
            await bob.expect(
                r"^\[history\] \(2\) g1:2 #2 .*bob: yes, at noon  ↪ alice: \(withdrawn\)$"
            )

            await bob.type("/search noon")
            await bob.expect(r"^\[found\] \(2\) g1:2 #2 .*bob: yes, at noon")
            await bob.expect(r"^\[found\] 1 result\(s\) for 'noon'$")
            notes = tmp_path / "my notes.txt"
            notes.write_text("hello file")
            await bob.type(f'/upload g1 "{notes}"')
            await bob.expect(r"^\[msg\] \(\d+\) g1:2 #3 id=\d+ bob: \[file my notes.txt, 10 B\]$")
            await bob.type("/online g1")
            await bob.expect(r"^\[online\] g1:2 alice online \(pc\)$")
            await bob.expect(r"^\[online\] g1:2 bob online \(pc\)$")
            await bob.expect(r"^\[online\] g1:2 carol offline$")
            await bob.type("/readby 2")
            await bob.expect(r"^\[read\] \(2\) read by 0: nobody$")

            reminded = alice.reminders_added.stream()
            await bob.type("/send g1 @alice, see the file")
            assert (await reminded.get(T)).publisher == "bob"
            await bob.type("/react 99 👍")
            await bob.expect(r"^\[error\] no message \(99\): use the number in parentheses")
            await bob.type('/react 2 "a b"')
            await bob.expect(r"^\[error\] emoji: ")
            await bob.type("/edit 1")
            await bob.expect(r"^\[error\] usage: /edit <n> <text>")
            await bob.type("/help")
            await bob.expect(r"^\[help\] /upload <channel> <path> .*\"double quotes\"$")
            await bob.type("/quit")
            await bob.expect(r"^\[bye\] bob$")
            assert not [line for line in bob.seen if '{"' in line], bob.seen
        finally:
            if bob.proc.returncode is None:
                bob.proc.kill()
                await bob.proc.wait()
            await alice.close()
