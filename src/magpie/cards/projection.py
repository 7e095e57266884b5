"""What one viewer sees of a card: the projection, and the operation log for users.

A projection is computed from the definition, the stored card state and the viewer; it is
the only form in which card state reaches a client (``GET /cards/{id}``, action answers,
``/message/extra/sync`` rows and ``message_extra`` of ``/channel/messagesync`` — where it
replaces the stored state under ``extra["card"]``). So what a type keeps private — ballots,
hidden tallies, other members' survey answers — is private by construction: only the type's
:meth:`~magpie.cards.cardtype.CardType.view` decides what leaves the server. The shapes are
documented in ``docs/cards.md``.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from magpie.cards.cardtype import CardType
from magpie.cards.decide import deadline_passed, roles_of
from magpie.cards.machine import availability
from magpie.cards.model import Act, CardState, Definition, Role, Viewer
from magpie.domain.ext import ExtState, OpRecord, Result
from magpie.ext.hlc import physical_ms

__all__ = ["CARD_OP_PREFIX", "action_of", "project", "render_op"]

#: Operation-log ``operation`` of card actions: ``card.<action>`` (``card.create`` too).
CARD_OP_PREFIX = "card."


def _actions(
    ctype: CardType[Any], act: Act[Any], passed: bool
) -> tuple[list[dict[str, str]], dict[str, str]]:
    """The actions the viewer may take now (button descriptors), and why not the others."""
    available: list[dict[str, str]] = []
    unavailable: dict[str, str] = {}
    for name in ctype.machine.user_actions():
        refusal = availability(ctype.machine, act, name, deadline_passed=passed)
        info = ctype.machine.actions[name]
        if refusal is None:
            available.append({"action": name, "label": info.label, "style": info.style})
        else:
            unavailable[name] = refusal.message
    return available, unavailable


def _reason(ctype: CardType[Any], card: CardState, roles: frozenset[Role], passed: bool) -> str:
    """Why the viewer can do nothing, when that is so (the first action's reason, else)."""
    if card.status in ctype.machine.terminal:
        return f"the card is {card.status}"
    if passed:
        return "the card's deadline has passed"
    if Role.MEMBER not in roles:
        return "you are not a member of this chat"
    return ""


def _meta(ctype: CardType[Any], d: Definition, message_id: int) -> dict[str, Any]:
    c = d.common
    deadline = ctype.deadline(d)
    return {
        "message_id": message_id,
        "message_id_str": str(message_id),
        "type": ctype.name,
        "schema_version": ctype.schema_version,
        "type_tag": ctype.tag,
        "title": c.title,
        "description": c.description,
        "creator": c.creator,
        "admins": list(c.admins),
        "deadline": None if deadline is None else {"action": deadline[0], "at": deadline[1]},
        "definition": ctype.payload_card(d),
    }


def _versions(ext: ExtState | None) -> dict[str, Any]:
    if ext is None:
        return {"version": 0, "extra_version": 0, "updated_at": 0, "updated_by": {"uid": ""}}
    return {
        "version": ext.version,
        "extra_version": ext.extra_version,
        "updated_at": physical_ms(ext.updated_at),
        "updated_by": {"uid": ext.updated_by.uid},
    }


def project(
    ctype: CardType[Any],
    d: Definition,
    card: CardState,
    ext: ExtState | None,
    message_id: int,
    viewer: Viewer,
) -> dict[str, Any]:
    """The projection of ``card`` for ``viewer`` (see ``docs/cards.md`` for the shape)."""
    roles = roles_of(ctype, d, card, viewer.uid, viewer.roles)
    act = Act(
        d, card.status, card.data, viewer.uid, viewer.key, roles, None, viewer.now, viewer.records
    )
    passed = deadline_passed(ctype, d, viewer.now)
    actions, unavailable = _actions(ctype, act, passed)
    reason = ""
    if not actions:
        reason = _reason(ctype, card, roles, passed) or next(iter(unavailable.values()), "")
    seen = replace(viewer, roles=roles)
    return {
        **_meta(ctype, d, message_id),
        **_versions(ext),
        "status": card.status,
        "terminal": card.status in ctype.machine.terminal,
        "deadline_passed": passed,
        "can_act": bool(actions),
        "actions": actions,
        "unavailable": unavailable,
        "unavailable_reason": reason,
        "outcome": ctype.outcome(d, card),
        "document": None,
        **ctype.view(d, card, seen),
    }


def action_of(op: OpRecord) -> str:
    """The card action an op-log row records (``approve``), or its raw operation."""
    return op.operation.removeprefix(CARD_OP_PREFIX)


def render_op(op: OpRecord) -> dict[str, Any]:
    """One operation-log row as users see it (``GET /cards/{id}/ops``).

    The row shows the action and its *logged* parameters only: the service never logs
    private parameters nor the actor of an anonymous ballot, and raw patches of non-card
    changes are not shown at all. The internal action id is omitted too."""
    card_op = op.operation.startswith(CARD_OP_PREFIX)
    params = op.patch.get("params") if card_op else None
    uid = op.actor.uid
    return {
        "op_id": op.op_id,
        "message_id": op.message_id,
        "message_id_str": str(op.message_id),
        "action": action_of(op),
        "operation": action_of(op),
        "actor": {"uid": uid},
        "actor_uid": uid,
        "anonymous": card_op and not uid,
        "params": dict(params) if isinstance(params, dict) else None,
        "base_version": op.base_version,
        "status_before": op.status_before,
        "status_after": op.status_after,
        "version_after": op.version_after,
        "result": op.result.value,
        "code": op.code,
        "detail": "" if op.result is Result.APPLIED else op.detail.partition(": ")[2],
        "created_at": op.created_at,
    }
