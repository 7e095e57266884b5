"""The HTTP :class:`~magpie.cards.port.ImPort`: the card service as a separate business server.

It speaks only the business HTTP API with the business key — ``/message/send``,
``/message/get``, ``/channel/member``, ``/message/extra/ops`` and
``/message/extra/commit`` — exactly what a business server on another machine would use.

``update`` cannot hand a Python function to the IM, so it runs the *same* pure decision
between a read and a compare-and-set:

1. read the extension (``/message/get``; afterwards each 409 answer carries the current
   state, so a retry needs no extra read);
2. ``decision = mutate(state)``;
3. ``/message/extra/commit`` with ``expected_version = state.version``: applied decisions
   replace ``status`` and ``extra``, rejections are recorded as such — both in one IM
   transaction that first checks the action id (idempotency) and then the version;
4. a version miss (409, code ``cas_conflict``) means another change won in between: go to
   2 under the action id ``<id>~<attempt>``, at most ``attempts`` times with jittered
   exponential backoff. A repeated call walks the same ids and gets each recorded answer
   back, so it returns the original outcome (the ids of one call form a chain).

Business webhooks: this service *is* the business server, so :meth:`HttpImPort.emit` hands
events to the ``on_event`` callable it was given (none: dropped).
"""

from __future__ import annotations

import asyncio
import base64
import random
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import httpx

from magpie.cards.port import ImMessage, Outgoing, Sent
from magpie.errors import ApiError, BadRequest, Conflict, Forbidden, NotFound, PayloadTooLarge
from magpie.ext.model import (
    Actor,
    Decision,
    ExtState,
    Fields,
    Mutate,
    OpRecord,
    Result,
    UpdateResult,
)

__all__ = ["CAS_CONFLICT", "HttpImPort", "ImUnavailable"]

#: The IM's rejection code of a commit on an outdated version (``/message/extra/commit``).
CAS_CONFLICT = "cas_conflict"
_ERRORS: dict[int, type[ApiError]] = {
    400: BadRequest,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    413: PayloadTooLarge,
}


class ImUnavailable(ApiError):
    """The IM's HTTP API failed or could not be reached (502 to our caller)."""

    code = "im_unavailable"
    status = 502


def _error(response: httpx.Response) -> ApiError:
    try:
        body = response.json()
    except ValueError:
        body = {}
    message = str(body.get("msg") or f"HTTP {response.status_code}")
    return _ERRORS.get(response.status_code, ImUnavailable)(f"IM: {message}")


def state_from_json(row: Mapping[str, Any]) -> ExtState:
    """An extension row of the business view (``ExtRow``) as an :class:`ExtState`."""
    by = row.get("updated_by") or {}
    fields = Fields(
        status=str(row.get("status", "")),
        extra=dict(row.get("extra") or {}),
        revoke=bool(row.get("revoke", 0)),
        revoker=str(row.get("revoker", "")),
        content_edit=row.get("content_edit"),
        edited_at=int(row.get("edited_at", 0)),
        readed_count=int(row.get("readed_count", 0)),
    )
    return ExtState(
        message_id=int(row.get("message_id_str") or row["message_id"]),
        channel_id=str(row["channel_id"]),
        channel_type=int(row["channel_type"]),
        message_seq=int(row.get("message_seq", 0)),
        fields=fields,
        version=int(row.get("version", 0)),
        extra_version=int(row.get("extra_version", 0)),
        updated_at=int(row.get("updated_at", 0)),
        updated_by=Actor(str(by.get("uid", "")), str(by.get("device", ""))),
    )


def op_from_json(op: Mapping[str, Any]) -> OpRecord:
    """An operation-log row (``ExtOp``) as an :class:`OpRecord`."""
    actor = op.get("actor") or {}
    return OpRecord(
        op_id=int(op["op_id"]),
        message_id=int(op.get("message_id_str") or op["message_id"]),
        action_id=str(op["action_id"]),
        actor=Actor(str(actor.get("uid", "")), str(actor.get("device", ""))),
        operation=str(op["operation"]),
        patch=dict(op.get("patch") or {}),
        base_version=int(op.get("base_version", 0)),
        status_before=str(op.get("status_before", "")),
        status_after=str(op.get("status_after", "")),
        version_after=int(op.get("version_after", 0)),
        result=Result(op["result"]),
        detail=str(op.get("detail", "")),
        created_at=int(op.get("created_at", 0)),
    )


def _outcome(response: httpx.Response) -> UpdateResult:
    """The :class:`UpdateResult` of a commit answer (200, or a rejection with its op)."""
    try:
        body = response.json()
    except ValueError:
        raise _error(response) from None
    if response.status_code == 200:
        op = op_from_json(body["op"])
        return UpdateResult(state_from_json(body["data"]), op, bool(body["duplicate"]), op)
    if not isinstance(body, dict) or "op" not in body or "current" not in body:
        raise _error(response)
    last = body.get("last_op")
    return UpdateResult(
        state_from_json(body["current"]),
        op_from_json(body["op"]),
        bool(body.get("duplicate")),
        None if last is None else op_from_json(last),
    )


def _decision_body(decision: Decision) -> dict[str, Any]:
    if decision.result is Result.APPLIED and decision.fields is not None:
        f = decision.fields
        return {"outcome": "applied", "status": f.status, "extra": dict(f.extra)}
    outcome = "conflict" if decision.result is Result.STALE else decision.result.value
    return {"outcome": outcome, "code": decision.code, "detail": decision.detail}


def _cas_miss(result: UpdateResult) -> bool:
    return result.op.result is Result.CONFLICT and result.op.code == CAS_CONFLICT


class HttpImPort:
    """:class:`~magpie.cards.port.ImPort` over the IM's business HTTP API (module doc).

    ``attempts`` bounds the compare-and-set retries of one update; ``backoff`` is the first
    retry delay in seconds (doubling, ±50 % jitter)."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        attempts: int = 8,
        backoff: float = 0.005,
        timeout: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
        on_event: Callable[[str, Mapping[str, Any]], None] | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            headers={"Authorization": f"Bearer {api_key}"},
            timeout=timeout,
            transport=transport,
        )
        self._attempts = max(1, attempts)
        self._backoff = backoff
        self._on_event = on_event
        self._sleep = sleep

    async def aclose(self) -> None:
        """Close the HTTP client."""
        await self._http.aclose()

    async def _post(self, path: str, body: Mapping[str, Any]) -> httpx.Response:
        try:
            return await self._http.post(path, json=body)
        except httpx.HTTPError as exc:
            raise ImUnavailable(f"IM unreachable: {type(exc).__name__}") from None

    async def _data(self, path: str, body: Mapping[str, Any]) -> Any:
        response = await self._post(path, body)
        if response.status_code != 200:
            raise _error(response)
        return response.json()["data"]

    async def send(self, message: Outgoing) -> Sent:
        """``/message/send`` from ``from_uid`` (red dot on)."""
        data = await self._data(
            "/message/send",
            {
                "header": {"red_dot": 1},
                "from_uid": message.from_uid,
                "channel_id": message.channel_id,
                "channel_type": message.channel_type,
                "payload": base64.b64encode(message.payload).decode("ascii"),
                "client_msg_no": message.client_msg_no,
            },
        )
        return Sent(int(data["message_id"]), int(data["message_seq"]))

    async def _get(self, message_id: int) -> dict[str, Any] | None:
        response = await self._post("/message/get", {"message_id": str(message_id)})
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise _error(response)
        data: dict[str, Any] = response.json()["data"]
        return data

    async def message(self, message_id: int) -> ImMessage | None:
        """``/message/get``'s message (channel-log messages only)."""
        data = await self._get(message_id)
        if data is None or int(data["message"]["message_seq"]) <= 0:
            return None
        m = data["message"]
        return ImMessage(
            message_id=int(m["message_idstr"]),
            message_seq=int(m["message_seq"]),
            channel_id=str(data["storage_channel_id"]),
            channel_type=int(m["channel_type"]),
            from_uid=str(m["from_uid"]),
            payload=base64.b64decode(m["payload"]),
            timestamp=int(m["timestamp"]),
        )

    async def extension(self, message_id: int) -> ExtState | None:
        """``/message/get``'s extension."""
        data = await self._get(message_id)
        row = None if data is None else data.get("extra")
        return None if row is None else state_from_json(row)

    async def _state(self, message_id: int) -> ExtState:
        """The current state, with defaults for a message that was never changed."""
        data = await self._get(message_id)
        if data is None:
            raise NotFound("no such message", field="message_id")
        if data.get("extra") is not None:
            return state_from_json(data["extra"])
        m = data["message"]
        return ExtState(
            int(m["message_idstr"]),
            str(data["storage_channel_id"]),
            int(m["channel_type"]),
            int(m["message_seq"]),
        )

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
    ) -> UpdateResult:
        """Read → decide → compare-and-set, retried on a version miss (module docstring)."""
        state = await self._state(message_id)
        common = {
            "message_id": str(message_id),
            "operation": operation,
            "log": dict(patch),
            "actor_uid": actor.uid,
            "actor_device": actor.device,
            "important": int(important),
        }
        result = await self._commit(common, action_id, 0, state, mutate(state))
        for attempt in range(1, self._attempts):
            if not _cas_miss(result):
                return result
            delay = self._backoff * 2 ** (attempt - 1)
            await self._sleep(delay * random.uniform(0.5, 1.5))  # noqa: S311 - jitter only
            result = await self._commit(
                common, action_id, attempt, result.state, mutate(result.state)
            )
        return result

    async def _commit(
        self,
        common: Mapping[str, Any],
        action_id: str,
        attempt: int,
        state: ExtState,
        decision: Decision,
    ) -> UpdateResult:
        body = {
            **common,
            **_decision_body(decision),
            "action_id": action_id if attempt == 0 else f"{action_id}~{attempt}",
            "expected_version": state.version,
        }
        if decision.base_version is not None:
            body["base_version"] = decision.base_version
        response = await self._post("/message/extra/commit", body)
        if response.status_code == 404:
            raise NotFound("no such message", field="message_id")
        return _outcome(response)

    async def is_member(self, channel_id: str, channel_type: int, uid: str) -> bool:
        """``/channel/member``."""
        body = {"channel_id": channel_id, "channel_type": channel_type, "uid": uid}
        return bool((await self._data("/channel/member", body))["member"])

    async def ops(self, message_id: int, after_op_id: int, limit: int) -> list[OpRecord]:
        """``/message/extra/ops``."""
        body = {"message_id": str(message_id), "after_op_id": after_op_id, "limit": limit}
        return [op_from_json(op) for op in await self._data("/message/extra/ops", body)]

    def emit(self, event: str, data: Mapping[str, Any]) -> None:
        """Hand the event to ``on_event`` (this service is the business server)."""
        if self._on_event is not None:
            self._on_event(event, data)
