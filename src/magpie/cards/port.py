"""The card service's view of the IM: :class:`ImPort`, what a separate business server can do.

The card service never imports the IM core or the store (import-linter enforces it). It
sends messages, changes extensions, reads messages and extensions, checks membership, reads
the operation log, raises business webhooks, keeps its deadlines and gets its secret through
this one interface. Its implementation
in a node is ``magpie.cards_adapter.InProcessPort`` (wired by ``magpie.app``): direct calls of
the send flow and :class:`~magpie.ext.service.ExtService`; ``update`` hands the pure
``mutate`` to the store, which runs it inside the change's transaction. A business server on
another machine would implement it over the business HTTP API (read, decide, compare-and-set
with ``/message/extra/update``).

What must not be lost with a node — the webhook events of a change, a card's deadline — is
committed *with* the change (``update``'s ``events`` and ``deadline``), so a crash can come
only before or after, never between. Deadlines are the IM's durable jobs: every node's
timer may fire one, exactly one of them does (a claim), and firing twice after a node's
death would change nothing anyway (the deadline's action id is deterministic). The secret
is created once for the whole IM, so every node keys pseudonyms and action ids alike.

Channel ids here are *storage* ids: a person channel is ``a@b`` (spec §4) — the value a
message or extension row carries for the business server.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from magpie.domain.ext import Actor, ExtRecord, ExtState, Mutate, OpRecord, UpdateResult

__all__ = [
    "CallbackReply",
    "Deadline",
    "EventsOf",
    "ImMessage",
    "ImPort",
    "Outgoing",
    "Sent",
]

#: The business events (webhooks) of an applied change, as ``(event, JSON data)`` pairs,
#: computed from the change's result inside its transaction. Pure: it may run again.
EventsOf = Callable[[UpdateResult], Sequence[tuple[str, Mapping[str, Any]]]]


@dataclass(frozen=True, slots=True)
class Deadline:
    """A card's system action due at ``at_ms`` (unix ms)."""

    message_id: int
    action: str
    at_ms: int


@dataclass(frozen=True, slots=True)
class ImMessage:
    """A committed channel-log message as the business server sees it."""

    message_id: int
    message_seq: int
    channel_id: str  # storage id
    channel_type: int
    from_uid: str
    payload: bytes
    timestamp: int


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A message to send on behalf of ``from_uid``; ``channel_id`` as the sender sees it
    (the peer uid for a person channel). ``client_msg_no`` makes the send idempotent."""

    from_uid: str
    channel_id: str
    channel_type: int
    payload: bytes
    client_msg_no: str


@dataclass(frozen=True, slots=True)
class Sent:
    """A sent (or, on a repeated ``client_msg_no``, the original) message."""

    message_id: int
    message_seq: int


@dataclass(frozen=True, slots=True)
class CallbackReply:
    """One try of a business callback: the HTTP status and body, or ``error`` (``timeout``,
    ``transport: ...``) with status 0."""

    status: int
    body: bytes
    error: str = ""


class ImPort(Protocol):
    """What the card service needs from the IM (see the module docstring)."""

    async def send(self, message: Outgoing) -> Sent:
        """Send through the send flow as the business API; a refusal raises an
        :class:`~magpie.errors.ApiError`."""
        ...

    async def message(self, message_id: int) -> ImMessage | None:
        """A channel-log message, or ``None``."""
        ...

    async def extension(self, message_id: int) -> ExtState | None:
        """The message's extension, if it was ever changed."""
        ...

    async def update(
        self,
        message_id: int,
        *,
        mutate: Mutate,
        action_id: str,
        actor: Actor,
        operation: str,
        patch: Mapping[str, Any],
        important: bool,
        events: EventsOf | None = None,
        deadline: Deadline | None = None,
        reads: Sequence[str] = (),
    ) -> UpdateResult:
        """Decide and record one change with ``mutate`` (a pure function of the current
        state); idempotent by ``action_id`` (a repeat returns the original result). 404
        :class:`~magpie.errors.NotFound` when there is no such channel-log message. When the
        change applies, its ``events`` (raised as webhooks, if the IM sends any) and its
        ``deadline`` are committed with it. ``mutate`` sees the message's records of
        ``reads`` (``state.records``); the records its decision writes commit with it."""
        ...

    async def records(self, message_id: int, keys: Sequence[str]) -> dict[str, ExtRecord]:
        """The message's records of ``keys`` that exist, by key."""
        ...

    async def list_records(
        self, message_id: int, prefix: str, after_key: str, limit: int
    ) -> list[ExtRecord]:
        """The message's records whose key starts with ``prefix``, above ``after_key``,
        ascending by key, at most ``limit``."""
        ...

    async def is_member(self, channel_id: str, channel_type: int, uid: str) -> bool:
        """Whether ``uid`` belongs to the channel (storage id; a person channel's parties)."""
        ...

    async def ops(self, message_id: int, after_op_id: int, limit: int) -> list[OpRecord]:
        """The message's operation log after ``after_op_id``, oldest first."""
        ...

    async def schedule(self, deadline: Deadline) -> None:
        """Keep ``deadline`` until it fires (idempotent: one per message and action)."""
        ...

    async def unschedule(self, message_id: int, action: str) -> None:
        """Forget the deadline of ``action`` on the message (the card ended before)."""
        ...

    async def deadlines(self) -> list[Deadline]:
        """The pending deadlines, earliest first (diagnostics)."""
        ...

    async def secret(self, name: str, initial: bytes | None = None) -> bytes:
        """The service secret ``name``, created once for the whole IM (every node gets the
        same): ``initial`` when given and none exists yet, else 32 random bytes."""
        ...

    async def stored_type(self, name: str, version: int) -> Mapping[str, Any] | None:
        """The registration of the card type ``name@version``, if any."""
        ...

    async def store_type(
        self, name: str, version: int, spec: Mapping[str, Any]
    ) -> Mapping[str, Any]:
        """Register ``name@version`` with ``spec`` unless it is registered: the stored spec
        (the first one wins, for the whole IM)."""
        ...

    async def stored_types(self) -> list[Mapping[str, Any]]:
        """Every registered type's spec, by name and version."""
        ...

    async def post(self, url: str, body: bytes, event_id: str, timeout: float) -> CallbackReply:
        """One signed POST of a business callback (the webhook headers and signature)."""
        ...

    async def tell(self, uid: str, payload: bytes) -> bool:
        """An online-only CMD to every device of ``uid`` and nobody else (ephemeral
        answers); false when refused."""
        ...
