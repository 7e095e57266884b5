"""The card service: create cards, act on them, project them per viewer, fire deadlines.

Every state change goes through :meth:`ImPort.update <magpie.cards.port.ImPort.update>` with
a pure decision (:mod:`magpie.cards.decide`), so it is atomic, versioned, idempotent by action
id, logged (applied or not) and pushed with a ``syncMessageExtra`` CMD. Around it the service
does what needs I/O or secrets and therefore cannot happen inside the decision:

* **who**: the creator/admin roles come from the definition, membership from the IM
  (checked before the change; listed roles are derived from the state inside it);
* **idempotency namespaces**: the extension's action id is ``HMAC(secret, uid, action_id)``,
  so one user can never replay (or read the outcome of) another user's action id, and the
  operation log reveals nothing about who sent it;
* **anonymity**: on an anonymous vote the ballot key is ``HMAC(secret, message_id, uid)``,
  the ballot's op-log row and extension ``updated_by`` have no actor, and its choice is not
  logged — no voter id is stored anywhere the IM serves;
* **with the change**: the business webhook ``card.action`` (every applied action, the
  server's own transitions included) and, at creation, the card's deadline are committed in
  the change's transaction (:meth:`ImPort.update <magpie.cards.port.ImPort.update>`'s
  ``events`` and ``deadline``), so neither is lost to a crash; a deadline is cancelled when
  the card reaches a terminal status;
* **deadlines** are the IM's durable jobs: each node's timer claims due ones and calls
  :meth:`CardService.fire` — one node per deadline, and a second firing (after a node died
  mid-way) changes nothing, its action id being deterministic;
* **the secret** keying pseudonyms and action ids is the IM's, created once for every node
  (:meth:`ImPort.secret <magpie.cards.port.ImPort.secret>`); a ``cards.db`` file of older
  versions is imported once at start (:mod:`magpie.cards.legacy`).

Refusals become :class:`~magpie.errors.ApiError` with the viewer's current projection:
409 ``conflict`` (``winner``, ``at``, ``current``, ``can_confirm``, ``reason``), 403
``forbidden``, 400 ``invalid``, 413 ``too_large``.

**Outsiders** (users who are not members of the card's chat) learn nothing: viewing, reading
the history or acting is answered 404 ``not_found`` exactly as for a message that is no card
(so the answer does not even tell that the card exists), without any card data; an action of
theirs is refused *before* the extension transaction, so it leaves no row in the operation log
the members read — only an audit line in the node's log (logger ``magpie.cards.service``).
The business key acting for a non-member uid is told 403 ``not_member``, again without data.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from magpie.cards.callback import CallbackConfig, ask, check_answer
from magpie.cards.cardtype import CardType, CardTypes
from magpie.cards.decide import (
    ActionInput,
    Outcome,
    action_mutate,
    admission,
    create_mutate,
    current_card,
    outcome_mutate,
)
from magpie.cards.legacy import SECRET_NAME, import_legacy
from magpie.cards.model import (
    CARD_CONTENT_TYPE,
    SYSTEM_UID,
    CardInvalid,
    CardState,
    Definition,
    Refusal,
    Role,
    Viewer,
)
from magpie.cards.port import Deadline, EventsOf, ImMessage, ImPort, Outgoing
from magpie.cards.projection import CARD_OP_PREFIX, project, render_op
from magpie.cards.registered import CALLBACK, RegisteredType, parse_registration
from magpie.domain.channels import PERSON
from magpie.domain.content import cmd_payload, decode_content
from magpie.domain.ext import (
    Actor,
    Decision,
    ExtState,
    Mutate,
    OpRecord,
    Result,
    UpdateResult,
)
from magpie.errors import ApiError, Conflict, Forbidden, MagpieError, NotFound, PayloadTooLarge
from magpie.ext.patch import encode
from magpie.ext.rejection import rejection_error

__all__ = [
    "CARD_ACTION_EVENT",
    "NOT_MEMBER",
    "ActResult",
    "ActionRequest",
    "CardService",
    "CreateRequest",
    "Loaded",
]

log = logging.getLogger(__name__)

#: The reason code of a refusal because the actor is not a member of the card's chat.
NOT_MEMBER = "not_member"
#: The business webhook raised after every applied card action.
CARD_ACTION_EVENT = "card.action"
#: Action id of the initialisation of a card's state (one per message).
CREATE_ACTION_ID = "card.create"
#: Definitions kept in memory (messages are immutable, so entries never go stale).
DEFINITION_CACHE = 4096
#: Hex characters of an anonymous ballot key (80 bits: no collision among realistic voters).
PSEUDONYM_HEX = 20
#: The CMD of an ephemeral answer (to the actor's own devices only).
EPHEMERAL_CMD = "cardEphemeral"
#: A registered type's tag.
_TAG = re.compile(r"[a-z][a-z0-9_]{1,31}@[1-9][0-9]{0,3}")
#: Largest action ``params`` (compact JSON bytes), and the most of them the log keeps.
MAX_PARAMS = 64 * 1024
MAX_LOGGED_PARAMS = 8 * 1024


@dataclass(frozen=True, slots=True)
class Loaded:
    """A card message with its type and parsed definition."""

    message: ImMessage
    ctype: CardType[Any]
    definition: Definition


@dataclass(frozen=True, slots=True)
class CreateRequest:
    """``POST /cards``: ``channel_id`` as the creator sees it (the peer for person chats)."""

    creator: str
    channel_id: str
    channel_type: int
    card: Mapping[str, Any]
    content: str
    client_msg_no: str
    device: str = ""


@dataclass(frozen=True, slots=True)
class ActionRequest:
    """``POST /cards/{message_id}/actions`` by ``uid``."""

    message_id: int
    uid: str
    action: str
    params: Mapping[str, Any]
    action_id: str
    base_version: int
    confirm: bool = False
    device: str = ""
    #: The business key acts for ``uid`` (a refusal may then say why).
    business: bool = False


@dataclass(frozen=True, slots=True)
class ActResult:
    """An applied action: the actor's projection, whether it was a repeat, the log row
    (``None`` when a business callback changed nothing: nothing was written), and the
    ephemeral answer for the actor alone, if any."""

    view: dict[str, Any]
    duplicate: bool
    op: OpRecord | None
    ephemeral: dict[str, Any] | None = None

    @property
    def changed(self) -> bool:
        """Whether the action changed the card."""
        return self.op is not None


#: The action parameter that names people who get work (task ``reassign``).
_PEOPLE_PARAM = "assignees"


def _card_payload(payload: bytes) -> Mapping[str, Any] | None:
    content = decode_content(payload)
    if content is None or content.get("type") != CARD_CONTENT_TYPE:
        return None
    card = content.get("card")
    return card if isinstance(card, Mapping) and isinstance(card.get("type"), str) else None


def _check_params(params: Mapping[str, Any]) -> None:
    """400 unless ``params`` is plain JSON; 413 above :data:`MAX_PARAMS` bytes."""
    try:
        size = len(encode(params).encode())
    except (TypeError, ValueError):
        raise CardInvalid("params must be a JSON object", field="params") from None
    if size > MAX_PARAMS:
        raise PayloadTooLarge(f"params above {MAX_PARAMS} bytes", field="params")


def _hidden() -> NotFound:
    """What a card looks like to somebody who may not see it: as if there were none."""
    return NotFound("no such card", field="message_id")


def _winner(op: OpRecord | None) -> dict[str, Any] | None:
    if op is None:
        return None
    action = op.operation.removeprefix(CARD_OP_PREFIX)
    return {"uid": op.actor.uid, "action": action, "at": op.created_at, "version": op.version_after}


def _ignore_action(_: str, __: str) -> None:
    """The default ``on_action``: nobody counts."""


class CardService:
    """Interactive cards over an :class:`~magpie.cards.port.ImPort` (module docstring).

    ``max_state_bytes`` bounds a message's ``extra`` with the card state (the extension
    limit); ``clock_ms`` is wall time; ``legacy_db`` is where an older version kept the
    service's own SQLite file (imported once at start when it exists)."""

    def __init__(
        self,
        port: ImPort,
        types: CardTypes,
        *,
        clock_ms: Callable[[], int],
        max_state_bytes: int,
        on_action: Callable[[str, str], None] | None = None,
        legacy_db: Path | None = None,
        callback: CallbackConfig | None = None,
    ) -> None:
        self._port = port
        self._callback = callback if callback is not None else CallbackConfig()
        self._registered: dict[str, RegisteredType] = {}
        self._on_action = on_action if on_action is not None else _ignore_action
        self._types = types
        self._clock_ms = clock_ms
        self._max_bytes = max_state_bytes
        self._legacy_db = legacy_db
        self._secret = b""
        self._cache: OrderedDict[int, Loaded | None] = OrderedDict()
        self._previews: OrderedDict[int, tuple[int, Mapping[str, Any]]] = OrderedDict()

    async def start(self) -> None:
        """Import an old ``cards.db`` (once), then fetch the IM-wide secret."""
        if self._legacy_db is not None:
            await import_legacy(self._port, self._legacy_db)
        self._secret = await self._port.secret(SECRET_NAME)

    async def stop(self) -> None:
        """Nothing to release: deadlines and the secret live in the IM."""

    async def deadlines(self) -> dict[tuple[int, str], int]:
        """The pending deadlines, ``(message_id, action) -> at_ms`` (diagnostics, tests)."""
        return {(d.message_id, d.action): d.at_ms for d in await self._port.deadlines()}

    # keys ----------------------------------------------------------------------------------

    def _mac(self, *parts: str) -> str:
        msg = "\0".join(parts).encode()
        return hmac.new(self._secret, msg, hashlib.sha256).hexdigest()

    def _key(self, loaded: Loaded, uid: str) -> str:
        """The viewer's ballot key: a per-card pseudonym on anonymous cards, else the uid."""
        if uid and loaded.ctype.anonymous(loaded.definition):
            return self._mac("ballot", str(loaded.message.message_id), uid)[:PSEUDONYM_HEX]
        return uid

    def _action_id(self, uid: str, action_id: str) -> str:
        return self._mac("action", uid, action_id)[:32]

    # loading -------------------------------------------------------------------------------

    # types ---------------------------------------------------------------------------------

    def _lookup(self, tag: str) -> CardType[Any] | None:
        """A built-in type, or a registered one this node has loaded."""
        return self._types.get(tag) or self._registered.get(tag)

    async def _resolve(self, tag: str) -> CardType[Any] | None:
        """The type of ``tag``: built in, or registered (loaded from the IM once)."""
        found = self._lookup(tag)
        if found is not None or not _TAG.fullmatch(tag):
            return found
        name, _, version = tag.partition("@")
        stored = await self._port.stored_type(name, int(version))
        if stored is None:
            return None
        try:
            ctype = RegisteredType(parse_registration(stored))
        except ApiError as exc:  # stored by a version with other rules: not usable here
            log.warning("card type %s is stored but not usable: %s", tag, exc.message)
            return None
        self._registered[tag] = ctype
        return ctype

    async def register_type(self, raw: Mapping[str, Any]) -> dict[str, Any]:
        """Register a business-defined card type (validated; immutable once registered:
        the same body again is a no-op, another body for the same tag 409 ``type_exists``)."""
        spec = parse_registration(raw)
        before = await self._port.stored_type(spec.name, spec.version)
        stored = before
        if stored is None:
            stored = await self._port.store_type(spec.name, spec.version, spec.body)
        if stored != spec.body:
            raise Conflict(
                f"{spec.tag} is registered with another definition; register a new version",
                field="version",
                reason="type_exists",
            )
        self._registered.setdefault(spec.tag, RegisteredType(spec))
        return {"tag": spec.tag, "created": before is None, "type": spec.body}

    async def card_types(self) -> list[dict[str, Any]]:
        """Every registered type (its tag and registration), by name and version."""
        out = []
        for spec in await self._port.stored_types():
            out.append({"tag": f"{spec['name']}@{spec['version']}", "type": dict(spec)})
        return out

    async def card_type(self, tag: str) -> dict[str, Any]:
        """A registered type's registration (404 when unknown)."""
        ctype = await self._resolve(tag)
        if not isinstance(ctype, RegisteredType):
            raise NotFound(f"no registered card type {tag[:80]!r}", field="tag")
        return {"tag": ctype.tag, "created": False, "type": ctype.spec.body}

    def _parse(self, message: ImMessage) -> Loaded | None:
        raw = _card_payload(message.payload)
        ctype = None if raw is None else self._lookup(str(raw["type"]))
        if raw is None or ctype is None or message.message_seq <= 0:
            return None
        try:
            definition = ctype.parse(raw, message.from_uid, None)
        except CardInvalid:
            return None
        return Loaded(message, ctype, definition)

    async def load(self, message_id: int) -> Loaded | None:
        """The card in message ``message_id``, or ``None`` (no message, not a card)."""
        if message_id in self._cache:
            self._cache.move_to_end(message_id)
            return self._cache[message_id]
        message = await self._port.message(message_id)
        if message is None:
            return None
        raw = _card_payload(message.payload)
        if raw is not None:
            await self._resolve(str(raw["type"]))
        loaded = self._parse(message)
        self._cache[message_id] = loaded
        if len(self._cache) > DEFINITION_CACHE:
            self._cache.popitem(last=False)
        return loaded

    async def _require(self, message_id: int) -> Loaded:
        loaded = await self.load(message_id)
        if loaded is None:
            raise _hidden()
        return loaded

    async def _is_member(self, loaded: Loaded, uid: str) -> bool:
        m = loaded.message
        return bool(uid) and await self._port.is_member(m.channel_id, m.channel_type, uid)

    async def _roles(self, loaded: Loaded, uid: str, member: bool | None) -> frozenset[Role]:
        """The static roles of ``uid``; ``member`` ``None``: ask the IM."""
        common = loaded.definition.common
        if member is None:
            member = await self._is_member(loaded, uid)
        roles = {Role.MEMBER} if member else set()
        if uid and uid == common.creator:
            roles.add(Role.CREATOR)
        if uid and uid in common.admins:
            roles.add(Role.ADMIN)
        return frozenset(roles)

    # projections ---------------------------------------------------------------------------

    async def _project(
        self, loaded: Loaded, ext: ExtState | None, viewer: Viewer
    ) -> dict[str, Any]:
        """The projection of ``ext`` for ``viewer``, with the viewer's own records and the
        card's shared record previews read first."""
        ctype, d = loaded.ctype, loaded.definition
        card = current_card(ctype, d, {} if ext is None else ext.extra)
        message_id = loaded.message.message_id
        keys = ctype.reads(d, viewer.key) if viewer.key else ()
        if keys:
            found = await self._port.records(message_id, keys)
            viewer = replace(viewer, records={k: r.value for k, r in found.items()})
        wanted = ctype.lists(d, card)
        if wanted:
            version = 0 if ext is None else ext.version
            viewer = replace(viewer, lists=await self._lists(message_id, version, wanted))
        return project(ctype, d, card, ext, message_id, viewer)

    async def _lists(
        self, message_id: int, version: int, wanted: Mapping[str, tuple[str, int]]
    ) -> Mapping[str, list[tuple[str, Mapping[str, Any]]]]:
        """The record previews of a card, read once per version (every member's projection
        after a change shows the same previews)."""
        cached = self._previews.get(message_id)
        if cached is not None and cached[0] == version and cached[1].keys() == wanted.keys():
            self._previews.move_to_end(message_id)
            return cached[1]
        out: dict[str, list[tuple[str, Mapping[str, Any]]]] = {}
        for name, (prefix, limit) in wanted.items():
            rows = await self._port.list_records(message_id, prefix, "", limit)
            out[name] = [(r.key, r.value) for r in rows]
        self._previews[message_id] = (version, out)
        if len(self._previews) > DEFINITION_CACHE:
            self._previews.popitem(last=False)
        return out

    async def _viewer(self, loaded: Loaded, uid: str, member: bool | None) -> Viewer:
        roles = await self._roles(loaded, uid, member)
        return Viewer(uid, self._key(loaded, uid), roles, self._clock_ms())

    async def view(self, message_id: int, uid: str, *, business: bool = False) -> dict[str, Any]:
        """The card as ``uid`` sees it; a user must be a member of its chat (403)."""
        loaded = await self._require(message_id)
        member = await self._is_member(loaded, uid)
        if not member and not business:
            raise _hidden()
        ext = await self._port.extension(message_id)
        return await self._project(loaded, ext, await self._viewer(loaded, uid, member))

    async def project_state(
        self, state: ExtState, uid: str, member: bool | None
    ) -> dict[str, Any] | None:
        """The projection replacing the stored card state in a sync row, or ``None`` when
        the row is not a card's. ``member``: whether ``uid`` was found a member (``None``:
        ask)."""
        if CardState.from_extra(state.extra) is None:
            return None
        loaded = await self.load(state.message_id)
        if loaded is None:
            return None
        return await self._project(loaded, state, await self._viewer(loaded, uid, member))

    async def ops(
        self, message_id: int, uid: str, after_op_id: int, limit: int, *, business: bool = False
    ) -> list[dict[str, Any]]:
        """The card's operation log for its history panel (members only)."""
        loaded = await self._require(message_id)
        if not business and not await self._is_member(loaded, uid):
            raise _hidden()
        return [render_op(op) for op in await self._port.ops(message_id, after_op_id, limit)]

    async def records(
        self, message_id: int, uid: str, after: str, limit: int, *, business: bool = False
    ) -> dict[str, Any]:
        """A page of the card's per-user records (ballots, responses) as ``uid`` may see
        them, ascending by uid after ``after`` (members only; the business key sees what an
        admin sees). ``visible`` false (and no rows) when the type lists none or hides them
        from this viewer now; ``next`` is the cursor of the following page, ``None`` at the
        end."""
        loaded = await self._require(message_id)
        member = await self._is_member(loaded, uid)
        if not member and not business:
            raise _hidden()
        ctype, d = loaded.ctype, loaded.definition
        ext = await self._port.extension(message_id)
        card = current_card(ctype, d, {} if ext is None else ext.extra)
        viewer = await self._viewer(loaded, uid, member)
        if business:
            viewer = replace(viewer, roles=viewer.roles | {Role.ADMIN, Role.MEMBER})
        prefix = ctype.record_prefix(d)
        page: dict[str, Any] = {
            "message_id": message_id,
            "message_id_str": str(message_id),
            "version": 0 if ext is None else ext.version,
            "visible": False,
            "records": [],
            "next": None,
        }
        if prefix is None or not ctype.records_visible(d, card, viewer):
            return page
        rows = await self._port.list_records(message_id, prefix, prefix + after, limit + 1)
        shown = [
            (row.key, ctype.record_view(d, card, viewer, row.key, row.value))
            for row in rows[:limit]
        ]
        nxt = rows[limit - 1].key.removeprefix(prefix) if len(rows) > limit else None
        records = [view for _, view in shown if view is not None]
        return {**page, "visible": True, "records": records, "next": nxt}

    # creating ------------------------------------------------------------------------------

    async def _check_people(self, req: CreateRequest, ctype: CardType[Any], d: Any) -> None:
        """The creator, the listed users and the admins must belong to the chat."""
        people = [req.creator, *sorted(ctype.listed(d, ctype.initial(d))), *d.common.admins]
        for uid in dict.fromkeys(people):
            if req.channel_type == PERSON:
                ok = uid in (req.creator, req.channel_id)
            else:
                ok = await self._port.is_member(req.channel_id, req.channel_type, uid)
            if not ok:
                raise Forbidden(f"{uid} is not a member of this chat", field="channel_id")

    async def create(self, req: CreateRequest) -> dict[str, Any]:
        """Send a card message and initialise its state; the creator's projection plus
        ``message_seq`` and ``client_msg_no``. Idempotent by ``client_msg_no``."""
        tag = req.card.get("type")
        ctype = await self._resolve(tag) if isinstance(tag, str) else None
        if ctype is None:
            known = ", ".join(self._types.tags())
            message = f"card.type must be one of {known} or a registered name@version"
            raise CardInvalid(message, field="card.type")
        d = ctype.parse(req.card, req.creator, self._clock_ms())
        await self._check_people(req, ctype, d)
        content = {"type": CARD_CONTENT_TYPE, "content": req.content or ctype.fallback(d)}
        payload = json.dumps({**content, "card": ctype.payload_card(d)}, ensure_ascii=False)
        sent = await self._port.send(
            Outgoing(
                req.creator, req.channel_id, req.channel_type, payload.encode(), req.client_msg_no
            )
        )
        loaded = await self._require(sent.message_id)
        result = await self._port.update(
            sent.message_id,
            mutate=create_mutate(loaded.ctype, loaded.definition, self._max_bytes),
            action_id=CREATE_ACTION_ID,
            actor=Actor(loaded.definition.common.creator, req.device),
            operation=CARD_OP_PREFIX + "create",
            patch={"action": "create", "type": ctype.tag},
            important=True,
            events=self._events(loaded, "create", {}),
            deadline=self._deadline(loaded),
        )
        # "exists": a member acted first (the state initialises itself), e.g. when a crash
        # came between the send and this update and the creator now retries.
        if not result.applied and result.op.code != "exists":
            raise await self._refusal(loaded, result, loaded.definition.common.creator)
        await self._created(loaded, result)
        viewer = await self._viewer(loaded, req.creator, True)
        view = await self._project(loaded, result.state, viewer)
        return {**view, "message_seq": sent.message_seq, "client_msg_no": req.client_msg_no}

    async def _created(self, loaded: Loaded, result: UpdateResult) -> None:
        """A fresh creation committed its deadline and webhook; a repeat or a card whose
        state a member's action initialised first schedules the deadline now (idempotent),
        unless the card has ended."""
        deadline = self._deadline(loaded)
        fresh = result.applied and not result.duplicate
        ended = result.state.status in loaded.ctype.machine.terminal
        if deadline is not None and not fresh and not ended:
            await self._port.schedule(deadline)

    def _deadline(self, loaded: Loaded) -> Deadline | None:
        """The card's deadline (its system action and time), if its type has one."""
        found = loaded.ctype.deadline(loaded.definition)
        return None if found is None else Deadline(loaded.message.message_id, *found)

    # acting --------------------------------------------------------------------------------

    def _important(self, ctype: CardType[Any], action: str) -> bool:
        """Whether the action can change the status (its CMD is then persisted)."""
        table = ctype.machine.table
        return any(t.targets - {s} for (s, a), t in table.items() if a == action)

    def _log_params(self, loaded: Loaded, action: str, params: Mapping[str, Any]) -> dict[str, Any]:
        """What the log and the webhook show of ``params``: nothing when private, a marker
        when oversized (whatever a client sends is logged before it is validated)."""
        if loaded.ctype.private_params(loaded.definition, action):
            return {}
        if len(encode(params)) > MAX_LOGGED_PARAMS:
            return {"omitted": "too large"}
        return dict(params)

    async def act(self, req: ActionRequest) -> ActResult:
        """Apply one user action (see the module docstring); raises on refusal. Each action
        on an existing card is reported to ``on_action(card type tag, result)``: ``applied``,
        ``duplicate``, or the refusal's error code."""
        _check_params(req.params)
        loaded = await self._require(req.message_id)
        tag = loaded.ctype.tag
        try:
            done = await self._act(loaded, req)
        except MagpieError as exc:
            self._on_action(tag, exc.code)
            raise
        self._on_action(tag, "duplicate" if done.duplicate else "applied")
        return done

    async def _act(self, loaded: Loaded, req: ActionRequest) -> ActResult:
        ctype, d = loaded.ctype, loaded.definition
        viewer = await self._viewer(loaded, req.uid, None)
        if Role.MEMBER not in viewer.roles:
            raise self._outsider(loaded, req)
        await self._check_named_people(loaded, req.params)
        if isinstance(ctype, RegisteredType) and _is_callback(ctype, req.action):
            return await self._act_callback(loaded, ctype, req, viewer)
        inp = ActionInput(
            action=req.action,
            params=req.params,
            base_version=req.base_version,
            confirm=req.confirm,
            uid=req.uid,
            key=viewer.key,
            static_roles=viewer.roles,
            now=viewer.now,
        )
        hidden = ctype.anonymous_action(d, req.action)
        logged = self._log_params(loaded, req.action, req.params)
        result = await self._port.update(
            req.message_id,
            mutate=action_mutate(ctype, d, inp, self._max_bytes),
            action_id=self._action_id(req.uid, req.action_id),
            actor=Actor("", "") if hidden else Actor(req.uid, req.device),
            operation=CARD_OP_PREFIX + req.action,
            patch={"action": req.action, "params": logged, "confirm": req.confirm},
            important=self._important(ctype, req.action),
            events=self._events(loaded, req.action, logged),
            reads=ctype.reads(d, viewer.key),
        )
        if not result.applied:
            raise await self._refusal(loaded, result, req.uid, viewer)
        ephemeral = None
        if not result.duplicate:
            await self._applied(loaded, result)
            ephemeral = await self._declared_ephemeral(loaded, req, result.op)
        view = await self._project(loaded, result.state, viewer)
        return ActResult(view, result.duplicate, result.op, ephemeral)

    # registered types: ephemeral answers and callbacks ----------------------------------------

    async def _declared_ephemeral(
        self, loaded: Loaded, req: ActionRequest, op: OpRecord
    ) -> dict[str, Any] | None:
        """The ephemeral text of the declared transition just taken, told to the actor."""
        ctype = loaded.ctype
        if not isinstance(ctype, RegisteredType):
            return None
        t = ctype.spec.transition(op.status_before, req.action)
        if t is None or not t.ephemeral:
            return None
        return await self._tell(loaded, req, {"text": t.ephemeral, "doc": None})

    async def _tell(
        self, loaded: Loaded, req: ActionRequest, ephemeral: Mapping[str, Any]
    ) -> dict[str, Any]:
        """An ephemeral answer: to the actor's own devices (an online-only CMD, stored
        nowhere) and, by the caller, in the HTTP answer."""
        m = loaded.message
        param = {
            "message_id": m.message_id,
            "message_id_str": str(m.message_id),
            "channel_id": m.channel_id,
            "channel_type": m.channel_type,
            "action": req.action,
            "action_id": req.action_id,
            "text": ephemeral.get("text", ""),
            "doc": ephemeral.get("doc"),
        }
        if not await self._port.tell(req.uid, cmd_payload(EPHEMERAL_CMD, param)):
            log.info("card %d: ephemeral CMD to %r refused", m.message_id, req.uid)
        return {"text": param["text"], "doc": param["doc"]}

    def _callback_body(
        self,
        loaded: Loaded,
        ctype: RegisteredType,
        req: ActionRequest,
        ext: ExtState | None,
        callback_id: str,
    ) -> bytes:
        d = loaded.definition
        card = current_card(ctype, d, {} if ext is None else ext.extra)
        listed = sorted(ctype.listed(d, card.data))  # type: ignore[arg-type]
        m, common = loaded.message, d.common
        body = {
            "event": "card.callback",
            "callback_id": callback_id,
            "type": ctype.tag,
            "message_id": m.message_id,
            "message_id_str": str(m.message_id),
            "channel_id": m.channel_id,
            "channel_type": m.channel_type,
            "action": req.action,
            "params": dict(req.params),
            "actor": {"uid": req.uid, "device": req.device},
            "action_id": req.action_id,
            "card": {
                "version": 0 if ext is None else ext.version,
                "status": card.status,
                "state": dict(card.data.get("state", {})),
                "counts": dict(card.data.get("counts", {})),
                "creator": common.creator,
                "admins": list(common.admins),
                "listed": listed,
                "title": common.title,
                "description": common.description,
            },
            "at": self._clock_ms(),
        }
        return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()

    async def _record(
        self, loaded: Loaded, req: ActionRequest, inp: ActionInput, mutate: Mutate, action_id: str
    ) -> UpdateResult:
        logged = self._log_params(loaded, req.action, req.params)
        return await self._port.update(
            req.message_id,
            mutate=mutate,
            action_id=action_id,
            actor=Actor(req.uid, req.device),
            operation=CARD_OP_PREFIX + req.action,
            patch={"action": req.action, "params": logged, "confirm": req.confirm},
            important=True,
            events=self._events(loaded, req.action, logged),
        )

    async def _act_callback(
        self, loaded: Loaded, ctype: RegisteredType, req: ActionRequest, viewer: Viewer
    ) -> ActResult:
        """An action the business server decides: the guards on the current state, the
        signed callback on that version, its answer applied by compare-and-set on it (a
        newer state is never overwritten: 409 ``stale``, confirmable)."""
        d = loaded.definition
        inp = ActionInput(
            req.action,
            req.params,
            req.base_version,
            req.confirm,
            req.uid,
            viewer.key,
            viewer.roles,
            viewer.now,
        )
        action_id = self._action_id(req.uid, req.action_id)
        ext = await self._port.extension(req.message_id)
        state = ext if ext is not None else ExtState(req.message_id)
        refusal = admission(ctype, d, inp, state)
        if refusal is not None:
            result = await self._record(loaded, req, inp, _refuse_mutate(refusal, inp), action_id)
            return await self._settled(loaded, req, viewer, result, None)
        body = self._callback_body(loaded, ctype, req, ext, action_id)
        answer_body = await ask(
            self._port, self._callback, ctype.spec.callback_url, body, action_id
        )
        answer = check_answer(
            ctype.spec, current_card(ctype, d, state.extra).data["state"], answer_body
        )
        ephemeral = None
        if answer.ephemeral is not None:
            ephemeral = await self._tell(loaded, req, answer.ephemeral)
        if not answer.changes and answer.refuse is None:
            view = await self._project(loaded, ext, viewer)
            return ActResult(view, False, None, ephemeral)
        refused = None
        if answer.refuse is not None:
            refused = Refusal(Result.CONFLICT, answer.refuse[0], answer.refuse[1])
        outcome = Outcome(answer.status, answer.state, answer.doc, refused)
        mutate = outcome_mutate(ctype, d, inp, outcome, state.version, self._max_bytes)
        result = await self._record(loaded, req, inp, mutate, action_id)
        return await self._settled(loaded, req, viewer, result, ephemeral)

    async def _settled(
        self,
        loaded: Loaded,
        req: ActionRequest,
        viewer: Viewer,
        result: UpdateResult,
        ephemeral: dict[str, Any] | None,
    ) -> ActResult:
        if not result.applied:
            error = await self._refusal(loaded, result, req.uid, viewer)
            if ephemeral is not None:
                error.detail["ephemeral"] = ephemeral
            raise error
        if not result.duplicate:
            await self._applied(loaded, result)
        view = await self._project(loaded, result.state, viewer)
        return ActResult(view, result.duplicate, result.op, ephemeral)

    @staticmethod
    def _outsider(loaded: Loaded, req: ActionRequest) -> ApiError:
        """The refusal of an action by a non-member: nothing is written (the members' log
        stays clean), the node's log keeps an audit line, the answer carries no data."""
        log.info(
            "audit: card %d: action %r by non-member %r refused",
            loaded.message.message_id,
            req.action[:64],
            req.uid,
        )
        if req.business:
            return Forbidden(f"{req.uid} is not a member of this card's chat", reason=NOT_MEMBER)
        return _hidden()

    async def _check_named_people(self, loaded: Loaded, params: Mapping[str, Any]) -> None:
        """People an action hands work to (a task's new ``assignees``) must belong to the
        chat, as the listed users of a new card must (:meth:`_check_people`)."""
        named = params.get(_PEOPLE_PARAM)
        if not isinstance(named, list):
            return  # absent or malformed: the type's own parameter check answers
        for uid in dict.fromkeys(u for u in named if isinstance(u, str)):
            if not await self._is_member(loaded, uid):
                raise Forbidden(f"{uid} is not a member of this chat", field="params")

    async def _applied(self, loaded: Loaded, result: UpdateResult) -> None:
        """An applied action ended the card: its deadline is moot."""
        deadline = self._deadline(loaded)
        if deadline is not None and result.state.status in loaded.ctype.machine.terminal:
            await self._port.unschedule(deadline.message_id, deadline.action)

    def _events(self, loaded: Loaded, action: str, params: Mapping[str, Any]) -> EventsOf:
        """The ``card.action`` webhook of an applied change, computed from its result inside
        its transaction."""
        logged = dict(params)

        def events(result: UpdateResult) -> list[tuple[str, Mapping[str, Any]]]:
            return [(CARD_ACTION_EVENT, self._event_data(loaded, result, action, logged))]

        return events

    @staticmethod
    def _event_data(
        loaded: Loaded, result: UpdateResult, action: str, params: Mapping[str, Any]
    ) -> dict[str, Any]:
        m, op = loaded.message, result.op
        return {
            "message_id": m.message_id,
            "message_id_str": str(m.message_id),
            "channel_id": m.channel_id,
            "channel_type": m.channel_type,
            "card_type": loaded.ctype.tag,
            "action": action,
            "actor": {"uid": op.actor.uid, "device": op.actor.device},
            "anonymous": not op.actor.uid,
            "params": dict(params),
            "status_before": op.status_before,
            "status_after": op.status_after,
            "version": op.version_after,
            "op_id": op.op_id,
            "at": op.created_at,
        }

    async def _refusal(
        self, loaded: Loaded, result: UpdateResult, uid: str, viewer: Viewer | None = None
    ) -> ApiError:
        """The API error of a rejected attempt, with the viewer's current projection."""
        op = result.op
        viewer = viewer or await self._viewer(loaded, uid, None)
        if Role.MEMBER not in viewer.roles or op.code == NOT_MEMBER:
            message = op.message or op.code  # left the chat meanwhile: no data
            return Forbidden(message, reason=op.code)
        detail: dict[str, Any] = {
            "reason": op.code,
            "current": await self._project(loaded, result.state, viewer),
            "duplicate": result.duplicate,
        }
        if op.result is Result.CONFLICT:
            winner = _winner(result.last_applied)
            detail |= {"winner": winner, "at": None if winner is None else winner["at"]}
            detail["can_confirm"] = op.code == "stale"
        return rejection_error(op, invalid=CardInvalid, **detail)

    # deadlines -----------------------------------------------------------------------------

    async def fire(self, message_id: int, action: str) -> bool:
        """The server's own transition at a deadline (called by a node's deadline timer,
        actor ``system``); true when done with (applied, or no longer applicable)."""
        loaded = await self.load(message_id)
        deadline = None if loaded is None else loaded.ctype.deadline(loaded.definition)
        if loaded is None or deadline is None or deadline[0] != action:
            return True
        system = frozenset({Role.SYSTEM})
        inp = ActionInput(action, {}, None, False, SYSTEM_UID, SYSTEM_UID, system, self._clock_ms())
        result = await self._port.update(
            message_id,
            mutate=action_mutate(loaded.ctype, loaded.definition, inp, self._max_bytes),
            action_id=f"system:{action}:{deadline[1]}",
            actor=Actor(SYSTEM_UID, "scheduler"),
            operation=CARD_OP_PREFIX + action,
            patch={"action": action, "params": {"deadline": deadline[1]}},
            important=True,
            events=self._events(loaded, action, {"deadline": deadline[1]}),
        )
        if result.applied and not result.duplicate:
            await self._applied(loaded, result)
        return True


def _is_callback(ctype: RegisteredType, action: str) -> bool:
    spec = ctype.spec.actions.get(action)
    return spec is not None and spec.handler == CALLBACK


def _refuse_mutate(refusal: Refusal, inp: ActionInput) -> Mutate:
    """A decision that only records ``refusal`` (the guards refused before any callback)."""

    def mutate(_state: ExtState) -> Decision:
        return Decision.rejected(
            refusal.result, refusal.message, code=refusal.code, base_version=inp.base_version
        )

    return mutate
