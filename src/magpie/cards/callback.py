"""The business server's callback: ask it what an action does, and check its answer.

The request is a signed ``POST <callback_url>`` (the webhook signature: ``X-Magpie-Event-Id``,
``X-Magpie-Timestamp``, ``X-Magpie-Signature``; the port signs and sends it) whose body names
the card, the action, its parameters, the actor and the card's state at the version the
action is based on. A transport error, a timeout or a 5xx answer is tried again (with the
same ``callback_id``) up to ``attempts`` times with a doubling backoff; a 4xx answer is final.

The answer (:class:`Answer`) may carry a merge patch of the state, a new status, a new card
document, an ephemeral answer for the actor alone, or a refusal. Whatever the business server
answers is checked here — JSON object, size, the status among the type's, the patched state
against the type's schema, the documents — and anything wrong is the business server's fault
(502 ``bad_gateway``, reason ``callback_invalid``); the card is never touched by a failed
callback. The card service applies a valid answer by compare-and-set.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from magpie.cards.document import check_document
from magpie.cards.port import CallbackReply, ImPort
from magpie.cards.registered import TypeSpec, state_problem
from magpie.errors import ApiError
from magpie.ext.patch import merge_patch

__all__ = ["Answer", "CallbackConfig", "CallbackFailed", "ask", "check_answer"]

#: Largest answer body the service reads.
MAX_ANSWER_BYTES = 64 * 1024
_REASON = re.compile(r"[a-z][a-z0-9_]{0,31}")


class CallbackFailed(ApiError):
    """The business server's callback failed or answered nonsense: nothing changed (502)."""

    code = "bad_gateway"
    status = 502


@dataclass(frozen=True, slots=True)
class CallbackConfig:
    """Seconds one try may take, tries, seconds before the first retry (doubling)."""

    timeout: float = 5.0
    attempts: int = 3
    backoff: float = 0.2


@dataclass(frozen=True, slots=True)
class Answer:
    """A checked callback answer. ``state`` is the whole new state (patch applied) or
    ``None`` when unchanged; ``changes`` is whether anything is to be written."""

    state: Mapping[str, Any] | None
    status: str | None
    doc: Mapping[str, Any] | None
    ephemeral: Mapping[str, Any] | None
    refuse: tuple[str, str] | None

    @property
    def changes(self) -> bool:
        """Whether the answer changes the card."""
        return self.state is not None or self.status is not None or self.doc is not None


def _invalid(message: str) -> CallbackFailed:
    return CallbackFailed(
        f"the business server's answer is invalid: {message}", reason="callback_invalid"
    )


def _ephemeral(raw: Any) -> dict[str, Any] | None:
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise _invalid("ephemeral must be an object")
    text = raw.get("text", "")
    if not isinstance(text, str) or len(text) > 2000:
        raise _invalid("ephemeral.text must be a string of at most 2000 characters")
    doc = raw.get("doc")
    if doc is not None:
        try:
            check_document(doc, "ephemeral.doc")
        except ApiError as exc:
            raise _invalid(f"ephemeral.doc: {exc.message}") from None
    if not text and doc is None:
        raise _invalid("ephemeral needs a text or a doc")
    return {"text": text, "doc": doc}


def _refuse(raw: Any) -> tuple[str, str] | None:
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise _invalid("refuse must be an object")
    reason, message = raw.get("reason", "refused"), raw.get("message", "")
    if not isinstance(reason, str) or not _REASON.fullmatch(reason):
        raise _invalid("refuse.reason must match [a-z][a-z0-9_]{0,31}")
    if not isinstance(message, str) or len(message) > 300:
        raise _invalid("refuse.message must be a string of at most 300 characters")
    return reason, message or reason.replace("_", " ")


def check_answer(spec: TypeSpec, state: Mapping[str, Any], body: bytes) -> Answer:
    """The business server's answer ``body`` checked against the type and the card's
    ``state`` (the one sent to it); raises :class:`CallbackFailed` when invalid."""
    if len(body) > MAX_ANSWER_BYTES:
        raise _invalid(f"above {MAX_ANSWER_BYTES} bytes")
    try:
        raw = json.loads(body) if body.strip() else {}
    except ValueError:
        raise _invalid("not JSON") from None
    if not isinstance(raw, Mapping):
        raise _invalid("not a JSON object")
    refuse = _refuse(raw.get("refuse"))
    ephemeral = _ephemeral(raw.get("ephemeral"))
    status = raw.get("status")
    if status is not None and status not in spec.statuses:
        raise _invalid(f"status {status!r} is not a status of {spec.tag}")
    new_state = None
    if raw.get("state") is not None:
        patch = raw["state"]
        if not isinstance(patch, Mapping):
            raise _invalid("state must be an object (a merge patch)")
        new_state = merge_patch(dict(state), dict(patch))
        problem = state_problem(spec.state_validator, new_state)
        if problem is not None:
            raise _invalid(f"the patched state does not match the state schema: {problem}")
    doc = raw.get("doc")
    if doc is not None:
        try:
            doc = check_document(doc, "doc")
        except ApiError as exc:
            raise _invalid(f"doc: {exc.message} ({exc.field})") from None
    if refuse is not None and (new_state is not None or status is not None or doc is not None):
        raise _invalid("a refusal cannot change the card")
    return Answer(new_state, status, doc, ephemeral, refuse)


def _failed(reply: CallbackReply) -> str:
    """Why a try failed (``""``: it did not): worth retrying unless a 4xx."""
    if reply.error:
        return reply.error
    if not 200 <= reply.status < 300:
        return f"HTTP {reply.status}"
    return ""


async def ask(
    port: ImPort, config: CallbackConfig, url: str, body: bytes, callback_id: str
) -> bytes:
    """POST ``body`` to ``url`` until a try answers 2xx; its body. 502 ``callback_timeout``
    when the last try timed out, ``callback_failed`` otherwise."""
    delay = config.backoff
    last = CallbackReply(0, b"", "not tried")
    for attempt in range(max(1, config.attempts)):
        if attempt:
            await asyncio.sleep(delay)
            delay *= 2
        last = await port.post(url, body, callback_id, config.timeout)
        why = _failed(last)
        if not why:
            return last.body
        if 400 <= last.status < 500:
            break
    if last.error == "timeout":
        message = f"the business server did not answer within {config.timeout} s"
        raise CallbackFailed(message, reason="callback_timeout")
    why = _failed(last) or f"HTTP {last.status}"
    raise CallbackFailed(f"the business server's callback failed ({why})", reason="callback_failed")
