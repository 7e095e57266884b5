"""The SDK's values: channels, messages, commands, extension changes, sync progress, and the
conversation features' values (replies, reactions, receipts, reminders, typing, files,
search, presence: ``docs/conversation.md``).

All frozen, slotted dataclasses. Channel ids follow the server's rules (spec §4): 1–128
characters without whitespace or control characters, and for person channels (type 1) the id
is the *peer's* uid, so it may not contain ``@`` either. A message's ``content`` is its payload
parsed as JSON (spec §4: a JSON object with an integer ``type``; ``99`` is a CMD, §4.1).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from types import MappingProxyType
from typing import Any

from magpie.client.errors import InvalidArgument
from magpie.domain.channels import (
    GROUP,
    PERSON,
    channel_id_problem,
    channel_type_problem,
    uid_problem,
)
from magpie.domain.content import CMD, check_content, decode_content
from magpie.domain.ext import ExtState
from magpie.domain.reactions import Reaction as ReactionRow
from magpie.domain.reactions import Summary as Reaction

__all__ = [
    "CMD_TYPE",
    "FILE_TYPE",
    "IMAGE_TYPE",
    "Channel",
    "Command",
    "Conversation",
    "ExtChange",
    "Message",
    "MessageEdited",
    "Presence",
    "Reaction",
    "ReactionChange",
    "ReactionRow",
    "ReadResult",
    "Reader",
    "ReadersPage",
    "ReceiptChange",
    "Reminder",
    "Reply",
    "SearchPage",
    "SendResult",
    "SyncPhase",
    "SyncProgress",
    "Typing",
    "UnreadCleared",
    "Upload",
    "encode_content",
    "mentions",
    "message_from_json",
    "parse_content",
]

#: Content type of a command message (spec §4.1).
CMD_TYPE = CMD
_EMPTY: Mapping[str, Any] = MappingProxyType({})


def _check_id(value: object, argument: str, person: bool) -> str:
    problem = channel_id_problem(value)
    if problem is None and person and uid_problem(value) is not None:
        problem = "must be the peer's uid for a person channel (no '@')"
    if problem is not None:
        raise InvalidArgument(argument, problem)
    return str(value)


@dataclass(frozen=True, slots=True, order=True)
class Channel:
    """A channel as this user sees it: for a person channel, ``channel_id`` is the peer."""

    channel_id: str
    channel_type: int

    def __post_init__(self) -> None:
        kind = self.channel_type
        problem = channel_type_problem(kind)
        if problem is not None:
            raise InvalidArgument("channel_type", f"{problem}, got {kind!r}")
        _check_id(self.channel_id, "channel_id", kind == PERSON)

    @classmethod
    def person(cls, uid: str) -> Channel:
        """The direct chat with ``uid``."""
        return cls(uid, PERSON)

    @classmethod
    def group(cls, group_id: str) -> Channel:
        """A group channel (type 2)."""
        return cls(group_id, GROUP)

    @classmethod
    def parse(cls, text: str, default_type: int = PERSON) -> Channel:
        """``"id:type"`` or ``"id"`` (then of ``default_type``)."""
        head, sep, tail = text.rpartition(":")
        if sep and tail.isdigit():
            return cls(head, int(tail))
        return cls(text, default_type)

    def __str__(self) -> str:
        return f"{self.channel_id}:{self.channel_type}"


def parse_content(payload: bytes) -> Mapping[str, Any]:
    """A payload's JSON object, or an empty mapping if it is not one."""
    content = decode_content(payload)
    return _EMPTY if content is None else content


def encode_content(content: object, max_bytes: int) -> bytes:
    """``content`` as the payload of a SEND: compact UTF-8 JSON of an object with an integer
    ``type`` other than 99 (clients may not send commands), at most ``max_bytes`` long.
    Raises :class:`InvalidArgument` otherwise."""
    if not isinstance(content, Mapping):
        raise InvalidArgument("content", f"must be a JSON object (dict), not {type(content)}")
    try:
        kind = check_content(dict(content))["type"]
    except ValueError:
        raise InvalidArgument("content", "needs an integer 'type' (1 = text, spec §4)") from None
    if kind == CMD:
        raise InvalidArgument("content", "type 99 is a command; clients may not send commands")
    try:
        data = json.dumps(
            content, ensure_ascii=False, separators=(",", ":"), allow_nan=False
        ).encode()
    except (TypeError, ValueError) as exc:
        raise InvalidArgument("content", f"is not JSON-serialisable: {exc}") from None
    if len(data) > max_bytes:
        raise InvalidArgument("content", f"is {len(data)} bytes as JSON (limit {max_bytes})")
    return data


@dataclass(frozen=True, slots=True)
class Message:
    """A stored message of a channel. ``ext`` is its extension when it was read from the
    cache together with it (``Client.history``)."""

    channel: Channel
    message_id: int
    message_seq: int
    client_msg_no: str
    from_uid: str
    timestamp: int
    payload: bytes
    content: Mapping[str, Any] = field(default_factory=lambda: _EMPTY, compare=False)
    ext: ExtState | None = field(default=None, compare=False)

    @classmethod
    def of(
        cls,
        channel: Channel,
        message_id: int,
        message_seq: int,
        client_msg_no: str,
        from_uid: str,
        timestamp: int,
        payload: bytes,
        ext: ExtState | None = None,
    ) -> Message:
        """A message with ``content`` parsed from ``payload``."""
        content = parse_content(payload)
        return cls(
            channel,
            message_id,
            message_seq,
            client_msg_no,
            from_uid,
            timestamp,
            payload,
            content,
            ext,
        )

    @property
    def content_type(self) -> int | None:
        """The content's integer ``type`` (1 text, 99 command …), if any."""
        kind = self.content.get("type")
        return kind if isinstance(kind, int) and not isinstance(kind, bool) else None

    @property
    def is_command(self) -> bool:
        """Whether this is a CMD (content type 99, spec §4.1)."""
        return self.content_type == CMD_TYPE

    @property
    def text(self) -> str:
        """The text of a text message (``content``), else ``""``."""
        value = self.content.get("content")
        return value if isinstance(value, str) else ""

    @property
    def reply(self) -> Reply | None:
        """The message this one quotes, if it is a reply."""
        return Reply.of(self.content)


def _int(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError(f"{name} is not an integer")
    return int(value)


def message_from_json(item: Mapping[str, Any], channel: Channel | None = None) -> Message:
    """A ``MessageResp`` (spec §6) as a :class:`Message`, with its ``message_extra`` (Magpie
    sends the message's current extension with each history message) as ``ext``.
    ``channel`` overrides the item's channel (the one the caller asked about). Raises
    ``ValueError`` on a malformed item."""
    if channel is None:
        channel = Channel(str(item.get("channel_id", "")), _int(item.get("channel_type"), "type"))
    try:
        payload = base64.b64decode(str(item.get("payload", "")), validate=True)
    except binascii.Error as exc:
        raise ValueError("payload is not base64") from exc
    return Message.of(
        channel=channel,
        message_id=_int(item.get("message_idstr") or item.get("message_id"), "message_id"),
        message_seq=_int(item.get("message_seq", 0), "message_seq"),
        client_msg_no=str(item.get("client_msg_no", "")),
        from_uid=str(item.get("from_uid", "")),
        timestamp=_int(item.get("timestamp", 0), "timestamp"),
        payload=payload,
        ext=_extra(item.get("message_extra")),
    )


def _extra(row: object) -> ExtState | None:
    """A ``message_extra`` row; absent or never changed (``null`` / version 0): ``None``."""
    if not isinstance(row, Mapping):
        return None
    snapshot = ExtState.from_json(row)
    return snapshot if snapshot.order > (0, 0) else None


@dataclass(frozen=True, slots=True)
class Command:
    """A CMD (content type 99): an invisible instruction such as ``syncMessageExtra``."""

    channel: Channel
    cmd: str
    param: Mapping[str, Any]
    message_id: int
    message_seq: int
    from_uid: str
    timestamp: int

    @classmethod
    def of(cls, message: Message) -> Command:
        """The command carried by ``message``."""
        param = message.content.get("param")
        return cls(
            channel=message.channel,
            cmd=str(message.content.get("cmd", "")),
            param=param if isinstance(param, Mapping) else _EMPTY,
            message_id=message.message_id,
            message_seq=message.message_seq,
            from_uid=message.from_uid,
            timestamp=message.timestamp,
        )

    @property
    def target(self) -> Channel:
        """The channel the command is about: its ``param`` channel if that is a valid
        channel as this user sees it, else the channel it arrived on."""
        cid, kind = self.param.get("channel_id"), self.param.get("channel_type")
        if isinstance(cid, str) and isinstance(kind, int) and not isinstance(kind, bool):
            try:
                return Channel(cid, kind)
            except InvalidArgument:
                pass  # e.g. a person channel's storage id "a@b": use the arrival channel
        return self.channel


@dataclass(frozen=True, slots=True)
class ExtChange:
    """A message's extension moved from ``old`` (``None``: never seen) to ``new``.
    ``message`` is the cached message, if the cache holds it."""

    channel: Channel
    message_id: int
    old: ExtState | None
    new: ExtState
    message: Message | None = None


@dataclass(frozen=True, slots=True)
class Conversation:
    """An entry of the user's conversation list (``/conversation/sync``)."""

    channel: Channel
    last_msg_seq: int
    unread: int = 0
    timestamp: int = 0
    version: int = 0


@dataclass(frozen=True, slots=True)
class SendResult:
    """A stored message's identity, from its SENDACK."""

    channel: Channel
    message_id: int
    message_seq: int
    client_msg_no: str


class SyncPhase(Enum):
    """Where a sync run is (see :class:`SyncProgress`)."""

    STARTED = "started"
    CONVERSATIONS = "conversations"  # the conversation list arrived
    MESSAGES = "messages"  # a page of history of ``channel`` was cached
    EXTENSIONS = "extensions"  # a page of extension changes of ``channel`` was applied
    RESET = "reset"  # the server's store epoch changed: the cache was dropped (I7)
    DONE = "done"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class SyncProgress:
    """One step of a sync: ``count`` items in this step, ``total`` so far in the run."""

    phase: SyncPhase
    channel: Channel | None = None
    count: int = 0
    total: int = 0
    detail: str = ""


# --- conversation features (docs/conversation.md) -------------------------------------------


def _str(item: Mapping[str, Any], key: str) -> str:
    value = item.get(key)
    return "" if value is None else str(value)


def _num(item: Mapping[str, Any], key: str) -> int:
    value = item.get(key)
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    return int(value) if isinstance(value, str) and value.isdigit() else 0


@dataclass(frozen=True, slots=True)
class Reply:
    """The quote a message carries (``content.reply``), as the server normalised it:
    ``preview`` is the quoted message's content (its edit if edited) and ``revoked`` says
    the original was revoked since (the preview is then empty)."""

    message_id: int
    message_seq: int
    from_uid: str
    from_name: str = ""
    preview: Mapping[str, Any] = field(default_factory=lambda: _EMPTY, compare=False)
    revoked: bool = False

    @classmethod
    def of(cls, content: Mapping[str, Any]) -> Reply | None:
        """The ``reply`` of a message's content, if it has a well-formed one."""
        reply = content.get("reply")
        if not isinstance(reply, Mapping) or not _num(reply, "message_id"):
            return None
        preview = reply.get("payload")
        return cls(
            message_id=_num(reply, "message_id"),
            message_seq=_num(reply, "message_seq"),
            from_uid=_str(reply, "from_uid"),
            from_name=_str(reply, "from_name"),
            preview=preview if isinstance(preview, Mapping) else _EMPTY,
            revoked=bool(reply.get("revoke")),
        )


def mentions(content: Mapping[str, Any], uid: str) -> bool:
    """Whether ``content`` mentions ``uid`` (``mention.uids`` names it, or ``mention.all``)."""
    mention = content.get("mention")
    if not isinstance(mention, Mapping):
        return False
    uids = mention.get("uids")
    return bool(mention.get("all")) or (isinstance(uids, list) and uid in uids)


@dataclass(frozen=True, slots=True)
class ReactionChange:
    """The reactions of a message changed: ``reactions`` is its summary now."""

    channel: Channel
    message_id: int
    reactions: tuple[Reaction, ...]


@dataclass(frozen=True, slots=True)
class ReceiptChange:
    """A message with the receipt setting was read by more members: ``readed_count`` have
    read it, ``unread_count`` members have not."""

    channel: Channel
    message_id: int
    readed_count: int
    unread_count: int


@dataclass(frozen=True, slots=True)
class ReadResult:
    """``/message/readed``: the ids counted as first reads and those skipped (no receipt
    setting, one's own message, or already read)."""

    applied: tuple[int, ...]
    skipped: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Reader:
    """A member who read a message (``readed_at`` unix ms), or has not (``readed_at`` 0)."""

    uid: str
    readed_at: int


@dataclass(frozen=True, slots=True)
class ReadersPage:
    """A page of readers; ``next`` is the ``after`` of the following page (``""``: none)."""

    readers: tuple[Reader, ...]
    more: bool

    @property
    def next(self) -> str:
        """The cursor of the following page, ``""`` on the last."""
        return self.readers[-1].uid if self.more and self.readers else ""


@dataclass(frozen=True, slots=True)
class UnreadCleared:
    """The user's read position of a conversation moved (on this or another device)."""

    channel: Channel
    unread: int
    readed_to_msg_seq: int
    version: int


@dataclass(frozen=True, slots=True)
class Reminder:
    """A reminder (an @mention of the user, or of everybody) of a message."""

    id: int
    channel: Channel
    message_id: int
    message_seq: int
    publisher: str
    reminder_type: int
    text: str
    version: int
    done: bool

    @classmethod
    def from_json(cls, item: Mapping[str, Any]) -> Reminder:
        """A ``/message/reminder/sync`` row; ``ValueError``/``InvalidArgument`` if bad."""
        channel = Channel(_str(item, "channel_id"), _num(item, "channel_type"))
        return cls(
            id=_num(item, "id"),
            channel=channel,
            message_id=_num(item, "message_id"),
            message_seq=_num(item, "message_seq"),
            publisher=_str(item, "publisher"),
            reminder_type=_num(item, "reminder_type"),
            text=_str(item, "text"),
            version=_num(item, "version"),
            done=bool(_num(item, "done")),
        )


@dataclass(frozen=True, slots=True)
class Typing:
    """``from_uid`` is typing in ``channel``: show it for ``expires_in_ms`` unless another
    notice comes."""

    channel: Channel
    from_uid: str
    expires_in_ms: int


@dataclass(frozen=True, slots=True)
class MessageEdited:
    """A message was edited (``content`` is the new content) or revoked (``revoked``, by
    ``revoker``)."""

    channel: Channel
    message_id: int
    content: Mapping[str, Any] | None
    edited_at: int
    revoked: bool
    revoker: str = ""


@dataclass(frozen=True, slots=True)
class Upload:
    """A stored file (``/file/upload``): ``url`` is what a message names."""

    file_id: str
    url: str
    name: str
    size: int
    content_type: str
    width: int = 0
    height: int = 0
    sha256: str = ""

    @classmethod
    def from_json(cls, item: Mapping[str, Any]) -> Upload:
        """The upload answer's ``data``."""
        return cls(
            _str(item, "file_id"),
            _str(item, "url"),
            _str(item, "name"),
            _num(item, "size"),
            _str(item, "content_type"),
            _num(item, "width"),
            _num(item, "height"),
            _str(item, "sha256"),
        )

    @property
    def is_image(self) -> bool:
        """Whether the server recognised an image (it has dimensions)."""
        return self.content_type.startswith("image/") and self.width > 0

    def content(self) -> dict[str, Any]:
        """The message content naming this file: an image (type 2) or a file (type 8)."""
        if self.is_image:
            return {
                "type": IMAGE_TYPE,
                "url": self.url,
                "width": self.width,
                "height": self.height,
                "size": self.size,
                "name": self.name,
            }
        return {"type": FILE_TYPE, "url": self.url, "name": self.name, "size": self.size}


#: Content types of image and file messages (docs/conversation.md §7).
IMAGE_TYPE = 2
FILE_TYPE = 8


@dataclass(frozen=True, slots=True)
class SearchPage:
    """A page of messages: of ``/message/search`` (newest first) or of a thread
    (``/message/replies``, oldest first); ``next`` is the cursor of the following page
    (``None`` on the last)."""

    messages: tuple[Message, ...]
    more: bool
    next: int | None


@dataclass(frozen=True, slots=True)
class Presence:
    """A member of a channel and whether they are online (``device_flags``: 0 app, 1 web,
    2 pc)."""

    uid: str
    online: bool
    device_flags: tuple[int, ...] = ()
