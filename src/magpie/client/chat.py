"""``magpie chat``: a line-based terminal client built on the SDK (and a real user of it).

Everything that happens is printed as one readable line with a tag in brackets (never raw
JSON); every message shown gets a number in parentheses, ``(n)``, which the commands that act
on a message take. Commands are read from stdin, one per line (``/help`` prints them with how
to quote their arguments)::

    /send <channel> <text>             send a text message
    /reply <n> <text>                  reply to message (n), quoting it; /thread <n> its replies
    /react <n> <emoji>, /unreact <n> <emoji>   add or remove a reaction
    /edit <n> <text>, /revoke <n>      edit or withdraw your message (n)
    /read <channel>                    mark the channel read (receipts and unread count)
    /readby <n>                        who read your message (n) (sent with /send! …)
    /search <words>, /more             search your messages, next page
    /upload <channel> <path>           send a file (an image shows as an image)
    /online <channel>, /typing <channel>, /reminders, /done <reminder id>
    /act, /confirm, /card, /do         cards (see HELP)
    /history <channel> [n], /channels, /state, /help, /quit

A channel is written ``id`` or ``id:type`` (1 person, 2 group …); a bare id names the
conversation of that id if there is exactly one, else the direct chat with that user.
Output lines: ``[state]``, ``[sync]``, ``[msg]``, ``[cmd]``, ``[ext]``, ``[edit]``,
``[react]``, ``[read]``, ``[unread]``, ``[@you]``, ``[typing]``, ``[sent]``, ``[card]``,
``[conflict]``, ``[history]``, ``[thread]``, ``[found]``, ``[online]``, ``[reminder]``,
``[channel]``, ``[error]``, ``[bye]``. A message line reads
``(n) channel #seq from: text  ↪ quoted: "preview"  @you · edited · read by 2 · 👍 2 (alice,
bob)`` (:mod:`magpie.client.convtext`).
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

from magpie.client import convtext
from magpie.client.cardtext import render
from magpie.client.client import Client
from magpie.client.connection import ConnectionChange
from magpie.client.errors import CardConflict, ClientError
from magpie.client.model import (
    Channel,
    ExtChange,
    Message,
    MessageEdited,
    ReactionChange,
    ReceiptChange,
    Reminder,
    SyncPhase,
    SyncProgress,
    Typing,
    UnreadCleared,
)
from magpie.client.state import ConnectionState
from magpie.domain.ext import ExtState

__all__ = ["Chat", "add_arguments", "run", "text_content"]

#: The commands, as ``/help`` prints them, with how to quote their arguments.
HELP = """\
/send <channel> <text>                  send a text (as typed, no quotes needed; @bob mentions bob)
/reply <n> <text>                       reply to message (n), quoting it (text as typed)
/thread <n>                             the replies quoting message (n)
/react <n> <emoji>                      add a reaction, e.g. /react 3 👍 (one emoji, no spaces)
/unreact <n> <emoji>                    remove your reaction
/edit <n> <text>                        edit your message (n) (text as typed)
/revoke <n>                             withdraw your message (n)
/read <channel>                         mark the channel read: receipts and unread count
/readby <n>                             who read your message (n) and who has not yet
/search <words>                         search messages you can read (words as typed)
/more                                   the next page of the last search
/upload <channel> <path>                send a file; a path with spaces in "double quotes"
/online <channel>                       who of the channel is online
/typing <channel>                       tell the channel you are typing
/reminders                              your open @mentions; /done <id> marks one done
/act <message_id> <action> [json]       act on a card (params as one JSON object)
/card <message_id>                      show a card as text, its actions numbered
/do <message_id> <n> [json]             take the card's action number n (json: its inputs)
/confirm <message_id> <action> [json]   the same, overriding a conflicting action
/history <channel> [n]                  the last n cached messages with their state
/channels                               the conversation list
/state                                  connection and sync state
/help                                   this text
/quit                                   leave (so does end of input)
(n) is the number in parentheses before a message; a channel is id or id:type; arguments
other than text are separated by spaces: put one holding spaces in "double quotes"."""
_MAX_HISTORY = 1000
#: Seconds a ``/send`` waits for its SENDACK before giving up (``[error]``), so the prompt
#: stays usable while offline.
SEND_TIMEOUT = 10.0
#: Results per ``/search`` page.
SEARCH_PAGE = 10
#: Commands whose last argument is text taken as typed (``/send g1 it's "fine"``).
_TEXT_LAST = {"/send": 2, "/reply": 2, "/edit": 2, "/search": 1}


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
    """A card's or business state: version, status, extra as ``key=value`` text."""
    if ext is None:
        return ""
    extra = convtext.value_text(dict(ext.extra)) or "-"
    revoked = " · withdrawn" if ext.fields.revoke else ""
    return f"v{ext.version} status {ext.status or '-'} · extra {extra}{revoked}"


def _business_changed(change: ExtChange) -> bool:
    """Whether a change moved the status or extra (edits and receipts have own lines)."""
    old = change.old
    return old is None or (old.status, old.extra) != (change.new.status, change.new.extra)


class Chat:
    """The terminal UI of one client: prints events, runs commands."""

    def __init__(self, client: Client, out: TextIO) -> None:
        self.client = client
        self._out = out
        self._numbers: dict[int, int] = {}  # message id -> (n)
        self._ids: list[int] = []  # (n) - 1 -> message id
        self._search: tuple[str, int] | None = None  # the last search's words and cursor
        self._commands: dict[str, Callable[[list[str]], Awaitable[None]]] = {
            "/send": self._send,
            "/reply": self._reply,
            "/thread": self._thread,
            "/react": self._react,
            "/unreact": self._unreact,
            "/edit": self._edit,
            "/revoke": self._revoke,
            "/read": self._read,
            "/readby": self._readby,
            "/search": self._search_cmd,
            "/more": self._more,
            "/upload": self._upload,
            "/online": self._online,
            "/typing": self._typing,
            "/reminders": self._reminders,
            "/done": self._done,
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
        c = self.client
        c.states.on(self._on_state)
        c.sync_progress.on(self._on_sync)
        c.messages.on(self._on_message)
        c.commands.on(lambda cmd: self.print("cmd", f"{cmd.cmd} {cmd.channel}"))
        c.ext_changes.on(self._on_ext)
        c.edits.on(self._on_edit)
        c.reaction_changes.on(self._on_reactions)
        c.receipts.on(self._on_receipt)
        c.unread_cleared.on(self._on_unread)
        c.reminders_added.on(self._on_reminder)
        c.typing.on(self._on_typing)

    # --- numbering and lines ----------------------------------------------------------------

    def number(self, message_id: int) -> int:
        """The message's ``(n)``, given on first sight."""
        n = self._numbers.get(message_id)
        if n is None:
            self._ids.append(message_id)
            n = self._numbers[message_id] = len(self._ids)
        return n

    async def message_line(self, m: Message) -> str:
        """``(n) channel #seq id=… from: body …`` with the message's current state (and the
        quoted message's, for a reply)."""
        c = self.client
        original = None if m.reply is None else await c.ext(m.reply.message_id)
        reactions = c.cached_reactions(m.message_id)
        text = convtext.line(m.content, m.from_uid, c.uid, m.ext, reactions, original)
        return (
            f"({self.number(m.message_id)}) {m.channel} #{m.message_seq} id={m.message_id} {text}"
        )

    async def _numbered(self, text: str) -> Message:
        """The cached message numbered ``(text)``."""
        n = int(text) if text.isdigit() else 0
        if not 1 <= n <= len(self._ids):
            raise ValueError(f"no message ({text}): use the number in parentheses before one")
        message = await self.client.message(self._ids[n - 1])
        if message is None:
            raise ValueError(f"message ({n}) is no longer cached")
        return message

    # --- events -------------------------------------------------------------------------------

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

    def _on_message(self, m: Message) -> Awaitable[None]:
        self.number(m.message_id)  # numbered in arrival order, before any await
        return self._print_message(m)

    async def _print_message(self, m: Message) -> None:
        self.print("msg", await self.message_line(m))

    def _on_ext(self, change: ExtChange) -> None:
        if _business_changed(change):
            n = self.number(change.message_id)
            text = _ext_text(change.new)
            self.print("ext", f"({n}) {change.channel} id={change.message_id} {text}")

    async def _on_edit(self, edit: MessageEdited) -> None:
        m = await self.client.message(edit.message_id)
        if m is not None:
            self.print("edit", await self.message_line(m))
        else:
            state = "withdrawn" if edit.revoked else "edited"
            self.print("edit", f"({self.number(edit.message_id)}) {edit.channel} {state}")

    def _on_reactions(self, change: ReactionChange) -> None:
        chips = convtext.chips(change.reactions) or "no reactions"
        self.print("react", f"({self.number(change.message_id)}) {change.channel} {chips}")

    def _on_receipt(self, r: ReceiptChange) -> None:
        n = self.number(r.message_id)
        self.print("read", f"({n}) {r.channel} read by {r.readed_count}, {r.unread_count} not yet")

    def _on_unread(self, u: UnreadCleared) -> None:
        self.print("unread", f"{u.channel} {u.unread} unread (read to #{u.readed_to_msg_seq})")

    def _on_reminder(self, r: Reminder) -> None:
        self.print(
            "@you",
            f"{r.channel} #{r.message_seq} {r.publisher} mentioned you (/done {r.id} to clear)",
        )

    def _on_typing(self, t: Typing) -> None:
        if t.from_uid != self.client.uid:
            self.print("typing", f"{t.channel} {convtext.typing_text(t.from_uid)}")

    # --- commands -------------------------------------------------------------------------------

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
        content = text_content(args[1].strip())
        result = await self.client.send(channel, content, timeout=SEND_TIMEOUT)
        self.print("sent", f"{channel} #{result.message_seq} id={result.message_id}")

    async def _reply(self, args: list[str]) -> None:
        if len(args) != 2 or not args[1].strip():
            raise ValueError("usage: /reply <n> <text> (the text as typed)")
        quoted = await self._numbered(args[0])
        content = text_content(args[1].strip())
        result = await self.client.reply(quoted, content, timeout=SEND_TIMEOUT)
        self.print("sent", f"{quoted.channel} #{result.message_seq} id={result.message_id}")

    async def _thread(self, args: list[str]) -> None:
        if len(args) != 1:
            raise ValueError("usage: /thread <n>")
        quoted = await self._numbered(args[0])
        page = await self.client.replies(quoted, limit=100)
        for m in page.messages:
            self.print("thread", await self.message_line(m))
        more = " (the first 100)" if page.more else ""
        self.print("thread", f"({args[0]}): {len(page.messages)} reply(ies){more}")

    async def _react(self, args: list[str], remove: bool = False) -> None:
        if len(args) != 2:
            raise ValueError(f"usage: /{'un' if remove else ''}react <n> <emoji>")
        message = await self._numbered(args[0])
        act = self.client.unreact if remove else self.client.react
        chips = convtext.chips(await act(message, args[1])) or "no reactions"
        self.print("react", f"({self.number(message.message_id)}) {message.channel} {chips}")

    async def _unreact(self, args: list[str]) -> None:
        await self._react(args, remove=True)

    async def _edit(self, args: list[str]) -> None:
        if len(args) != 2 or not args[1].strip():
            raise ValueError("usage: /edit <n> <text> (the new text as typed)")
        message = await self._numbered(args[0])
        await self.client.edit(message, args[1].strip())
        self.print("sent", f"edit of ({args[0]})")

    async def _revoke(self, args: list[str]) -> None:
        if len(args) != 1:
            raise ValueError("usage: /revoke <n>")
        await self.client.revoke(await self._numbered(args[0]))
        self.print("sent", f"withdrawal of ({args[0]})")

    async def _read(self, args: list[str]) -> None:
        if len(args) != 1:
            raise ValueError("usage: /read <channel>")
        channel = await self._channel(args[0])
        others = [
            m.message_id
            for m in await self.client.history(channel, limit=_MAX_HISTORY)
            if m.from_uid != self.client.uid
        ]
        counted = len((await self.client.mark_read(channel, others)).applied) if others else 0
        conversation = await self.client.clear_unread(channel)
        self.print("read", f"{channel} {conversation.unread} unread; {counted} receipt(s) counted")

    async def _readby(self, args: list[str]) -> None:
        if len(args) != 1:
            raise ValueError("usage: /readby <n>")
        message = await self._numbered(args[0])
        read = await self.client.read_by(message.message_id)
        waiting = await self.client.read_by(message.message_id, unread=True)
        who = ", ".join(r.uid for r in read.readers) or "nobody"
        more = "…" if read.more else ""
        self.print("read", f"({args[0]}) read by {len(read.readers)}{more}: {who}")
        if waiting.readers:
            self.print("read", f"({args[0]}) not yet: {', '.join(r.uid for r in waiting.readers)}")

    async def _search_cmd(self, args: list[str]) -> None:
        if len(args) != 1 or not args[0].strip():
            raise ValueError("usage: /search <words> (as typed)")
        await self._show_search(args[0].strip(), None)

    async def _more(self, _: list[str]) -> None:
        if self._search is None:
            raise ValueError("no more results (/search <words> first)")
        await self._show_search(*self._search)

    async def _show_search(self, words: str, before: int | None) -> None:
        page = await self.client.search(words, limit=SEARCH_PAGE, before=before)
        for m in page.messages:
            self.print("found", await self.message_line(m))
        self._search = (words, page.next) if page.next is not None else None
        hint = " (/more for more)" if page.next is not None else ""
        self.print("found", f"{len(page.messages)} result(s) for {words!r}{hint}")

    async def _upload(self, args: list[str]) -> None:
        if len(args) != 2:
            raise ValueError('usage: /upload <channel> <path> (a path with spaces in "quotes")')
        channel = await self._channel(args[0])
        path = Path(args[1]).expanduser()
        if not path.is_file():
            raise ValueError(f"no such file: {path}")
        result = await self.client.send_file(channel, path)
        self.print("sent", f"{channel} #{result.message_seq} id={result.message_id}")

    async def _online(self, args: list[str]) -> None:
        if len(args) != 1:
            raise ValueError("usage: /online <channel>")
        channel = await self._channel(args[0])
        names = {0: "app", 1: "web", 2: "pc"}
        for p in await self.client.online(channel):
            devices = ", ".join(names.get(d, str(d)) for d in p.device_flags)
            state = f"online ({devices})" if p.online else "offline"
            self.print("online", f"{channel} {p.uid} {state}")

    async def _typing(self, args: list[str]) -> None:
        if len(args) != 1:
            raise ValueError("usage: /typing <channel>")
        await self.client.send_typing(await self._channel(args[0]))

    async def _reminders(self, _: list[str]) -> None:
        reminders = await self.client.reminders()
        for r in reminders:
            self.print("reminder", f"{r.id}: {r.channel} #{r.message_seq} from {r.publisher} @you")
        self.print("reminder", f"{len(reminders)} open (/done <id> clears one)")

    async def _done(self, args: list[str]) -> None:
        if len(args) != 1 or not args[0].isdigit():
            raise ValueError("usage: /done <reminder id> (the number /reminders shows)")
        await self.client.reminders_done([int(args[0])])
        self.print("reminder", f"{args[0]} done")

    async def _act(self, args: list[str], confirm: bool = False) -> None:
        if len(args) not in (2, 3) or not args[0].isdigit():
            raise ValueError("usage: /act <message_id> <action> [json params]")
        params: Mapping[str, Any] | None = json.loads(args[2]) if len(args) == 3 else None
        try:
            state = await self.client.cards.act(int(args[0]), args[1], params, confirm=confirm)
        except CardConflict as exc:
            hint = f" (/confirm {args[0]} {args[1]} to override)" if exc.can_confirm else ""
            current = convtext.value_text(dict(exc.current)) or "-"
            self.print(
                "conflict", f"id={args[0]} winner={exc.winner} at={exc.at} current: {current}{hint}"
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
        if messages and self.client.state is ConnectionState.CONNECTED:
            with contextlib.suppress(ClientError):  # the chips: the channel's reactions
                await self.client.reactions(messages[-1])
        for m in messages:
            self.print("history", await self.message_line(m))
        self.print("history", f"{channel}: {len(messages)} message(s)")

    async def _channels(self, _: list[str]) -> None:
        mentioned = set()
        with contextlib.suppress(ClientError):
            mentioned = {r.channel for r in await self.client.reminders()}
        for c in await self.client.conversations():
            you = " @you" if c.channel in mentioned else ""
            self.print("channel", f"{c.channel} last=#{c.last_msg_seq} unread={c.unread}{you}")

    async def _state(self, _: list[str]) -> None:
        c = self.client
        self.print("state", f"{c.state.value} sync={c.sync_state.value} requests={c.api_requests}")

    async def _help(self, _: list[str]) -> None:
        for line in HELP.splitlines():
            self.print("help", line.rstrip())


def text_content(text: str) -> dict[str, Any]:
    """A text message; ``@uid`` words mention those users (they get a reminder if they are
    members), ``@all`` everybody (group admins only: the server refuses it otherwise)."""
    content: dict[str, Any] = {"type": 1, "content": text}
    named = [w[1:].rstrip(",.:;!?") for w in text.split() if w.startswith("@") and len(w) > 1]
    uids = sorted({u for u in named if u and u != "all"})
    if uids or "all" in named:
        content["mention"] = {"uids": uids, **({"all": 1} if "all" in named else {})}
    return content


def _arguments(name: str, rest: str) -> list[str]:
    """A command's arguments: text arguments (``/send``, ``/reply``, ``/edit``, ``/search``)
    and ``/do``'s JSON are taken as typed; the rest split like a shell (quotes group)."""
    if name in _TEXT_LAST:
        return rest.split(None, _TEXT_LAST[name] - 1) if rest.strip() else []
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
