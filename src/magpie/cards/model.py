"""The value types of interactive cards (ARCHITECTURE: cards).

A card is a message plus its extension:

* the **definition** is immutable and travels in the message payload
  (``{"type": 3000, "content": "<plain-text fallback>", "card": {"type": "vote@1", ...}}``):
  who created it, the approvers, the options, the questions, the deadline ...;
* the **state** is the message extension: the card's status in ``status`` and everything else
  under ``extra["card"]`` (:class:`CardState`), changed only through the extension update
  primitive, so every change is versioned, logged and pushed.

Plain frozen dataclasses; the only Magpie imports are the shared vocabulary and the error
tree, so the card logic never sees the store or the IM core.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Generic, TypeVar

from magpie.domain.ext import Result
from magpie.errors import BadRequest, MagpieError

__all__ = [
    "CARD_CONTENT_TYPE",
    "STATE_KEY",
    "SYSTEM_UID",
    "Act",
    "CardBug",
    "CardInvalid",
    "CardState",
    "Common",
    "Definition",
    "RecordWrites",
    "Refusal",
    "Role",
    "Step",
    "Viewer",
]

#: The content type of card messages: a custom type outside WuKongIM's reserved ranges
#: (1–14 standard, 97–99 system/CMD, 1000–2000 and 20000–30000 reserved; spec §4).
CARD_CONTENT_TYPE = 3000
#: The key of the card state in a message's ``extra``.
STATE_KEY = "card"
#: The actor uid of transitions the server performs itself (deadlines).
SYSTEM_UID = "system"

_EMPTY: Mapping[str, Any] = MappingProxyType({})


class CardInvalid(BadRequest):
    """A card definition, creation request or action parameter failed validation (400)."""

    code = "invalid"


class CardBug(MagpieError):
    """A card type broke its own transition table (an effect returned a status its
    transition does not list). Never the peer's fault."""

    code = "card_bug"


class Role(enum.Enum):
    """Who may take an action (a transition's guard)."""

    #: The user who created the card.
    CREATOR = "creator"
    #: One of the definition's ``admins`` (may do what the creator may, e.g. close).
    ADMIN = "admin"
    #: A user the card lists: an approval's approvers, a task's (current) assignees.
    LISTED = "listed"
    #: A member of the card's channel.
    MEMBER = "member"
    #: The server itself (deadlines); never a user, whatever their uid.
    SYSTEM = "system"


@dataclass(frozen=True, slots=True)
class Common:
    """What every card definition has."""

    type_tag: str  # "approval@1"
    title: str
    description: str
    creator: str
    admins: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """The common part of the payload's ``card`` object."""
        return {
            "type": self.type_tag,
            "title": self.title,
            "description": self.description,
            "creator": self.creator,
            "admins": list(self.admins),
        }


@dataclass(frozen=True, slots=True)
class Definition:
    """Base of every type's definition (the immutable part of a card)."""

    common: Common


D = TypeVar("D", bound=Definition)


@dataclass(frozen=True, slots=True)
class CardState:
    """The card part of an extension (``extra["card"]``).

    ``data`` is the type's own JSON state; ``rev`` maps each *facet* (``status`` and every
    top-level key of ``data``) to the extension version of its last change after creation,
    so an action based on an older version can tell whether what it watches has changed
    since (a stale click) or not (an unrelated change, e.g. another voter's ballot)."""

    type_tag: str
    status: str
    data: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)
    rev: Mapping[str, int] = field(default_factory=lambda: _EMPTY)

    def to_json(self) -> dict[str, Any]:
        """As stored in ``extra["card"]``."""
        return {
            "type": self.type_tag,
            "status": self.status,
            "data": dict(self.data),
            "rev": dict(self.rev),
        }

    @classmethod
    def from_extra(cls, extra: Mapping[str, Any]) -> CardState | None:
        """The card state stored in an extension's ``extra``, if it holds one."""
        raw = extra.get(STATE_KEY)
        if not isinstance(raw, Mapping):
            return None
        tag, status = raw.get("type"), raw.get("status")
        data, rev = raw.get("data"), raw.get("rev")
        if not isinstance(tag, str) or not isinstance(status, str):
            return None
        if not isinstance(data, Mapping) or not isinstance(rev, Mapping):
            return None
        return cls(tag, status, data, rev)


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why an action is not taken: the op-log ``result``, a stable ``code`` and a message
    safe to show to the user."""

    result: Result
    code: str
    message: str


#: Records an effect writes: key -> new JSON value (``None`` deletes).
RecordWrites = Mapping[str, Mapping[str, Any] | None]
_NO_WRITES: RecordWrites = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class Step:
    """An effect's outcome: the new status, the type's new ``data`` and the per-user records
    it writes (ballots, answers: rows of their own beside the small ``data``)."""

    status: str
    data: Mapping[str, Any]
    records: RecordWrites = field(default_factory=lambda: _NO_WRITES)


@dataclass(frozen=True, slots=True)
class Act(Generic[D]):
    """What a guard or an effect sees of one action: the definition, the current state,
    who acts (``key`` is the actor's ballot key: a pseudonym on anonymous cards, else the
    uid), their roles, the parsed parameters, the time (unix ms) and the actor's records
    (the keys :meth:`~magpie.cards.cardtype.CardType.reads` names, by key; absent ones left
    out)."""

    definition: D
    status: str
    data: Mapping[str, Any]
    uid: str
    key: str
    roles: frozenset[Role]
    params: Any
    now: int
    records: Mapping[str, Mapping[str, Any]] = field(default_factory=lambda: _EMPTY)


@dataclass(frozen=True, slots=True)
class Viewer:
    """Who a projection is for: ``uid`` ("" for nobody), their ballot ``key``, static
    ``roles`` (creator, admin, member; listed is derived from the state), the time, their own
    records (as :attr:`Act.records`) and the card's shared record previews (name -> the
    ``(key, value)`` pairs of :meth:`~magpie.cards.cardtype.CardType.lists`)."""

    uid: str
    key: str
    roles: frozenset[Role]
    now: int
    records: Mapping[str, Mapping[str, Any]] = field(default_factory=lambda: _EMPTY)
    lists: Mapping[str, Sequence[tuple[str, Mapping[str, Any]]]] = field(
        default_factory=lambda: _EMPTY
    )
