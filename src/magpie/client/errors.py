"""Errors of the Python SDK: one subtree of Magpie's error tree (:mod:`magpie.errors`).

.. code-block:: text

    MagpieError (magpie.errors)
    └── ClientError                  client_error       base of everything the SDK raises
        ├── InvalidArgument          invalid_argument   our caller's mistake (also ValueError);
        │                                               ``argument`` names the bad one
        ├── CacheMismatch            cache_mismatch     the cache file belongs to another uid
        ├── ClientClosed             client_closed      the client is closed (or gave up: refused
        │                                               or kicked); ``state`` says which
        ├── ConnectRefused           connect_refused    CONNACK refused; ``reason`` (spec §1.8)
        ├── SendRefused              send_refused       SENDACK refused; ``reason`` (spec §1.8)
        ├── SendTimeout              send_timeout       no SENDACK in time; the message may or may
        │                                               not be stored: resend with the same
        │                                               ``client_msg_no`` to find out
        ├── ApiRequestFailed         api_error          the HTTP API answered an error; ``status``,
        │   │                                           ``error_code`` (the server's stable code),
        │   │                                           ``field`` (the bad input, if named)
        │   ├── CardConflict         card_conflict      409 on a card action: somebody else won
        │   └── RateLimited          rate_limited       429 (e.g. typing notices too often);
        │                                               ``retry_after`` seconds
        └── ApiUnavailable           api_unavailable    the HTTP API could not be reached (after
                                                        retries); ``action_id`` for card actions

Every error carries a message safe to show a user; tokens and payloads are never part of it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from magpie.errors import MagpieError
from magpie.protocol.packets import ReasonCode

__all__ = [
    "ApiRequestFailed",
    "ApiUnavailable",
    "CacheMismatch",
    "CardConflict",
    "ClientClosed",
    "ClientError",
    "ConnectRefused",
    "InvalidArgument",
    "RateLimited",
    "SendRefused",
    "SendTimeout",
    "reason_name",
]


def reason_name(reason: int) -> str:
    """The lower-case name of a WuKongIM reason code (``"auth_fail"``), or ``"reason_<n>"``
    for a number this SDK does not know."""
    try:
        return ReasonCode(reason).name.lower()
    except ValueError:
        return f"reason_{reason}"


class ClientError(MagpieError):
    """Base of every error the SDK raises."""

    code = "client_error"


class InvalidArgument(ClientError, ValueError):
    """An argument failed validation before anything was sent; ``argument`` names it."""

    code = "invalid_argument"

    def __init__(self, argument: str, message: str) -> None:
        super().__init__(f"{argument}: {message}")
        self.argument = argument


class CacheMismatch(ClientError):
    """The cache file at ``cache_path`` was written for another uid."""

    code = "cache_mismatch"


class ClientClosed(ClientError):
    """The client cannot do this any more: it was closed, or it stopped connecting because
    the server refused it or kicked it (``state`` is the connection state's value)."""

    code = "client_closed"

    def __init__(self, message: str, state: str = "closed") -> None:
        super().__init__(message)
        self.state = state


class _WithReason(ClientError):
    """An error carrying a WuKongIM reason code."""

    def __init__(self, message: str, reason: int) -> None:
        super().__init__(f"{message}: {reason_name(reason)} ({reason})")
        self.reason = reason

    @property
    def reason_name(self) -> str:
        """The reason code's name (``"subscriber_not_exist"``)."""
        return reason_name(self.reason)


class ConnectRefused(_WithReason):
    """The server answered CONNECT with ``reason`` (e.g. 2 ``auth_fail``): the client does
    not retry (spec §3: ConnectFail)."""

    code = "connect_refused"


class SendRefused(_WithReason):
    """The server answered the SEND with ``reason`` (e.g. 3 ``subscriber_not_exist``);
    nothing was stored."""

    code = "send_refused"

    def __init__(self, reason: int, client_msg_no: str) -> None:
        super().__init__("send refused", reason)
        self.client_msg_no = client_msg_no


class SendTimeout(ClientError):
    """No SENDACK arrived in time. The message may have been stored: sending again with the
    same ``client_msg_no`` returns the original message if it was (I2)."""

    code = "send_timeout"

    def __init__(self, client_msg_no: str) -> None:
        super().__init__(f"no SENDACK in time for client_msg_no {client_msg_no}")
        self.client_msg_no = client_msg_no


class ApiRequestFailed(ClientError):
    """The HTTP API answered ``status`` with the stable ``error_code`` and ``body``."""

    code = "api_error"

    def __init__(
        self, path: str, status: int, message: str, error_code: str = "", body: Any = None
    ) -> None:
        super().__init__(f"{path}: HTTP {status} {error_code or ''}: {message}".replace("  ", " "))
        self.path = path
        self.status = status
        self.error_code = error_code
        self.body = body
        field = body.get("field") if isinstance(body, Mapping) else None
        #: The input the server named as bad (``"emoji"``, ``"message_ids"`` …), or ``""``.
        self.field = field if isinstance(field, str) else ""


class CardConflict(ApiRequestFailed):
    """A card action lost (HTTP 409): another action was applied first.

    ``winner`` is who won (as the server describes it), ``at`` when the winning change was
    made, ``current`` the card's current state, ``can_confirm`` whether acting again with
    ``confirm=True`` could override it, ``action_id`` the id of the losing attempt."""

    code = "card_conflict"

    def __init__(self, path: str, body: Mapping[str, Any], action_id: str) -> None:
        super().__init__(path, 409, "another action won", "conflict", dict(body))
        self.winner: Any = body.get("winner")
        self.at: Any = body.get("at")
        current = body.get("current")
        self.current: Mapping[str, Any] = current if isinstance(current, Mapping) else {}
        self.can_confirm = bool(body.get("can_confirm", False))
        self.action_id = action_id


class RateLimited(ApiRequestFailed):
    """HTTP 429: too many requests of this kind (a typing notice within the server's
    minimum interval); nothing was done. Try again after ``retry_after`` seconds."""

    code = "rate_limited"

    def __init__(
        self, path: str, message: str, error_code: str, body: Any, retry_after: float
    ) -> None:
        super().__init__(path, 429, message, error_code, body)
        self.retry_after = retry_after


class ApiUnavailable(ClientError):
    """The HTTP API could not be reached (connection error, timeout, 502/503/504) after the
    allowed attempts. ``action_id`` is set for card actions: retrying with it is safe."""

    code = "api_unavailable"

    def __init__(self, message: str, action_id: str = "") -> None:
        super().__init__(message)
        self.action_id = action_id
