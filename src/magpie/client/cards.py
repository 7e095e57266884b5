"""Interactive cards: acting on a card message through the server's card service.

The contract (ARCHITECTURE, "a state change")::

    POST /cards/{message_id}/actions          Authorization: Bearer <user token>
         {"action", "params", "action_id", "base_version", "confirm"?}
    200  {card state}
    409  {"winner", "at", "current", "can_confirm"}

:meth:`Cards.act` makes a fresh ``action_id`` (the server's idempotency key) and sends the
``base_version`` of the card as this client last saw it — the cached extension's
``version`` — so the server can tell a stale click from a fresh one. Transport errors and
502/503/504 are retried with the *same* ``action_id`` (at most ``card_attempts`` times), so a
retry can never apply an action twice; when every attempt failed, :class:`ApiUnavailable`
carries the ``action_id`` for the caller to retry with later. A 409 raises
:class:`CardConflict` with the winner, when it won, the current state and whether
``confirm=True`` could override it. After a success the card's channel is synced, so the
cache (and the ``ext_changes`` listeners) see the new state even before the server's
``syncMessageExtra`` CMD arrives.

Creating and reading: :meth:`Cards.create` sends a card message (``POST /cards``) and answers
its state; the typed helpers :meth:`Cards.create_approval`, :meth:`Cards.create_vote`,
:meth:`Cards.create_survey`, :meth:`Cards.create_task` and :meth:`Cards.create_custom` (a
registered type by its tag, with its ``state`` and ``doc``) build the definition from
keyword arguments; :meth:`Cards.get` reads the viewer's projection (``GET /cards/{id}``) and
:meth:`Cards.records` one page of a card's ballots or responses. :meth:`Cards.register_type`
registers a business card type (``POST /card-types``) with the *business key* — a business
server's call, not a user's (shapes: ``docs/cards.md``).
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from magpie.client.cache import Cache
from magpie.client.errors import ApiUnavailable, CardConflict, InvalidArgument
from magpie.client.http import HttpApi, failure
from magpie.client.model import Channel
from magpie.client.options import ClientOptions

__all__ = ["CardState", "Cards", "new_action_id"]

_UNAVAILABLE = frozenset({502, 503, 504})
#: Longest action name or action id accepted.
MAX_NAME_LENGTH = 128


def new_action_id() -> str:
    """A fresh, unguessable action id (128 random bits, hex)."""
    return secrets.token_hex(16)


@dataclass(frozen=True, slots=True)
class CardState:
    """A card's state as the card service returned it (``data``, the whole JSON object);
    ``version`` and ``status`` are read from it when present."""

    message_id: int
    action_id: str
    data: Mapping[str, Any]

    @property
    def version(self) -> int | None:
        """The extension version the action produced, if reported."""
        value = self.data.get("version")
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    @property
    def status(self) -> str:
        """The card's status (e.g. ``"approved"``), if reported."""
        value = self.data.get("status")
        return value if isinstance(value, str) else ""


def _check_name(value: object, argument: str) -> str:
    if not isinstance(value, str) or not value or len(value) > MAX_NAME_LENGTH:
        raise InvalidArgument(argument, f"must be a string of 1–{MAX_NAME_LENGTH} characters")
    return value


def _check_int(value: object, argument: str, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise InvalidArgument(argument, f"must be an int >= {low}")
    return value


def _check_params(params: object) -> dict[str, Any]:
    if params is None:
        return {}
    if not isinstance(params, Mapping):
        raise InvalidArgument("params", "must be a JSON object (dict)")
    try:
        json.dumps(params, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidArgument("params", f"is not JSON-serialisable: {exc}") from None
    return dict(params)


class Cards:
    """The card actions of one client (``client.cards``)."""

    def __init__(
        self,
        api: HttpApi | None,
        cache: Cache,
        options: ClientOptions,
        on_applied: Callable[[int], None],
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._api = api
        self._cache = cache
        self._options = options
        self._on_applied = on_applied
        self._sleep = sleep

    async def act(
        self,
        message_id: int,
        action: str,
        params: Mapping[str, Any] | None = None,
        *,
        confirm: bool = False,
        action_id: str | None = None,
        base_version: int | None = None,
    ) -> CardState:
        """Apply ``action`` (with ``params``) to the card in message ``message_id``.

        ``action_id`` defaults to a fresh one (pass the id of an earlier attempt to retry
        it); ``base_version`` defaults to the cached extension's version (0 if none).
        Returns the new card state; raises :class:`CardConflict` (409),
        :class:`~magpie.client.errors.ApiRequestFailed` (other refusals),
        :class:`ApiUnavailable` (unreachable after retries) or :class:`InvalidArgument`."""
        body = await self._body(message_id, action, params, confirm, action_id, base_version)
        path = f"/cards/{message_id}/actions"
        response = await self._post(path, body)
        if response.status_code == 409:
            raise CardConflict(path, _object(response), body["action_id"])
        if not response.is_success:
            raise failure(path, response)
        state = CardState(message_id, body["action_id"], _object(response))
        self._on_applied(message_id)
        return state

    # creating and reading --------------------------------------------------------------------

    def _require_api(self) -> HttpApi:
        if self._api is None:
            raise InvalidArgument("api_url", "cards need the client's api_url")
        return self._api

    async def create(
        self,
        channel: Channel,
        card: Mapping[str, Any],
        *,
        content: str = "",
        client_msg_no: str | None = None,
    ) -> CardState:
        """Send a card message into ``channel`` (``card``: the definition, ``{"type":
        "vote@1", "title": ..., ...}``); the creator's state, ``message_id`` set.
        Idempotent by ``client_msg_no`` (default: fresh). Raises
        :class:`~magpie.client.errors.ApiRequestFailed` on a refusal (400 invalid, 403 not a
        member, 413 too large), :class:`InvalidArgument` before sending anything wrong."""
        api = self._require_api()
        if not isinstance(channel, Channel):
            raise InvalidArgument("channel", "must be a Channel")
        definition = _check_params(card)
        if not isinstance(definition.get("type"), str):
            raise InvalidArgument("card", "needs a type, e.g. 'vote@1'")
        if not isinstance(content, str):
            raise InvalidArgument("content", "must be a string")
        msg_no = new_action_id() if client_msg_no is None else client_msg_no
        body = {
            "uid": api.uid,
            "channel_id": channel.channel_id,
            "channel_type": channel.channel_type,
            "card": definition,
            "content": content,
            "client_msg_no": _check_name(msg_no, "client_msg_no"),
        }
        response = await api.post("/cards", body)
        data = _object(response)
        message_id = int(data.get("message_id_str") or data.get("message_id") or 0)
        self._on_applied(message_id)
        return CardState(message_id, "", data)

    async def create_approval(
        self, channel: Channel, title: str, approvers: list[str], **more: Any
    ) -> CardState:
        """An ``approval@1`` card (``mode``, ``quorum``, ``expires_at``, ``description``,
        ``admins`` as keywords)."""
        card = {"type": "approval@1", "title": title, "approvers": approvers, **more}
        return await self.create(channel, card)

    async def create_vote(
        self, channel: Channel, title: str, options: list[str], **more: Any
    ) -> CardState:
        """A ``vote@1`` card (``multiple``, ``anonymous``, ``revote``, ``results``,
        ``closes_at`` ... as keywords)."""
        return await self.create(
            channel, {"type": "vote@1", "title": title, "options": options, **more}
        )

    async def create_survey(
        self, channel: Channel, title: str, questions: list[Mapping[str, Any]], **more: Any
    ) -> CardState:
        """A ``survey@1`` card (``final``, ``closes_at`` as keywords)."""
        card = {"type": "survey@1", "title": title, "questions": list(questions), **more}
        return await self.create(channel, card)

    async def create_task(
        self, channel: Channel, title: str, assignees: list[str], **more: Any
    ) -> CardState:
        """A ``task@1`` card (``due`` as a keyword)."""
        card = {"type": "task@1", "title": title, "assignees": assignees, **more}
        return await self.create(channel, card)

    async def create_custom(
        self,
        channel: Channel,
        type_tag: str,
        *,
        title: str = "",
        state: Mapping[str, Any] | None = None,
        doc: Mapping[str, Any] | None = None,
        listed: list[str] | None = None,
        **more: Any,
    ) -> CardState:
        """A card of a registered type (``type_tag`` like ``"leave@1"``), its ``state``
        merged over the type's initial state, ``doc`` its document, ``listed`` the users of
        the ``listed`` role."""
        card: dict[str, Any] = {"type": _check_name(type_tag, "type_tag"), **more}
        if title:
            card["title"] = title
        if state is not None:
            card["state"] = dict(state)
        if doc is not None:
            card["doc"] = dict(doc)
        if listed is not None:
            card["listed"] = list(listed)
        return await self.create(channel, card)

    async def get(self, message_id: int) -> CardState:
        """The card as this user sees it (``GET /cards/{id}``; 404 for a non-member)."""
        api = self._require_api()
        mid = _check_int(message_id, "message_id", 1)
        path = f"/cards/{mid}"
        response = await api.get(path)
        if not response.is_success:
            raise failure(path, response)
        return CardState(mid, "", _object(response))

    async def records(
        self, message_id: int, after: str = "", limit: int = 100
    ) -> Mapping[str, Any]:
        """One page of the card's ballots or responses as this user may see them:
        ``{visible, records, next}`` (``next``: the ``after`` of the following page)."""
        api = self._require_api()
        mid = _check_int(message_id, "message_id", 1)
        path = f"/cards/{mid}/records"
        query = {"after": after, "limit": _check_int(limit, "limit", 1)}
        response = await api.get(path, query)
        if not response.is_success:
            raise failure(path, response)
        return _object(response)

    async def register_type(
        self, definition: Mapping[str, Any], *, api_key: str
    ) -> Mapping[str, Any]:
        """Register a business card type (``POST /card-types`` with the business key
        ``api_key``): ``{tag, created, type}``. The same tag and body again is answered
        ``created: false``; another body under the same tag raises
        :class:`~magpie.client.errors.ApiRequestFailed` (409 ``type_exists``)."""
        api = self._require_api()
        body = _check_params(definition)
        if not isinstance(api_key, str) or not api_key:
            raise InvalidArgument("api_key", "the business key is required")
        response = await api.request_as("/card-types", body, api_key)
        if not response.is_success:
            raise failure("/card-types", response)
        return _object(response)

    async def _body(
        self,
        message_id: object,
        action: object,
        params: object,
        confirm: object,
        action_id: object,
        base_version: object,
    ) -> dict[str, Any]:
        mid = _check_int(message_id, "message_id", 1)
        if self._api is None:
            raise InvalidArgument("api_url", "card actions need the client's api_url")
        body: dict[str, Any] = {
            "uid": self._api.uid,
            "action": _check_name(action, "action"),
            "params": _check_params(params),
            "action_id": (
                new_action_id() if action_id is None else _check_name(action_id, "action_id")
            ),
            "base_version": await self._base_version(mid, base_version),
        }
        if not isinstance(confirm, bool):
            raise InvalidArgument("confirm", "must be a bool")
        if confirm:
            body["confirm"] = True
        return body

    async def _base_version(self, message_id: int, given: object) -> int:
        if given is not None:
            return _check_int(given, "base_version", 0)
        cached = await self._cache.ext(message_id)
        return 0 if cached is None else cached.version

    async def _post(self, path: str, body: Mapping[str, Any]) -> httpx.Response:
        """POST with retries on unavailability, always with the same body (action_id)."""
        assert self._api is not None  # noqa: S101 - checked in _body
        attempts, last = self._options.card_attempts, ""
        for attempt in range(attempts):
            try:
                response = await self._api.request(path, body)
            except ApiUnavailable as exc:
                last = exc.message
            else:
                if response.status_code not in _UNAVAILABLE:
                    return response
                last = f"HTTP {response.status_code}"
            if attempt + 1 < attempts:
                await self._sleep(self._options.card_retry_delay * 2**attempt)
        raise ApiUnavailable(
            f"{path}: unavailable after {attempts} attempts ({last})", str(body["action_id"])
        )


def _object(response: httpx.Response) -> Mapping[str, Any]:
    try:
        data = response.json()
    except ValueError:
        return {}
    return data if isinstance(data, Mapping) else {"value": data}
