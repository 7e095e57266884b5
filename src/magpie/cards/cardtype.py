"""The plug-in interface of a card type, and the registry of types.

A type is a :class:`CardType` subclass: a name and schema version (the ``type@version`` tag
in the payload), a :class:`~magpie.cards.machine.Machine`, a definition parser, the initial
state, and how its state is shown to one viewer. Types hold no mutable state; a
:class:`CardTypes` registry is built by the composition root (``default_types()``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from typing import Any, Generic, TypeVar

from magpie.cards import fields
from magpie.cards.machine import Machine, ParamError
from magpie.cards.model import CardInvalid, CardState, Common, Definition, Viewer

__all__ = ["CardType", "CardTypes", "Deadline"]

D = TypeVar("D", bound=Definition)

#: A deadline: the system action to take and when (unix ms).
Deadline = tuple[str, int]


class CardType(ABC, Generic[D]):
    """One kind of card (approval, survey, task, vote)."""

    # Class attributes of the built-in types; instance attributes of registered ones.
    name: str
    schema_version: int
    machine: Machine
    #: Whether passing the deadline ends user actions (before the server's own transition
    #: runs) — true for expiries and closing times, false for a task's due date.
    deadline_blocks: bool = True

    @property
    def tag(self) -> str:
        """``name@schema_version``, e.g. ``approval@1``."""
        return f"{self.name}@{self.schema_version}"

    def parse(self, raw: Mapping[str, Any], creator: str, now: int | None) -> D:
        """The definition in ``raw`` (the payload's ``card`` object), validated; ``now``
        (unix ms) at creation, ``None`` when re-reading a stored card. 400
        :class:`~magpie.cards.model.CardInvalid` when invalid."""
        try:
            common = Common(
                self.tag,
                fields.text(raw, "title", fields.MAX_TITLE, required=True),
                fields.text(raw, "description", fields.MAX_DESCRIPTION),
                creator,
                fields.uid_list(raw, "admins", 0, fields.MAX_ADMINS),
            )
            return self._parse(raw, common, now)
        except ParamError as exc:
            raise CardInvalid(f"card.{exc}", field="card") from None

    def payload_card(self, d: D) -> dict[str, Any]:
        """The payload's ``card`` object: common fields and the type's own."""
        return {**d.common.to_json(), **self.to_json(d)}

    @abstractmethod
    def _parse(self, raw: Mapping[str, Any], common: Common, now: int | None) -> D:
        """The type's own fields (raise :class:`ParamError`)."""

    @abstractmethod
    def to_json(self, d: D) -> dict[str, Any]:
        """The type's own fields of the payload's ``card`` object."""

    @abstractmethod
    def initial(self, d: D) -> dict[str, Any]:
        """The ``data`` of a new card."""

    @abstractmethod
    def view(self, d: D, card: CardState, viewer: Viewer) -> dict[str, Any]:
        """The type's part of a projection: ``state`` and the viewer's ``my_*`` entry."""

    @abstractmethod
    def fallback(self, d: D) -> str:
        """The plain-text ``content`` older clients show instead of the card."""

    def listed(self, d: D, data: Mapping[str, Any]) -> frozenset[str]:
        """The users with :attr:`~magpie.cards.model.Role.LISTED` (approvers, assignees)."""
        return frozenset()

    def deadline(self, d: D) -> Deadline | None:
        """The system action the deadline triggers and when, if the card has one."""
        return None

    def outcome(self, d: D, card: CardState) -> str:
        """A one-line summary once the card is decided or closed (``""`` otherwise)."""
        return ""

    def private_params(self, d: D, action: str) -> bool:
        """Whether ``action``'s parameters stay out of the operation log and the webhook
        (anonymous or hidden ballots, survey answers)."""
        return False

    def anonymous(self, d: D) -> bool:
        """Whether the actors of :meth:`anonymous_action` actions are never recorded."""
        return False

    def anonymous_action(self, d: D, action: str) -> bool:
        """Whether this action's actor is hidden (an anonymous ballot)."""
        return False

    # records: per-user rows beside the small state ------------------------------------------

    def reads(self, d: D, key: str) -> tuple[str, ...]:
        """The record keys of the actor (or viewer) with ballot key ``key`` that the guards,
        the effects and the projection read (a vote: the voter's ballot)."""
        return ()

    def lists(self, d: D, card: CardState) -> Mapping[str, tuple[str, int]]:
        """Record previews every viewer's projection shows: name -> (key prefix, most rows);
        the service reads them once per card version, in key order."""
        return {}

    def record_prefix(self, d: D) -> str | None:
        """The key prefix of the records the paged listing (``GET /cards/{id}/records``)
        offers, ``None`` when the type lists none."""
        return None

    def records_visible(self, d: D, card: CardState, viewer: Viewer) -> bool:
        """Whether ``viewer`` may page the records of :meth:`record_prefix` now (decided per
        viewer and card, never per record, so a page's cursor reveals nothing hidden)."""
        return False

    def record_view(
        self, d: D, card: CardState, viewer: Viewer, key: str, value: Mapping[str, Any]
    ) -> dict[str, Any] | None:
        """One record as ``viewer`` may see it in the listing, ``None`` when hidden."""
        return None


class CardTypes:
    """The registry of card types by tag; ``name`` alone means its newest version."""

    def __init__(self, types: Iterable[CardType[Any]]) -> None:
        self._by_tag: dict[str, CardType[Any]] = {}
        self._latest: dict[str, CardType[Any]] = {}
        for t in types:
            self._by_tag[t.tag] = t
            best = self._latest.get(t.name)
            if best is None or best.schema_version < t.schema_version:
                self._latest[t.name] = t

    def get(self, tag: str) -> CardType[Any] | None:
        """The type of ``tag`` (``vote@1``, or ``vote`` for the newest)."""
        return self._by_tag.get(tag) or self._latest.get(tag)

    def tags(self) -> list[str]:
        """Every registered tag."""
        return sorted(self._by_tag)
