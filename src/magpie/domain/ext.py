"""The value types of message extensions, one type per fact (ARCHITECTURE: ext; I6, I7).

A message's extension is an :class:`ExtState`: where the message is, its changeable
:class:`Fields` (the business ``status`` and ``extra`` document and the standard WuKongIM /
TangSengDaoDao fields, spec §5), its ``version`` (+1 per accepted change), the channel
counter's ``extra_version``, the hybrid-logical-clock ``updated_at`` and who changed it last.
The same type is the store's row, what a decision sees, what the API renders (its JSON shape,
:meth:`ExtState.to_json`) and what the SDK parses and caches (:meth:`ExtState.from_json`).

A change is decided by a :data:`Mutate` function: given the current :class:`ExtState` it
returns a :class:`Decision` — *applied* with the new :class:`Fields`, or *rejected* with a
:class:`Result` and a reason. It runs inside the store's transaction, so it must be pure (no
I/O, no clock, no randomness): it may be run again. Each attempt leaves one
:class:`OpRecord` in the operation log; the store answers with an :class:`UpdateResult`.
An applied change may bring durable jobs along (its webhook events), which the store commits
in the same transaction (``magpie.store.interface.JobsOf``).

**Records.** Beside its one small, versioned state, a message may own *records*: per-user
rows (a ballot, a survey answer) keyed by a string, each an :class:`ExtRecord`. They are how a
card stays small at the size of a real group: the aggregate (status, tallies, counters) is
the state every member syncs, while each member's own row is a record that only changes with
their action and is read per viewer. A change names the record keys its decision needs
(:attr:`ExtAttempt.reads`); the store reads them in the change's transaction and hands them
to the decision as :attr:`ExtState.records`; an applied :class:`Decision` may write records
(:attr:`Decision.records`), committed with it and stamped with the change's version.

The client's rule (:func:`apply_if_newer`): a row replaces the cached row of its message only
if its ``(version, extra_version)`` is greater. ``version`` has one winner per value;
``extra_version`` breaks ties for TangSengDaoDao rows, which carry no ``version`` (spec §5.2).
So applying any permutation of a stream of rows, with duplicates, gives the same cache as
applying it in order. A cache whose store epoch differs from the server's is dropped (I7).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

__all__ = [
    "Actor",
    "Decision",
    "ExtAttempt",
    "ExtRecord",
    "ExtState",
    "Fields",
    "Mutate",
    "OpRecord",
    "Result",
    "UpdateResult",
    "apply_if_newer",
]

_EMPTY: Mapping[str, Any] = MappingProxyType({})
_NO_RECORDS: Mapping[str, ExtRecord] = MappingProxyType({})
_NO_WRITES: Mapping[str, Mapping[str, Any] | None] = MappingProxyType({})
#: Longest record key (characters), and the store's bound on the keys one attempt reads.
MAX_RECORD_KEY = 200
MAX_RECORD_READS = 16


class Result(enum.Enum):
    """What became of an attempted change (the operation log's ``result``)."""

    APPLIED = "applied"
    #: A compare-and-set whose ``expected_version`` was not the current version.
    CONFLICT = "conflict"
    #: The actor may not make this change (a business rule, e.g. a card's state machine).
    FORBIDDEN = "forbidden"
    #: The change is not valid for the current state (limits, a revoked message, ...).
    INVALID = "invalid"
    #: A last-writer-wins change older than the current state.
    STALE = "stale"


@dataclass(frozen=True, slots=True)
class Actor:
    """Who made a change: a user id and a device (free-form, e.g. a device flag or id)."""

    uid: str = ""
    device: str = ""


@dataclass(frozen=True, slots=True)
class Fields:
    """The changeable part of an extension: the business ``status`` and ``extra`` document,
    and the standard WuKongIM / TangSengDaoDao fields (spec §5). JSON values (``extra``,
    ``content_edit``) are decoded objects; ``content_edit`` ``None`` means never edited."""

    status: str = ""
    extra: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)
    revoke: bool = False
    revoker: str = ""
    content_edit: Mapping[str, Any] | None = None
    edited_at: int = 0  # unix seconds; 0 = never edited
    readed_count: int = 0
    #: Receipts: the members (not the sender) who had not read the message at its last read.
    unread_count: int = 0


@dataclass(frozen=True, slots=True)
class ExtRecord:
    """One record of a message (see the module docstring): its ``key``, JSON ``value`` and
    the extension ``version`` of the change that last wrote it."""

    message_id: int
    key: str
    value: Mapping[str, Any]
    version: int


@dataclass(frozen=True, slots=True)
class ExtState:
    """One message's extension. A message that was never changed has default
    :class:`Fields`, ``version`` 0 and ``extra_version`` 0. ``channel_id`` is the storage id
    (the fake id ``a@b`` for person channels) unless a rendering for one viewer said
    otherwise."""

    message_id: int
    channel_id: str = ""
    channel_type: int = 0
    message_seq: int = 0
    fields: Fields = field(default_factory=Fields)
    version: int = 0
    extra_version: int = 0
    updated_at: int = 0  # HLC value (magpie.ext.hlc): (ms << 16) | counter
    updated_by: Actor = field(default_factory=Actor)
    #: Only inside a decision: the message's records the attempt asked to read
    #: (:attr:`ExtAttempt.reads`), by key, absent keys left out. Never stored nor rendered.
    records: Mapping[str, ExtRecord] = field(default_factory=lambda: _NO_RECORDS)

    @property
    def status(self) -> str:
        """Shortcut for ``fields.status``."""
        return self.fields.status

    @property
    def extra(self) -> Mapping[str, Any]:
        """Shortcut for ``fields.extra``."""
        return self.fields.extra

    @property
    def order(self) -> tuple[int, int]:
        """What "newer" compares: ``(version, extra_version)``."""
        return (self.version, self.extra_version)

    def to_json(self, channel_id: str | None = None) -> dict[str, Any]:
        """The sync row (``/message/extra/sync``, ``message_extra``): WuKongIM /
        TangSengDaoDao names (spec §5.2) plus Magpie's ``status``, ``extra``, ``version``,
        ``updated_at`` (an HLC value) and ``updated_by``. ``channel_id`` replaces the stored
        one (a viewer's peer uid for a person channel)."""
        f = self.fields
        return {
            "message_id": self.message_id,
            "message_id_str": str(self.message_id),
            "message_seq": self.message_seq,
            "channel_id": self.channel_id if channel_id is None else channel_id,
            "channel_type": self.channel_type,
            "extra_version": self.extra_version,
            "version": self.version,
            "status": f.status,
            "extra": dict(f.extra),
            "revoke": int(f.revoke),
            "revoker": f.revoker,
            "readed_count": f.readed_count,
            "unread_count": f.unread_count,
            "content_edit": None if f.content_edit is None else dict(f.content_edit),
            "edited_at": f.edited_at,
            "updated_at": self.updated_at,
            "updated_by": {"uid": self.updated_by.uid, "device": self.updated_by.device},
        }

    @classmethod
    def from_json(cls, row: Mapping[str, Any]) -> ExtState:
        """Parse a sync row; absent fields (TSDD omits zero values) take their defaults.
        ``message_id_str`` is preferred to ``message_id``: JavaScript cannot hold an int64."""
        by = row.get("updated_by") or {}
        fields = Fields(
            status=str(row.get("status", "")),
            extra=dict(row.get("extra") or {}),
            revoke=bool(int(row.get("revoke", 0))),
            revoker=str(row.get("revoker", "")),
            content_edit=row.get("content_edit") or None,
            edited_at=int(row.get("edited_at", 0)),
            readed_count=int(row.get("readed_count", 0)),
            unread_count=int(row.get("unread_count", 0)),
        )
        return cls(
            message_id=int(row.get("message_id_str") or row["message_id"]),
            channel_id=str(row.get("channel_id", "")),
            channel_type=int(row.get("channel_type", 0)),
            message_seq=int(row.get("message_seq", 0)),
            fields=fields,
            version=int(row.get("version", 0)),
            extra_version=int(row.get("extra_version", 0)),
            updated_at=int(row.get("updated_at", 0)),
            updated_by=Actor(str(by.get("uid", "")), str(by.get("device", ""))),
        )


def apply_if_newer(cached: ExtState | None, incoming: ExtState) -> ExtState:
    """``incoming`` if it is newer than ``cached`` (or nothing is cached), else ``cached``."""
    if cached is None:
        return incoming
    if cached.message_id != incoming.message_id:
        raise ValueError("rows of different messages")
    return incoming if incoming.order > cached.order else cached


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome of a :data:`Mutate` function.

    ``fields`` is the new state when ``result`` is APPLIED. ``updated_at`` is the change's
    HLC value when the caller supplied one (last-writer-wins); ``None`` lets the extension
    service stamp it. ``base_version`` is recorded in the operation log (default: the current
    version). ``code`` is a stable machine-readable reason for a rejection (``too_large``,
    ...)."""

    result: Result
    fields: Fields | None = None
    updated_at: int | None = None
    base_version: int | None = None
    code: str = ""
    detail: str = ""
    #: Records written with an applied change: key -> new JSON value, ``None`` deletes.
    records: Mapping[str, Mapping[str, Any] | None] = field(default_factory=lambda: _NO_WRITES)

    @classmethod
    def applied(
        cls,
        fields: Fields,
        *,
        updated_at: int | None = None,
        base_version: int | None = None,
        records: Mapping[str, Mapping[str, Any] | None] | None = None,
    ) -> Decision:
        """Accept the change, giving the new fields (and the records it writes)."""
        writes = _NO_WRITES if not records else MappingProxyType(dict(records))
        return cls(Result.APPLIED, fields, updated_at, base_version, records=writes)

    @classmethod
    def rejected(
        cls, result: Result, detail: str, *, code: str = "", base_version: int | None = None
    ) -> Decision:
        """Refuse the change (``result`` must not be APPLIED)."""
        if result is Result.APPLIED:
            raise ValueError("a rejection needs a rejecting result")
        return cls(result, None, None, base_version, code or result.value, detail)

    @property
    def log_detail(self) -> str:
        """The operation log's ``detail``: ``"<code>: <message>"`` for a rejection, ``""``
        when applied."""
        if self.result is Result.APPLIED:
            return ""
        return f"{self.code or self.result.value}: {self.detail}"


#: Decides a change from the current state. Pure: it runs inside the store transaction.
Mutate = Callable[[ExtState], Decision]


@dataclass(frozen=True, slots=True)
class ExtAttempt:
    """An attempted change, as the operation log records it (``created_at``: unix ms).
    ``operation`` names the kind of change and ``patch`` what was asked."""

    message_id: int
    action_id: str
    actor: Actor
    operation: str
    patch: Mapping[str, Any]
    created_at: int
    #: The record keys the decision needs (read in the transaction: ``ExtState.records``).
    reads: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class OpRecord:
    """One row of the append-only operation log: an attempted change and its result."""

    op_id: int
    message_id: int
    action_id: str
    actor: Actor
    operation: str
    patch: Mapping[str, Any]
    base_version: int
    status_before: str
    status_after: str
    version_after: int
    result: Result
    detail: str  # "<code>: <message>" for a rejection, "" when applied
    created_at: int  # unix milliseconds

    @property
    def code(self) -> str:
        """A rejection's stable reason code (``conflict``, ``stale``, ``too_large``,
        ``revoked``, ...); ``""`` when applied."""
        if self.result is Result.APPLIED:
            return ""
        return self.detail.partition(":")[0] or self.result.value

    @property
    def message(self) -> str:
        """A rejection's message (``detail`` without its code)."""
        return self.detail.partition(": ")[2]


@dataclass(frozen=True, slots=True)
class UpdateResult:
    """What an update did (the store's answer, passed on by the extension service).

    ``state`` is the message's extension after the attempt (unchanged when rejected; the
    default state, version 0, of a message never changed); ``op`` the attempt's log row —
    the *original* one when ``duplicate`` (the action id was seen before, nothing changed);
    ``last_applied`` the log row of the change that produced ``state`` (who changed it,
    when), if any."""

    state: ExtState
    op: OpRecord
    duplicate: bool
    last_applied: OpRecord | None

    @property
    def result(self) -> Result:
        """The attempt's result (the original one for a duplicate)."""
        return self.op.result

    @property
    def applied(self) -> bool:
        """Whether the attempt was applied."""
        return self.op.result is Result.APPLIED
