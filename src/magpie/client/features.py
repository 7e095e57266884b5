"""The conversation features of the client: replies, reactions, read receipts and unread
counts, reminders, typing, edit and revoke, files, search, presence (``docs/conversation.md``
gives every endpoint and CMD; ``docs/client.md`` the methods).

:class:`ConversationFeatures` is a mixin of :class:`~magpie.client.client.Client`: its methods
are the client's. Each one checks its arguments before anything is sent
(:class:`InvalidArgument`), calls the HTTP API with the user's token, and maps a refusal to
:class:`~magpie.client.errors.ApiRequestFailed` with the server's stable ``error_code`` and
``field`` (:class:`~magpie.client.errors.RateLimited` for 429).

Listeners are driven by the CMDs the server sends after a change committed, and by the sync:

* ``syncMessageReaction`` → ``/reaction/sync`` of the channel above the held seq →
  :attr:`reaction_changes` per message whose summary changed (:class:`ReactionBook`);
* ``syncMessageExtra`` (the existing extension sync) → :attr:`receipts` when a message's
  ``readed_count``/``unread_count`` moved, :attr:`edits` when it was edited or revoked;
* ``unreadClear`` → :attr:`unread_cleared`, and a conversation sync (the cached ``unread``);
* ``syncReminders`` → ``/message/reminder/sync`` above the held version →
  :attr:`reminders_added` for each reminder not seen before and not done;
* ``typing`` → :attr:`typing`.

CMDs are online-only: after every full sync the reminders and the reactions of every channel
pulled before are pulled again, so an offline client catches up.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from magpie.client.cache import Cache
from magpie.client.errors import InvalidArgument
from magpie.client.http import HttpApi
from magpie.client.model import (
    Channel,
    Command,
    Conversation,
    ExtChange,
    Message,
    MessageEdited,
    Presence,
    Reaction,
    ReactionChange,
    ReactionRow,
    Reader,
    ReadersPage,
    ReadResult,
    ReceiptChange,
    Reminder,
    SearchPage,
    SendResult,
    Typing,
    UnreadCleared,
    Upload,
    message_from_json,
)
from magpie.client.options import ClientOptions
from magpie.client.sync import Coalescer
from magpie.client.topics import Topic
from magpie.domain.reactions import ReactionKey, apply_reaction, emoji_problem, summarise

__all__ = [
    "MAX_READ_IDS",
    "SYNC_MESSAGE_REACTION",
    "SYNC_REMINDERS",
    "TYPING",
    "UNREAD_CLEAR",
    "ConversationFeatures",
    "ReactionBook",
]

log = logging.getLogger(__name__)

#: CMD names (docs/conversation.md, "CMD names").
SYNC_MESSAGE_REACTION = "syncMessageReaction"
SYNC_REMINDERS = "syncReminders"
UNREAD_CLEAR = "unreadClear"
TYPING = "typing"
#: Most message ids one ``mark_read`` takes (the server's bound).
MAX_READ_IDS = 1000
#: Page size of the reaction and reminder pulls.
_PAGE = 200
_REMINDERS = "reminders"
#: What names a file: ``/file/<id>`` (as a message does, maybe behind the API's origin) or
#: the bare id.
_FILE_URL = re.compile(r"(?:(?:https?://[^/\s]+)?/file/)?([A-Za-z0-9_-]{1,128})")


def _check_int(value: object, argument: str, low: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise InvalidArgument(argument, f"must be an int >= {low}")
    return value


def _check_channel(channel: object) -> Channel:
    if not isinstance(channel, Channel):
        raise InvalidArgument("channel", "must be a Channel (Channel.person / .group)")
    return channel


def _check_text(value: object, argument: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidArgument(argument, "must be a non-empty string")
    return value


class ReactionBook:
    """Reactions held per message, from ``/reaction/sync`` rows (sans-I/O).

    A row replaces the held row of its (message, uid, emoji) only if its seq is greater
    (:func:`~magpie.domain.reactions.apply_reaction`), so pages applied twice or out of order
    give the same state. ``cursor(channel)`` is the highest seq applied for the channel."""

    def __init__(self) -> None:
        self._rows: dict[int, dict[ReactionKey, ReactionRow]] = {}
        self._cursors: dict[Channel, int] = {}

    def cursor(self, channel: Channel) -> int:
        """The highest seq held for ``channel`` (0: never pulled)."""
        return self._cursors.get(channel, 0)

    @property
    def channels(self) -> list[Channel]:
        """The channels pulled so far."""
        return list(self._cursors)

    def apply(self, channel: Channel, rows: Iterable[ReactionRow]) -> list[int]:
        """Apply ``rows`` of ``channel``; the ids of the messages whose summary changed."""
        self._cursors.setdefault(channel, 0)
        changed: list[int] = []
        for row in rows:
            held = self._rows.get(row.message_id, {})
            before = self.summary(row.message_id)
            self._rows[row.message_id] = apply_reaction(held, row)
            self._cursors[channel] = max(self._cursors[channel], row.seq)
            if self.summary(row.message_id) != before and row.message_id not in changed:
                changed.append(row.message_id)
        return changed

    def summary(self, message_id: int) -> tuple[Reaction, ...]:
        """The message's reactions: per emoji (in the order of their first live seq) the
        count and who."""
        rows = self._rows.get(message_id, {}).values()
        return tuple(summarise(rows).get(message_id, ()))


def _edit_of(change: ExtChange) -> MessageEdited | None:
    old, new = change.old.fields if change.old else None, change.new.fields
    edited = new.content_edit is not None and (
        old is None or (old.content_edit, old.edited_at) != (new.content_edit, new.edited_at)
    )
    revoked = new.revoke and (old is None or not old.revoke)
    if not (edited or revoked):
        return None
    content = None if new.content_edit is None else dict(new.content_edit)
    return MessageEdited(
        change.channel, change.message_id, content, new.edited_at, new.revoke, new.revoker
    )


def _receipt_of(change: ExtChange) -> ReceiptChange | None:
    old, new = change.old.fields if change.old else None, change.new.fields
    before = (0, 0) if old is None else (old.readed_count, old.unread_count)
    if (new.readed_count, new.unread_count) == before or not new.readed_count:
        return None
    return ReceiptChange(change.channel, change.message_id, new.readed_count, new.unread_count)


class ConversationFeatures:
    """Replies, reactions, read state, reminders, typing, edits, files, search, presence.

    A mixin of :class:`~magpie.client.client.Client` (which provides the attributes
    declared here); :meth:`_init_features` sets up its state."""

    uid: str
    cache: Cache
    options: ClientOptions
    _api: HttpApi | None
    send: Callable[..., Awaitable[SendResult]]

    def _init_features(self) -> None:
        q = self.options.stream_max_queue
        #: Reactions of a message changed (:class:`ReactionChange`, the summary now).
        self.reaction_changes: Topic[ReactionChange] = Topic("reaction change", q)
        #: A message with the receipt setting was read by more members.
        self.receipts: Topic[ReceiptChange] = Topic("receipt", q)
        #: The user's read position of a conversation moved (this or another device).
        self.unread_cleared: Topic[UnreadCleared] = Topic("unread cleared", q)
        #: Reminders (@mentions) the user had not seen, not done.
        self.reminders_added: Topic[Reminder] = Topic("reminder", q)
        #: A member is typing.
        self.typing: Topic[Typing] = Topic("typing", q)
        #: A message was edited or revoked.
        self.edits: Topic[MessageEdited] = Topic("edit", q)
        self._reactions = ReactionBook()
        self._reminders: dict[int, Reminder] = {}
        self._reminder_version = 0
        self._pulls: Coalescer[Channel | str] = Coalescer(self._pull, self._pull_failed)

    def _feature_topics(self) -> list[Topic[Any]]:
        return [
            self.reaction_changes,
            self.receipts,
            self.unread_cleared,
            self.reminders_added,
            self.typing,
            self.edits,
        ]

    async def _close_features(self) -> None:
        await self._pulls.close()
        for topic in self._feature_topics():
            topic.close()

    def _require(self) -> HttpApi:
        if self._api is None:
            raise InvalidArgument("api_url", "this needs the client's api_url")
        return self._api

    # --- events --------------------------------------------------------------------------------

    def _feature_command(self, command: Command) -> bool:
        """Handle a feature CMD; whether it was one (then a full sync may be wanted for
        ``unreadClear``: the caller's business)."""
        if command.cmd == TYPING:
            expires = command.param.get("expires_in_ms")
            ms = expires if isinstance(expires, int) and not isinstance(expires, bool) else 5000
            sender = str(command.param.get("from_uid") or command.from_uid)
            self.typing.publish(Typing(command.target, sender, ms))
        elif command.cmd == UNREAD_CLEAR:
            self.unread_cleared.publish(_cleared(command))
        elif command.cmd == SYNC_MESSAGE_REACTION and self._api is not None:
            self._pulls.kick(command.target)
        elif command.cmd == SYNC_REMINDERS and self._api is not None:
            self._pulls.kick(_REMINDERS)
        else:
            return False
        return True

    def _feature_ext_changes(self, changes: Sequence[ExtChange]) -> None:
        for change in changes:
            if (receipt := _receipt_of(change)) is not None:
                self.receipts.publish(receipt)
            if (edit := _edit_of(change)) is not None:
                self.edits.publish(edit)

    def _features_synced(self) -> None:
        """After a full sync: catch up on what CMDs may have been missed."""
        if self._api is None:
            return
        self._pulls.kick(_REMINDERS)
        for channel in self._reactions.channels:
            self._pulls.kick(channel)

    async def _pull(self, key: Channel | str) -> None:
        if isinstance(key, Channel):
            await self._pull_reactions(key)
        else:
            await self._pull_reminders()

    def _pull_failed(self, key: Channel | str, exc: BaseException) -> None:
        log.info("pull of %s failed: %s: %s", key, type(exc).__name__, exc)

    async def _pull_reactions(self, channel: Channel) -> None:
        api = self._require()
        while True:
            body = {
                "login_uid": self.uid,
                **_channel_body(channel),
                "seq": self._reactions.cursor(channel),
                "limit": _PAGE,
            }
            response = await api.post("/reaction/sync", body)
            rows = [ReactionRow.from_json(r) for r in _array(response.json())]
            for message_id in self._reactions.apply(channel, rows):
                summary = self._reactions.summary(message_id)
                self.reaction_changes.publish(ReactionChange(channel, message_id, summary))
            if response.headers.get("X-Magpie-More") != "1" or not rows:
                return

    async def _pull_reminders(self) -> None:
        api = self._require()
        while True:
            body = {"uid": self.uid, "version": self._reminder_version, "limit": _PAGE}
            response = await api.post("/message/reminder/sync", body)
            rows = [Reminder.from_json(r) for r in _array(response.json())]
            for reminder in rows:
                self._reminder_version = max(self._reminder_version, reminder.version)
                seen = reminder.id in self._reminders
                self._reminders[reminder.id] = reminder
                if not seen and not reminder.done:
                    self.reminders_added.publish(reminder)
            if response.headers.get("X-Magpie-More") != "1" or not rows:
                return

    # --- replies --------------------------------------------------------------------------------

    async def _message_of(self, message: Message | int) -> Message:
        if isinstance(message, Message):
            return message
        mid = _check_int(message, "message_id")
        cached = await self.cache.message(mid)
        if cached is None:
            raise InvalidArgument("message_id", f"message {mid} is not cached (sync first)")
        return cached

    async def reply(
        self,
        to: Message | int,
        content: str | Mapping[str, Any],
        *,
        from_name: str = "",
        client_msg_no: str | None = None,
        timeout: float | None = None,
    ) -> SendResult:
        """Send ``content`` (a text, or a content object) into the channel of ``to`` (a
        message, or the id of a cached one), quoting it. The server checks the quote and
        stores its preview."""
        quoted = await self._message_of(to)
        if isinstance(content, str):
            body: dict[str, Any] = {"type": 1, "content": _check_text(content, "content")}
        elif isinstance(content, Mapping):
            body = dict(content)
        else:
            raise InvalidArgument("content", "must be a text or a JSON object (dict)")
        body["reply"] = {
            "message_id": str(quoted.message_id),
            "message_seq": quoted.message_seq,
            "from_uid": quoted.from_uid,
            "from_name": from_name,
            # What this client shows of its own copy; the server stores its own preview.
            "payload": _preview(quoted.content),
        }
        return await self.send(quoted.channel, body, client_msg_no=client_msg_no, timeout=timeout)

    async def replies(
        self, message: Message | int, *, after_seq: int = 0, limit: int = 50
    ) -> SearchPage:
        """The thread of a message: the messages quoting it, oldest first after
        ``after_seq``; ``page.next`` is the ``after_seq`` of the following page."""
        target = await self._message_of(message)
        body = {
            "login_uid": self.uid,
            **_channel_body(target.channel),
            "message_id": str(target.message_id),
            "after_seq": _check_int(after_seq, "after_seq", 0),
            "limit": _check_int(limit, "limit"),
        }
        data = (await self._require().post("/message/replies", body)).json()["data"]
        found = tuple(message_from_json(m, target.channel) for m in data.get("messages") or ())
        more = bool(data.get("more")) and bool(found)
        return SearchPage(found, more, found[-1].message_seq if more else None)

    # --- reactions ------------------------------------------------------------------------------

    async def react(self, message: Message | int, emoji: str) -> tuple[Reaction, ...]:
        """Add ``emoji`` to a message (idempotent); its reactions after the change."""
        return await self._react(message, emoji, "add")

    async def unreact(self, message: Message | int, emoji: str) -> tuple[Reaction, ...]:
        """Remove this user's ``emoji`` from a message (idempotent); its reactions after."""
        return await self._react(message, emoji, "remove")

    async def _react(self, message: Message | int, emoji: str, action: str) -> tuple[Reaction, ...]:
        problem = emoji_problem(emoji)
        if problem is not None:
            raise InvalidArgument("emoji", problem)
        api = self._require()
        target = await self._message_of(message)
        body = {
            "login_uid": self.uid,
            **_channel_body(target.channel),
            "message_id": str(target.message_id),
            "emoji": emoji,
            "action": action,
        }
        await api.post("/reactions", body)
        await self._pulls.run(target.channel)
        return self._reactions.summary(target.message_id)

    async def reactions(self, message: Message | int) -> tuple[Reaction, ...]:
        """The reactions of a message now (its channel's reactions are pulled first)."""
        self._require()
        target = await self._message_of(message)
        await self._pulls.run(target.channel)
        return self._reactions.summary(target.message_id)

    def cached_reactions(self, message_id: int) -> tuple[Reaction, ...]:
        """The reactions held for a message, without asking the server (those of channels
        pulled before: by :meth:`reactions`, :meth:`react` or a ``syncMessageReaction``)."""
        return self._reactions.summary(message_id)

    # --- read state ------------------------------------------------------------------------------

    async def mark_read(self, channel: Channel, message_ids: Sequence[int]) -> ReadResult:
        """Report messages of ``channel`` as read (receipts): first reads of messages with
        the receipt setting are ``applied``, the rest ``skipped``."""
        _check_channel(channel)
        if isinstance(message_ids, str | bytes) or not isinstance(message_ids, Sequence):
            raise InvalidArgument("message_ids", "must be a list of message ids")
        if not 1 <= len(message_ids) <= MAX_READ_IDS:
            raise InvalidArgument("message_ids", f"must hold 1–{MAX_READ_IDS} ids")
        ids = [str(_check_int(m, "message_ids")) for m in message_ids]
        body = {"login_uid": self.uid, **_channel_body(channel), "message_ids": ids}
        data = (await self._require().post("/message/readed", body)).json()["data"]
        return ReadResult(
            tuple(int(i) for i in data.get("applied", ())),
            tuple(int(i) for i in data.get("skipped", ())),
        )

    async def read_by(
        self, message_id: int, *, unread: bool = False, after: str = "", limit: int = 100
    ) -> ReadersPage:
        """Who read this user's message ``message_id`` (``unread=True``: the members who
        have not), a page sorted by uid; pass ``page.next`` as ``after`` for the next."""
        mid = _check_int(message_id, "message_id")
        query = {
            "login_uid": self.uid,
            "readed": 0 if unread else 1,
            "after": after,
            "limit": _check_int(limit, "limit"),
        }
        response = await self._require().fetch(f"/messages/{mid}/receipt", query)
        page = response.json()
        readers = tuple(Reader(str(r["uid"]), int(r["readed_at"])) for r in page["data"])
        return ReadersPage(readers, bool(page.get("more")))

    async def clear_unread(self, channel: Channel, message_seq: int = 0) -> Conversation:
        """Move this user's read position of ``channel`` to ``message_seq`` (0: its last
        message); every device of the user learns it (``unread_cleared``). The conversation
        after the change."""
        _check_channel(channel)
        seq = _check_int(message_seq, "message_seq", 0)
        body = {"uid": self.uid, **_channel_body(channel), "message_seq": seq}
        row = (await self._require().post("/conversations/clearUnread", body)).json()["data"]
        return Conversation(
            channel,
            int(row.get("last_msg_seq", 0)),
            int(row.get("unread", 0)),
            int(row.get("timestamp", 0)),
            int(row.get("version", 0)),
        )

    async def unread_counts(self) -> dict[Channel, int]:
        """Unread counts per conversation, as last synced (``client.sync()`` to refresh)."""
        return {c.channel: c.unread for c in await self.cache.conversations()}

    # --- reminders ---------------------------------------------------------------------------

    async def reminders(self, *, include_done: bool = False) -> list[Reminder]:
        """This user's reminders (pulled first), oldest first; the done ones too if asked."""
        self._require()
        await self._pulls.run(_REMINDERS)
        held = sorted(self._reminders.values(), key=lambda r: r.id)
        return [r for r in held if include_done or not r.done]

    async def reminders_done(self, ids: Sequence[int]) -> None:
        """Mark reminders done (on every device of the user)."""
        if isinstance(ids, str | bytes) or not isinstance(ids, Sequence) or not ids:
            raise InvalidArgument("ids", "must be a non-empty list of reminder ids")
        body = {"uid": self.uid, "ids": [_check_int(i, "ids") for i in ids]}
        await self._require().post("/message/reminder/done", body)
        await self._pulls.run(_REMINDERS)

    # --- typing, edit, revoke ---------------------------------------------------------------

    async def send_typing(self, channel: Channel) -> None:
        """Tell the channel's online members this user is typing (at most one notice per
        ``typing_min_interval_ms`` of the server: :class:`RateLimited` otherwise)."""
        body = {"login_uid": self.uid, **_channel_body(_check_channel(channel))}
        await self._require().post("/message/typing", body)

    async def edit(self, message: Message | int, content: str | Mapping[str, Any]) -> None:
        """Edit this user's own message: a text for a text message, else a content object
        of the message's type. Everybody sees it through the extension sync (``edits``)."""
        target = await self._message_of(message)
        if isinstance(content, str):
            edit: dict[str, Any] = {"type": 1, "content": _check_text(content, "content")}
        elif isinstance(content, Mapping) and isinstance(content.get("type"), int):
            edit = dict(content)
        else:
            raise InvalidArgument("content", "must be a text or a content object with a type")
        body = {
            "message_id": target.message_id,
            **_channel_body(target.channel),
            "content_edit": edit,
        }
        await self._require().post("/message/edit", body)
        self._ext_pull(target.channel)

    async def revoke(self, message: Message | int) -> None:
        """Revoke (withdraw) this user's message, or any message of a group this user
        administers."""
        target = await self._message_of(message)
        body = {"message_id": target.message_id, **_channel_body(target.channel)}
        await self._require().post("/message/revoke", body)
        self._ext_pull(target.channel)

    def _ext_pull(self, channel: Channel) -> None:
        """Pull ``channel``'s extension changes soon (provided by the client)."""
        raise NotImplementedError

    # --- files ---------------------------------------------------------------------------------

    async def upload(self, channel: Channel, data: bytes | Path, name: str | None = None) -> Upload:
        """Store a file for ``channel``'s members (the server sniffs its type)."""
        _check_channel(channel)
        if isinstance(data, Path):
            name = data.name if name is None else name
            data = data.read_bytes()
        if not isinstance(data, bytes):
            raise InvalidArgument("data", "must be bytes or a pathlib.Path")
        if not data:
            raise InvalidArgument("data", "the file is empty")
        query = {"login_uid": self.uid, **_channel_body(channel), "name": name or "file"}
        response = await self._require().upload("/file/upload", query, data)
        return Upload.from_json(response.json()["data"])

    async def send_file(
        self, channel: Channel, data: bytes | Path, name: str | None = None
    ) -> SendResult:
        """Upload a file, then send it as an image message (type 2) if the server
        recognised an image, else as a file message (type 8)."""
        stored = await self.upload(channel, data, name)
        return await self.send(channel, stored.content())

    async def download(self, url: str) -> bytes:
        """The bytes of a file (``/file/<id>`` as a message names it, or the bare id)."""
        match = _FILE_URL.fullmatch(url) if isinstance(url, str) else None
        if match is None:
            raise InvalidArgument("url", "must name a file: /file/<id> or the id")
        file_id = match.group(1)
        response = await self._require().fetch(f"/file/{file_id}", {"login_uid": self.uid})
        return response.content

    # --- search, presence -------------------------------------------------------------------

    async def search(
        self,
        keyword: str,
        channel: Channel | None = None,
        *,
        limit: int = 20,
        before: int | None = None,
    ) -> SearchPage:
        """Messages this user can read whose text has every word of ``keyword`` (as word
        prefixes), newest first; ``before=page.next`` for the next page."""
        body: dict[str, Any] = {
            "login_uid": self.uid,
            "keyword": _check_text(keyword, "keyword"),
            "limit": _check_int(limit, "limit"),
        }
        if channel is not None:
            body.update(_channel_body(_check_channel(channel)))
        if before is not None:
            body["before_message_id"] = _check_int(before, "before")
        data = (await self._require().post("/message/search", body)).json()["data"]
        messages = tuple(message_from_json(m) for m in data.get("messages") or ())
        more = bool(data.get("more"))
        following = data.get("next")
        return SearchPage(messages, more, int(following) if more and following else None)

    async def online(self, channel: Channel) -> list[Presence]:
        """The members of ``channel`` and whether each is online, sorted by uid."""
        body = {"login_uid": self.uid, **_channel_body(_check_channel(channel))}
        rows = _array((await self._require().post("/channel/online", body)).json())
        return [
            Presence(str(r["uid"]), bool(r.get("online")), tuple(r.get("device_flags") or ()))
            for r in rows
        ]


def _preview(content: Mapping[str, Any]) -> dict[str, Any]:
    """A short copy of a quoted message's content (text cut to 200 characters)."""
    text = content.get("content")
    kept = {k: content[k] for k in ("type", "name", "width", "height", "size") if k in content}
    if isinstance(text, str):
        kept["content"] = text[:200]
    return kept


def _channel_body(channel: Channel) -> dict[str, Any]:
    return {"channel_id": channel.channel_id, "channel_type": channel.channel_type}


def _array(data: object) -> list[Mapping[str, Any]]:
    if not isinstance(data, list):
        raise ValueError("expected a JSON array")
    return [item for item in data if isinstance(item, Mapping)]


def _cleared(command: Command) -> UnreadCleared:
    p = command.param

    def number(key: str) -> int:
        value = p.get(key)
        return value if isinstance(value, int) and not isinstance(value, bool) else 0

    return UnreadCleared(
        command.target, number("unread"), number("readed_to_msg_seq"), number("version")
    )
