"""``approval@1``: approvers approve or reject; the creator may withdraw; it may expire.

Statuses: ``pending`` → ``approved`` | ``rejected`` | ``withdrawn`` | ``expired`` (the last
four terminal). Modes decide when a decision ends the card (``n`` approvers):

========== ======================================= ==========================================
mode       approved when                           rejected when
========== ======================================= ==========================================
single     the first decision is an approval       the first decision is a rejection
all        all ``n`` approved                      anybody rejects
quorum     ``quorum`` approvals                    more than ``n - quorum`` rejections
sequential each approver in order approved         anybody (whose turn it is) rejects
========== ======================================= ==========================================

Definition: ``approvers`` (1–50 uids, in order), ``mode`` (default ``single``), ``quorum``
(quorum mode, default a majority), ``expires_at`` (unix ms, optional).

State ``data``: ``decisions`` — ``[uid, "approve"|"reject", comment, at_ms]`` in order (lists,
not objects: an object per decision would spend the extension's key budget) — and ``step``,
the index of the approver whose turn it is (sequential mode).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from magpie.cards import fields
from magpie.cards.cardtype import CardType, Deadline
from magpie.cards.machine import ActionInfo, Effect, Machine, Transition
from magpie.cards.model import Act, CardState, Common, Definition, Refusal, Role, Step, Viewer
from magpie.domain.ext import Result

__all__ = ["APPROVAL", "ApprovalDef", "ApprovalType"]

PENDING, APPROVED, REJECTED = "pending", "approved", "rejected"
WITHDRAWN, EXPIRED = "withdrawn", "expired"
MODES = ("single", "all", "quorum", "sequential")
#: Most approvers of one approval.
MAX_APPROVERS = 50
_APPROVE, _REJECT = "approve", "reject"


@dataclass(frozen=True, slots=True)
class ApprovalDef(Definition):
    """An approval's definition; ``quorum`` is the approvals needed (``n`` for all and
    sequential, 1 for single)."""

    approvers: tuple[str, ...]
    mode: str
    quorum: int
    expires_at: int


def _comment(_d: ApprovalDef, raw: Mapping[str, Any]) -> str:
    return fields.text(raw, "comment", fields.MAX_COMMENT)


def _decisions(data: Mapping[str, Any]) -> list[list[Any]]:
    return [list(x) for x in data.get("decisions", [])]


def _decided(data: Mapping[str, Any], uid: str) -> list[Any] | None:
    return next((x for x in _decisions(data) if x[0] == uid), None)


def _outcome(d: ApprovalDef, yes: int, no: int) -> str:
    """The status after ``yes`` approvals and ``no`` rejections (see the module table)."""
    n = len(d.approvers)
    if d.mode == "single":
        return APPROVED if yes else REJECTED
    if d.mode == "quorum":
        if yes >= d.quorum:
            return APPROVED
        return REJECTED if no > n - d.quorum else PENDING
    if no:
        return REJECTED
    return APPROVED if yes == n else PENDING


def _verdict(verdict: str) -> Effect:
    def effect(act: Act[ApprovalDef]) -> Step:
        decisions = [*_decisions(act.data), [act.uid, verdict, act.params, act.now]]
        yes = sum(1 for x in decisions if x[1] == _APPROVE)
        step = int(act.data.get("step", 0)) + (verdict == _APPROVE)
        status = _outcome(act.definition, yes, len(decisions) - yes)
        return Step(status, {"decisions": decisions, "step": step})

    return effect


def _to(status: str) -> Effect:
    def effect(act: Act[ApprovalDef]) -> Step:
        return Step(status, act.data)

    return effect


def _withdraw(act: Act[ApprovalDef]) -> Step:
    # The creator or an admin may withdraw: remember which, for the outcome line.
    return Step(WITHDRAWN, {**act.data, "withdrawn_by": act.uid})


def _not_decided(act: Act[ApprovalDef]) -> Refusal | None:
    if _decided(act.data, act.uid) is None:
        return None
    return Refusal(Result.CONFLICT, "already_decided", "you have already decided")


def _my_turn(act: Act[ApprovalDef]) -> Refusal | None:
    d = act.definition
    if d.mode != "sequential":
        return None
    step = int(act.data.get("step", 0))
    if step < len(d.approvers) and d.approvers[step] == act.uid:
        return None
    waiting = d.approvers[step] if step < len(d.approvers) else "nobody"
    return Refusal(Result.CONFLICT, "not_your_turn", f"waiting for {waiting}")


_APPROVERS = frozenset({Role.LISTED})
_OWNER = frozenset({Role.CREATOR, Role.ADMIN})
_DECIDE_CHECKS = (_not_decided, _my_turn)

MACHINE = Machine(
    initial=PENDING,
    terminal=frozenset({APPROVED, REJECTED, WITHDRAWN, EXPIRED}),
    actions={
        _APPROVE: ActionInfo("Approve", "primary", "the approvers"),
        _REJECT: ActionInfo("Reject", "danger", "the approvers"),
        "withdraw": ActionInfo("Withdraw", "danger"),
        "expire": ActionInfo("Expire", "secondary"),
    },
    table={
        (PENDING, _APPROVE): Transition(
            _APPROVERS,
            frozenset({PENDING, APPROVED}),
            _verdict(_APPROVE),
            _comment,
            _DECIDE_CHECKS,
        ),
        (PENDING, _REJECT): Transition(
            _APPROVERS,
            frozenset({PENDING, REJECTED}),
            _verdict(_REJECT),
            _comment,
            _DECIDE_CHECKS,
        ),
        (PENDING, "withdraw"): Transition(_OWNER, frozenset({WITHDRAWN}), _withdraw),
        (PENDING, "expire"): Transition(
            frozenset({Role.SYSTEM}), frozenset({EXPIRED}), _to(EXPIRED)
        ),
    },
)


def _default_quorum(raw: Mapping[str, Any], mode: str, n: int) -> int:
    if mode == "quorum":
        return fields.integer(raw, "quorum", 1, n, n // 2 + 1)
    return 1 if mode == "single" else n


class ApprovalType(CardType[ApprovalDef]):
    """The ``approval@1`` card type."""

    name = "approval"
    schema_version = 1
    machine = MACHINE

    def _parse(self, raw: Mapping[str, Any], common: Common, now: int | None) -> ApprovalDef:
        approvers = fields.uid_list(raw, "approvers", 1, MAX_APPROVERS)
        mode = fields.choice(raw, "mode", MODES, "single")
        quorum = _default_quorum(raw, mode, len(approvers))
        expires_at = fields.deadline(raw, "expires_at", now)
        return ApprovalDef(common, approvers, mode, quorum, expires_at)

    def to_json(self, d: ApprovalDef) -> dict[str, Any]:
        """``approvers``, ``mode``, ``quorum``, ``expires_at``."""
        return {
            "approvers": list(d.approvers),
            "mode": d.mode,
            "quorum": d.quorum,
            "expires_at": d.expires_at,
        }

    def initial(self, d: ApprovalDef) -> dict[str, Any]:
        """No decisions; the first approver's turn."""
        return {"decisions": [], "step": 0}

    def listed(self, d: ApprovalDef, data: Mapping[str, Any]) -> frozenset[str]:
        """The approvers."""
        return frozenset(d.approvers)

    def deadline(self, d: ApprovalDef) -> Deadline | None:
        """``expire`` at ``expires_at``."""
        return ("expire", d.expires_at) if d.expires_at else None

    def view(self, d: ApprovalDef, card: CardState, viewer: Viewer) -> dict[str, Any]:
        """Decisions, counts, who is awaited; ``my_decision``."""
        decisions = _decisions(card.data)
        yes = sum(1 for x in decisions if x[1] == _APPROVE)
        mine = _decided(card.data, viewer.uid)
        return {
            "state": {
                "mode": d.mode,
                "approvers": list(d.approvers),
                "quorum": d.quorum,
                "decisions": [_decision_json(x) for x in decisions],
                "approvals": yes,
                "rejections": len(decisions) - yes,
                "step": int(card.data.get("step", 0)),
                "waiting_for": _waiting_for(d, card),
                "expires_at": d.expires_at,
            },
            "my_decision": None if mine is None else _decision_json(mine),
        }

    def outcome(self, d: ApprovalDef, card: CardState) -> str:
        """``Approved by bob``, ``Rejected by carol: too expensive``, ``Expired`` ..."""
        decisions = _decisions(card.data)
        last = decisions[-1] if decisions else None
        if card.status in (APPROVED, REJECTED) and last is not None:
            note = f": {last[2]}" if last[2] else ""
            return f"{card.status.capitalize()} by {last[0]}{note}"
        if card.status == WITHDRAWN:
            return f"Withdrawn by {card.data.get('withdrawn_by') or d.common.creator}"
        return "Expired" if card.status == EXPIRED else ""

    def fallback(self, d: ApprovalDef) -> str:
        """``[Approval] <title>``."""
        return f"[Approval] {d.common.title} — open Magpie to approve or reject"


def _decision_json(x: list[Any]) -> dict[str, Any]:
    return {"uid": x[0], "decision": x[1], "comment": x[2], "at": x[3]}


def _waiting_for(d: ApprovalDef, card: CardState) -> list[str]:
    if card.status != PENDING:
        return []
    if d.mode == "sequential":
        step = int(card.data.get("step", 0))
        return list(d.approvers[step : step + 1])
    done = {x[0] for x in _decisions(card.data)}
    return [uid for uid in d.approvers if uid not in done]


APPROVAL = ApprovalType()
