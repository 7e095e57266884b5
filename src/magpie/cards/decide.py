"""The card service's :data:`~magpie.domain.ext.Mutate` functions: pure decisions on the
current extension, run inside the extension transaction (in-process) or between a read and a
compare-and-set (HTTP adapter) — either way on the state the change will replace.

A decision never raises for the user's input: every refusal becomes a rejected
:class:`~magpie.domain.ext.Decision`, which the extension service records in the operation
log (every attempt is logged). Time is an argument.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from magpie.cards.cardtype import CardType
from magpie.cards.machine import Request, admit, evaluate
from magpie.cards.model import (
    STATE_KEY,
    Act,
    CardState,
    Definition,
    Refusal,
    Role,
    Step,
)
from magpie.domain.ext import Decision, ExtState, Mutate, Result
from magpie.ext.patch import encode

__all__ = [
    "ActionInput",
    "Outcome",
    "action_mutate",
    "admission",
    "advance",
    "create_mutate",
    "current_card",
    "deadline_passed",
    "outcome_mutate",
    "roles_of",
    "stale_facets",
]


@dataclass(frozen=True, slots=True)
class ActionInput:
    """One action as the service prepared it: ``key`` is the actor's ballot key,
    ``static_roles`` the roles known before the transaction (creator, admin, member,
    system); ``base_version`` ``None`` means "the current version" (server transitions)."""

    action: str
    params: Mapping[str, Any]
    base_version: int | None
    confirm: bool
    uid: str
    key: str
    static_roles: frozenset[Role]
    now: int


def current_card(ctype: CardType[Any], d: Definition, extra: Mapping[str, Any]) -> CardState:
    """The card state in an extension's ``extra``, or the initial state when it was never
    initialised."""
    card = CardState.from_extra(extra)
    if card is None or card.type_tag != ctype.tag:
        return CardState(ctype.tag, ctype.machine.initial, ctype.initial(d), {})
    return card


def roles_of(
    ctype: CardType[Any], d: Definition, card: CardState, uid: str, static: frozenset[Role]
) -> frozenset[Role]:
    """``static`` plus :attr:`Role.LISTED` when the card lists ``uid`` now."""
    if uid and Role.SYSTEM not in static and uid in ctype.listed(d, card.data):
        return static | {Role.LISTED}
    return static


def stale_facets(card: CardState, base_version: int | None, version: int) -> frozenset[str]:
    """The facets changed after ``base_version`` (none when it is the current version)."""
    if base_version is None or base_version >= version:
        return frozenset()
    return frozenset(f for f, v in card.rev.items() if int(v) > base_version)


def deadline_passed(ctype: CardType[Any], d: Definition, now: int) -> bool:
    """Whether the card's deadline passed and ends user actions."""
    deadline = ctype.deadline(d)
    return ctype.deadline_blocks and deadline is not None and now >= deadline[1]


def record_values(state: ExtState) -> dict[str, Mapping[str, Any]]:
    """The records the decision was given, as key -> value."""
    return {key: record.value for key, record in state.records.items()}


def advance(card: CardState, step: Step, version: int) -> CardState:
    """The card after ``step``, each changed facet stamped with ``version``."""
    rev = dict(card.rev)
    if step.status != card.status:
        rev["status"] = version
    for key in set(card.data) | set(step.data):
        if card.data.get(key) != step.data.get(key):
            rev[key] = version
    return CardState(card.type_tag, step.status, dict(step.data), rev)


def _rejected(refusal: Refusal, base: int | None) -> Decision:
    return Decision.rejected(refusal.result, refusal.message, code=refusal.code, base_version=base)


def _applied(
    state: ExtState,
    card: CardState,
    base: int | None,
    max_bytes: int,
    records: Mapping[str, Mapping[str, Any] | None] | None = None,
) -> Decision:
    """Store ``card`` under ``extra["card"]`` and its status as the extension's status.

    Only the size is checked against the extension limit: the shape of a card state is the
    type's (lists for per-member entries, so the key and depth limits are not at stake)."""
    extra = {**state.extra, STATE_KEY: card.to_json()}
    size = len(encode(extra).encode())
    if size > max_bytes:
        detail = f"the card state would be {size} bytes (limit {max_bytes})"
        return Decision.rejected(Result.INVALID, detail, code="too_large", base_version=base)
    fields = replace(state.fields, status=card.status, extra=extra)
    return Decision.applied(fields, base_version=base, records=records)


def _precheck(state: ExtState, inp: ActionInput) -> Refusal | None:
    base = inp.base_version
    if not inp.static_roles & {Role.MEMBER, Role.SYSTEM}:
        return Refusal(Result.FORBIDDEN, "not_member", "you are not a member of this chat")
    if state.fields.revoke:
        return Refusal(Result.INVALID, "revoked", "the card message was revoked")
    if base is not None and base > state.version:
        detail = f"base_version {base} is ahead of the card (version {state.version})"
        return Refusal(Result.INVALID, "bad_base_version", detail)
    return None


def action_mutate(ctype: CardType[Any], d: Definition, inp: ActionInput, max_bytes: int) -> Mutate:
    """The decision of one action (guards, staleness, effect) on the current state."""

    def mutate(state: ExtState) -> Decision:
        refusal = _precheck(state, inp)
        if refusal is not None:
            return _rejected(refusal, inp.base_version)
        card = current_card(ctype, d, state.extra)
        roles = roles_of(ctype, d, card, inp.uid, inp.static_roles)
        mine = record_values(state)
        act = Act(d, card.status, card.data, inp.uid, inp.key, roles, None, inp.now, mine)
        req = Request(
            inp.action,
            inp.params,
            stale_facets(card, inp.base_version, state.version),
            inp.confirm,
            deadline_passed(ctype, d, inp.now),
        )
        outcome = evaluate(ctype.machine, act, req)
        if isinstance(outcome, Refusal):
            return _rejected(outcome, inp.base_version)
        card = advance(card, outcome, state.version + 1)
        return _applied(state, card, inp.base_version, max_bytes, outcome.records)

    return mutate


def create_mutate(ctype: CardType[Any], d: Definition, max_bytes: int) -> Mutate:
    """Initialise the card state (status and data) of a freshly sent card message."""

    def mutate(state: ExtState) -> Decision:
        if state.fields.revoke:
            return _rejected(Refusal(Result.INVALID, "revoked", "the message was revoked"), None)
        if CardState.from_extra(state.extra) is not None:
            refusal = Refusal(Result.INVALID, "exists", "the card is already initialised")
            return _rejected(refusal, None)
        card = CardState(ctype.tag, ctype.machine.initial, ctype.initial(d), {})
        return _applied(state, card, None, max_bytes)

    return mutate


def _act_request(
    ctype: CardType[Any], d: Definition, inp: ActionInput, state: ExtState
) -> tuple[Act[Any], Request]:
    card = current_card(ctype, d, state.extra)
    roles = roles_of(ctype, d, card, inp.uid, inp.static_roles)
    mine = record_values(state)
    act = Act(d, card.status, card.data, inp.uid, inp.key, roles, None, inp.now, mine)
    req = Request(
        inp.action,
        inp.params,
        stale_facets(card, inp.base_version, state.version),
        inp.confirm,
        deadline_passed(ctype, d, inp.now),
    )
    return act, req


def admission(
    ctype: CardType[Any], d: Definition, inp: ActionInput, state: ExtState
) -> Refusal | None:
    """Whether the action may be taken on ``state`` (every guard, no effect): ``None``, or
    why not — what is checked before a business callback is asked."""
    refusal = _precheck(state, inp)
    if refusal is not None:
        return refusal
    admitted = admit(ctype.machine, *_act_request(ctype, d, inp, state))
    return admitted if isinstance(admitted, Refusal) else None


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a business callback decided: the new status, state and document (``None``:
    unchanged), or a refusal."""

    status: str | None
    state: Mapping[str, Any] | None
    doc: Mapping[str, Any] | None
    refusal: Refusal | None = None


def outcome_mutate(
    ctype: CardType[Any],
    d: Definition,
    inp: ActionInput,
    outcome: Outcome,
    expected_version: int,
    max_bytes: int,
) -> Mutate:
    """Apply a business callback's outcome by compare-and-set: only on the version it was
    decided on (``expected_version``); a newer state is never overwritten (409 ``stale``,
    confirmable: the actor may ask again on the new state)."""

    def mutate(state: ExtState) -> Decision:
        refusal = _precheck(state, inp)
        if refusal is None and state.version != expected_version:
            detail = (
                f"the card changed (version {state.version}) while the business server "
                f"decided on version {expected_version}; confirm to ask again"
            )
            refusal = Refusal(Result.CONFLICT, "stale", detail)
        if refusal is None:
            refusal = outcome.refusal
        if refusal is not None:
            return _rejected(refusal, inp.base_version)
        card = current_card(ctype, d, state.extra)
        data = dict(card.data)
        if outcome.state is not None:
            data["state"] = dict(outcome.state)
        if outcome.doc is not None:
            data["doc"] = dict(outcome.doc)
        step = Step(outcome.status or card.status, data)
        card = advance(card, step, state.version + 1)
        return _applied(state, card, inp.base_version, max_bytes)

    return mutate
