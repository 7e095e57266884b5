"""Helpers for the card tests: a pure simulator of the store, and HTTP helpers for a node."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field, replace
from typing import Any

import httpx

from magpie.app import Node
from magpie.cards import default_types
from magpie.cards.cardtype import CardType
from magpie.cards.decide import ActionInput, action_mutate, create_mutate
from magpie.cards.model import SYSTEM_UID, CardState, Definition, Role
from magpie.core.auth import hash_token
from magpie.domain.ext import Decision, ExtRecord, ExtState, Result
from magpie.store.interface import TokenRow
from tests.support.nodes import time_scale

NOW = 1_800_000_000_000
MAX_BYTES = 64 * 1024
GROUP = 2
TYPES = default_types()


def now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass
class Sim:
    """One card's extension, changed only by the card service's pure decisions, in order —
    what the store does, minus SQL. ``members`` are the channel's members."""

    ctype: CardType[Any]
    definition: Definition
    members: set[str]
    state: ExtState = field(default_factory=lambda: ExtState(1, "g", GROUP, 1))
    log: list[Decision] = field(default_factory=list)
    records: dict[str, ExtRecord] = field(default_factory=dict)

    @classmethod
    def of(cls, tag: str, creator: str, members: set[str], **card: Any) -> Sim:
        ctype = TYPES.get(tag)
        assert ctype is not None
        sim = cls(ctype, ctype.parse({"title": "t", **card}, creator, NOW), members)
        sim._apply(create_mutate(sim.ctype, sim.definition, MAX_BYTES)(sim.state))
        return sim

    @property
    def card(self) -> CardState:
        card = CardState.from_extra(self.state.extra)
        assert card is not None
        return card

    def roles(self, uid: str) -> frozenset[Role]:
        if uid == SYSTEM_UID:
            return frozenset({Role.SYSTEM})
        c = self.definition.common
        roles = {Role.MEMBER} if uid in self.members else set()
        roles |= {Role.CREATOR} if uid == c.creator else set()
        roles |= {Role.ADMIN} if uid in c.admins else set()
        return frozenset(roles)

    def act(
        self,
        uid: str,
        action: str,
        params: dict[str, Any] | None = None,
        *,
        base: int | None = -1,
        confirm: bool = False,
        now: int = NOW,
        key: str | None = None,
    ) -> Decision:
        """Decide and (when applied) apply; ``base`` -1: the current version."""
        base_version = self.state.version if base == -1 else base
        if uid == SYSTEM_UID:
            base_version = None
        inp = ActionInput(
            action, params or {}, base_version, confirm, uid, key or uid, self.roles(uid), now
        )
        reads = self.ctype.reads(self.definition, inp.key)
        seen = {k: self.records[k] for k in reads if k in self.records}
        mutate = action_mutate(self.ctype, self.definition, inp, MAX_BYTES)
        decision = mutate(replace(self.state, records=seen))
        self._apply(decision)
        return decision

    def _apply(self, decision: Decision) -> None:
        self.log.append(decision)
        if decision.result is Result.APPLIED and decision.fields is not None:
            version = self.state.version + 1
            self.state = replace(self.state, fields=decision.fields, version=version)
            for key, value in decision.records.items():
                if value is None:
                    self.records.pop(key, None)
                else:
                    self.records[key] = ExtRecord(self.state.message_id, key, value, version)


def outcome(decision: Decision, sim: Sim) -> str:
    """``status`` of an applied decision, ``!code`` of a refusal."""
    if decision.result is Result.APPLIED:
        return sim.card.status
    return "!" + decision.code


# --- against a node --------------------------------------------------------------------------


async def add_tokens(node: Node, uids: list[str]) -> dict[str, str]:
    """Register a token ``tok-<uid>`` (web device) for each uid straight in the store."""
    for uid in uids:
        await node.store.set_token(TokenRow(uid, 1, hash_token(f"tok-{uid}"), 0))
    return {uid: f"tok-{uid}" for uid in uids}


def user(node: Node, uid: str) -> httpx.AsyncClient:
    """A client with ``uid``'s token (``tok-<uid>``)."""
    return httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{node.api_port}",
        headers={"Authorization": f"Bearer tok-{uid}"},
        timeout=20 * time_scale(),
    )


def bearer(uid: str) -> dict[str, str]:
    return {"Authorization": f"Bearer tok-{uid}"}


async def create(
    http: httpx.AsyncClient, channel: str = "g1", kind: int = GROUP, **card: Any
) -> dict[str, Any]:
    """``POST /cards``; the creator's projection."""
    body: dict[str, Any] = {"channel_id": channel, "channel_type": kind, "card": card}
    r = await http.post("/cards", json=body)
    assert r.status_code == 200, r.text
    out: dict[str, Any] = r.json()
    return out


async def act(
    http: httpx.AsyncClient,
    mid: int | str,
    action: str,
    params: dict[str, Any] | None = None,
    *,
    base: int,
    action_id: str | None = None,
    confirm: bool = False,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    """``POST /cards/{mid}/actions``."""
    body: dict[str, Any] = {
        "action": action,
        "params": params or {},
        "action_id": action_id or uuid.uuid4().hex,
        "base_version": base,
    }
    if confirm:
        body["confirm"] = True
    return await http.post(f"/cards/{mid}/actions", json=body, headers=headers)


async def sync_rows(http: httpx.AsyncClient, channel: str = "g1", after: int = 0) -> list[Any]:
    """``/message/extra/sync`` rows for the caller."""
    body = {"channel_id": channel, "channel_type": GROUP, "extra_version": after, "limit": 1000}
    r = await http.post("/message/extra/sync", json=body)
    assert r.status_code == 200, r.text
    rows: list[Any] = r.json()
    return rows
