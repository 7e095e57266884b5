"""``magpie chat``: a line-based terminal client built on the SDK (and a real user of it).

Everything that happens is printed as one line with a tag in brackets; commands are read
from stdin, one per line::

    /send <channel> <text>             send a text message
    /act <message_id> <action> [json]  act on a card (params as a JSON object)
    /card <message_id>                 show a card as text, its actions numbered
    /do <message_id> <n> [json]        take the card's action number n (json: its inputs)
    /confirm <message_id> <action> [json]   the same, overriding a conflicting action
    /history <channel> [n]             the last n cached messages with their state
    /channels                          the conversation list
    /state                             connection and sync state
    /help                              this text
    /quit                              leave (so does end of input)

A channel is written ``id`` or ``id:type`` (1 person, 2 group …); a bare id names the
conversation of that id if there is exactly one, else the direct chat with that user.
Output lines: ``[state]``, ``[sync]``, ``[msg]``, ``[cmd]``, ``[ext]``, ``[sent]``,
``[card]``, ``[conflict]``, ``[history]``, ``[channel]``, ``[error]``, ``[bye]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import shlex
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any, TextIO

from magpie.client.cardtext import render
from magpie.client.client import Client
from magpie.client.connection import ConnectionChange
from magpie.client.errors import CardConflict, ClientError
from magpie.client.model import Channel, ExtChange, Message, SyncPhase, SyncProgress
from magpie.domain.ext import ExtState

__all__ = ["Chat", "add_arguments", "run"]

#: The commands, as ``/help`` prints them.
HELP = """\
/send <channel> <text>                  send a text message
/act <message_id> <action> [json]       act on a card (params as a JSON object)
/card <message_id>                      show a card as text, its actions numbered
/do <message_id> <n> [json]             take the card's action number n (json: its inputs)
/confirm <message_id> <action> [json]   the same, overriding a conflicting action
/history <channel> [n]                  the last n cached messages with their state
/channels                               the conversation list
/state                                  connection and sync state
/help                                   this text
/quit                                   leave (so does end of input)"""
_MAX_HISTORY = 1000
#: Seconds a ``/send`` waits for its SENDACK before giving up (``[error]``), so the prompt
#: stays usable while offline.
SEND_TIMEOUT = 10.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``chat`` subcommand's options."""
    parser.add_argument("--uid", required=True, help="your user id")
    parser.add_argument("--token", required=True, help="your user token")
    parser.add_argument(
        "--url", default="ws://127.0.0.1:5200", help="gateway: ws://host:port or tcp://host:port"
    )
    parser.add_argument("--api", default="http://127.0.0.1:5001", help="HTTP API")
    parser.add_argument("--device-flag", type=int, default=2, help="0 app, 1 web, 2 pc")
    parser.add_argument(
        "--cache", help="cache file (default ~/.cache/magpie/chat-<uid>.db; ':memory:' = none)"
    )


def _cache_path(args: argparse.Namespace) -> Path | None:
    if args.cache == ":memory:":
        return None
    if args.cache:
        return Path(args.cache)
    return Path.home() / ".cache" / "magpie" / f"chat-{args.uid}.db"


def _ext_text(ext: ExtState | None) -> str:
    if ext is None:
        return ""
    extra = json.dumps(dict(ext.extra), ensure_ascii=False, separators=(",", ":"))
    revoked = " revoked" if ext.fields.revoke else ""
    return f"v{ext.version} status={ext.status or '-'} extra={extra}{revoked}"


def _body(message: Message) -> str:
    if message.content_type == 1:
        return message.text
    return json.dumps(dict(message.content), ensure_ascii=False, separators=(",", ":"))


class Chat:
    """The terminal UI of one client: prints events, runs commands."""

    def __init__(self, client: Client, out: TextIO) -> None:
        self.client = client
        self._out = out
        self._commands: dict[str, Callable[[list[str]], Awaitable[None]]] = {
            "/send": self._send,
            "/act": self._act,
            "/confirm": self._confirm,
            "/card": self._card,
            "/do": self._do,
            "/history": self._history,
            "/channels": self._channels,
            "/state": self._state,
            "/help": self._help,
        }

    def print(self, tag: str, text: str) -> None:
        """One output line."""
        print(f"[{tag}] {text}", file=self._out, flush=True)

    def subscribe(self) -> None:
        """Print the client's events as they happen."""
        self.client.states.on(self._on_state)
        self.client.sync_progress.on(self._on_sync)
        self.client.messages.on(self._on_message)
        self.client.commands.on(lambda c: self.print("cmd", f"{c.cmd} {c.channel}"))
        self.client.ext_changes.on(self._on_ext)

    def _on_state(self, change: ConnectionChange) -> None:
        delay = f" (retry in {change.delay:.1f}s)" if change.delay is not None else ""
        reason = f" reason={change.reason}" if change.reason is not None else ""
        self.print("state", f"{change.new.value}{delay}{reason}")

    def _on_sync(self, event: SyncProgress) -> None:
        if event.phase is SyncPhase.DONE:
            self.print("sync", f"done ({event.total} items)")
        elif event.phase in (SyncPhase.FAILED, SyncPhase.RESET):
            where = f" {event.channel}" if event.channel else ""
            self.print("sync", f"{event.phase.value}{where}: {event.detail}")

    def _on_message(self, m: Message) -> None:
        self.print(
            "msg", f"{m.channel} #{m.message_seq} id={m.message_id} {m.from_uid}: {_body(m)}"
        )

    def _on_ext(self, change: ExtChange) -> None:
        self.print("ext", f"{change.channel} id={change.message_id} {_ext_text(change.new)}")

    async def handle(self, line: str) -> bool:
        """Run one input line; ``False`` means quit."""
        line = line.strip()
        if not line:
            return True
        if line in ("/quit", "/exit"):
            return False
        name, _, rest = line.partition(" ")
        command = self._commands.get(name)
        if command is None:
            self.print("error", f"unknown command {name!r}; /help lists them")
            return True
        try:
            await command(_arguments(name, rest))
        except (ClientError, ValueError) as exc:
            self.print("error", str(exc))
        return True

    async def _channel(self, text: str) -> Channel:
        """``id:type``, or a bare id: the one conversation with that id, else a person."""
        if ":" in text:
            return Channel.parse(text)
        matches = [
            c.channel for c in await self.client.conversations() if c.channel.channel_id == text
        ]
        return matches[0] if len(matches) == 1 else Channel.person(text)

    async def _send(self, args: list[str]) -> None:
        if len(args) != 2 or not args[1].strip():
            raise ValueError("usage: /send <channel> <text>")
        channel = await self._channel(args[0])
        content = {"type": 1, "content": args[1].strip()}
        result = await self.client.send(channel, content, timeout=SEND_TIMEOUT)
        self.print("sent", f"{channel} #{result.message_seq} id={result.message_id}")

    async def _act(self, args: list[str], confirm: bool = False) -> None:
        if len(args) not in (2, 3) or not args[0].isdigit():
            raise ValueError("usage: /act <message_id> <action> [json params]")
        params: Mapping[str, Any] | None = json.loads(args[2]) if len(args) == 3 else None
        try:
            state = await self.client.cards.act(int(args[0]), args[1], params, confirm=confirm)
        except CardConflict as exc:
            hint = f" (/confirm {args[0]} {args[1]} to override)" if exc.can_confirm else ""
            current = json.dumps(dict(exc.current), ensure_ascii=False, separators=(",", ":"))
            self.print(
                "conflict", f"id={args[0]} winner={exc.winner} at={exc.at} current={current}{hint}"
            )
            return
        self.print("card", f"id={state.message_id} v{state.version} status={state.status or '-'}")

    async def _confirm(self, args: list[str]) -> None:
        await self._act(args, confirm=True)

    async def _card(self, args: list[str]) -> None:
        if len(args) != 1 or not args[0].isdigit():
            raise ValueError("usage: /card <message_id>")
        state = await self.client.cards.get(int(args[0]))
        for line in render(state.data).lines:
            self.print("card", line)

    async def _do(self, args: list[str]) -> None:
        if len(args) not in (2, 3) or not args[0].isdigit() or not args[1].isdigit():
            raise ValueError("usage: /do <message_id> <n> [json inputs]")
        shown = render((await self.client.cards.get(int(args[0]))).data)
        chosen = shown.action(int(args[1]))
        if chosen is None:
            raise ValueError(f"the card has no action {args[1]} (/card {args[0]} lists them)")
        if not chosen.enabled:
            raise ValueError(f"{chosen.label}: {chosen.reason}")
        given = json.loads(args[2]) if len(args) == 3 else {}
        if not isinstance(given, dict):
            raise ValueError("the inputs must be a JSON object")
        params = json.dumps({**chosen.params, **given}, ensure_ascii=False)
        await self._act([args[0], chosen.action, params])

    async def _history(self, args: list[str]) -> None:
        if len(args) not in (1, 2):
            raise ValueError("usage: /history <channel> [n]")
        count = min(int(args[1]), _MAX_HISTORY) if len(args) == 2 else 20
        channel = await self._channel(args[0])
        messages = await self.client.history(channel, limit=max(count, 1))
        for m in messages:
            state = f" [{_ext_text(m.ext)}]" if m.ext else ""
            self.print(
                "history",
                f"{channel} #{m.message_seq} id={m.message_id} {m.from_uid}: {_body(m)}{state}",
            )
        self.print("history", f"{channel}: {len(messages)} message(s)")

    async def _channels(self, _: list[str]) -> None:
        for c in await self.client.conversations():
            self.print("channel", f"{c.channel} last=#{c.last_msg_seq} unread={c.unread}")

    async def _state(self, _: list[str]) -> None:
        c = self.client
        self.print("state", f"{c.state.value} sync={c.sync_state.value} requests={c.api_requests}")

    async def _help(self, _: list[str]) -> None:
        for line in HELP.splitlines():
            self.print("help", line.strip())


def _arguments(name: str, rest: str) -> list[str]:
    """A command's arguments: ``/send``'s text and ``/do``'s JSON are taken as typed."""
    if name == "/send":
        return rest.split(" ", 1)
    if name == "/do":
        return rest.split(None, 2)
    return shlex.split(rest)


async def _stdin_lines(stdin: TextIO) -> AsyncIterator[str]:
    """Lines of stdin without blocking the event loop (a pipe reader where possible)."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    try:
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), stdin)
    except (ValueError, OSError):  # e.g. a regular file: read it in a thread
        while line := await asyncio.to_thread(stdin.readline):
            yield line
        return
    while line_bytes := await reader.readline():
        yield line_bytes.decode(errors="replace")


async def _main(args: argparse.Namespace, stdin: TextIO, out: TextIO) -> int:
    client = Client(
        args.url, args.uid, args.token, args.device_flag, _cache_path(args), api_url=args.api
    )
    chat = Chat(client, out)
    chat.subscribe()
    async with client:
        chat.print("info", f"{args.uid} on {args.url}; /help lists the commands")
        async for line in _stdin_lines(stdin):
            if not await chat.handle(line):
                break
    chat.print("bye", args.uid)
    return 0


def run(args: argparse.Namespace) -> int:
    """Run the chat until ``/quit`` or end of input; the process exit status."""
    try:
        return asyncio.run(_main(args, sys.stdin, sys.stdout))
    except ClientError as exc:
        print(f"magpie chat: {exc.message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        with contextlib.suppress(Exception):
            print("[bye]", flush=True)
        return 130
