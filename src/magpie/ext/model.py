"""The value types of message extensions (ARCHITECTURE: ext; I6).

Plain frozen dataclasses with no Magpie imports, so a business service (``magpie.cards``) can
write decisions against them without seeing the store. The store has its own row types
(``magpie.store.interface``); :mod:`magpie.ext.service` converts between the two.

A change is decided by a :data:`Mutate` function: given the message's current
:class:`ExtState` it returns a :class:`Decision` — *applied* with the new :class:`Fields`, or
*rejected* with a :class:`Result` and a reason. The function runs inside the store's
transaction, so it must be pure (no I/O, no clock, no randomness): it may be run again.
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
    "ExtState",
    "Fields",
    "Mutate",
    "OpRecord",
    "Result",
    "SyncPage",
    "UpdateResult",
]

_EMPTY: Mapping[str, Any] = MappingProxyType({})


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
    and the standard WuKongIM / TangSengDaoDao fields (spec §5)."""

    status: str = ""
    extra: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)
    revoke: bool = False
    revoker: str = ""
    content_edit: Mapping[str, Any] | None = None
    edited_at: int = 0  # unix seconds; 0 = never edited
    readed_count: int = 0


@dataclass(frozen=True, slots=True)
class ExtState:
    """A message's extension as a decision sees it. A message that was never changed has
    default :class:`Fields`, ``version`` 0 and ``extra_version`` 0. ``channel_id`` is the
    storage id (the fake id ``a@b`` for person channels)."""

    message_id: int
    channel_id: str
    channel_type: int
    message_seq: int
    fields: Fields = field(default_factory=Fields)
    version: int = 0
    extra_version: int = 0
    updated_at: int = 0  # HLC value (magpie.ext.hlc)
    updated_by: Actor = field(default_factory=Actor)

    @property
    def status(self) -> str:
        """Shortcut for ``fields.status``."""
        return self.fields.status

    @property
    def extra(self) -> Mapping[str, Any]:
        """Shortcut for ``fields.extra``."""
        return self.fields.extra


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome of a :data:`Mutate` function.

    ``fields`` is the new state when ``result`` is APPLIED. ``updated_at`` is the change's
    HLC value when the caller supplied one (last-writer-wins); ``None`` lets the service stamp
    it. ``base_version`` is recorded in the operation log (default: the current version).
    ``code`` is a stable machine-readable reason for a rejection (``too_large``, ...)."""

    result: Result
    fields: Fields | None = None
    updated_at: int | None = None
    base_version: int | None = None
    code: str = ""
    detail: str = ""

    @classmethod
    def applied(
        cls, fields: Fields, *, updated_at: int | None = None, base_version: int | None = None
    ) -> Decision:
        """Accept the change, giving the new fields."""
        return cls(Result.APPLIED, fields, updated_at, base_version)

    @classmethod
    def rejected(
        cls, result: Result, detail: str, *, code: str = "", base_version: int | None = None
    ) -> Decision:
        """Refuse the change (``result`` must not be APPLIED)."""
        if result is Result.APPLIED:
            raise ValueError("a rejection needs a rejecting result")
        return cls(result, None, None, base_version, code or result.value, detail)


#: Decides a change from the current state. Pure: it runs inside the store transaction.
Mutate = Callable[[ExtState], Decision]


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


@dataclass(frozen=True, slots=True)
class UpdateResult:
    """What :meth:`magpie.ext.service.ExtService.update` did.

    ``state`` is the message's extension after the attempt (unchanged when rejected);
    ``op`` the attempt's log row — the *original* one when ``duplicate`` (the action id was
    seen before, nothing changed); ``last_applied`` the log row of the change that produced
    ``state`` (who changed it, when), if any."""

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


@dataclass(frozen=True, slots=True)
class SyncPage:
    """An answer to a sync: rows ascending by ``extra_version``, whether more rows follow the
    last one, and the store epoch (I7)."""

    epoch: str
    rows: list[ExtState]
    more: bool
