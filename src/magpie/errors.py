"""Magpie's one error tree.

Every error Magpie raises across a package boundary is a :class:`MagpieError`. Each class has
a stable ``code`` (a short snake_case string that clients may match on) and a message safe to
show to the peer; detail that is not safe (tokens, payloads, SQL) goes to the log only.

.. code-block:: text

    MagpieError                  code
    ├── ConfigError              config_invalid      a setting is missing or bad (names the key)
    ├── StartupError             startup_failed      the node cannot start (``fix`` says what to do)
    ├── CommandError             command_failed      admin/backup cannot do its work (``fix``)
    ├── ProtocolError            protocol_error      ``reason``: the reason code to answer with
    │   ├── LocalProtocolError   protocol_misuse     *we* misused the protocol
    │   ├── RemoteProtocolError  protocol_violation  *the peer* sent something invalid
    │   │   ├── FrameTooLarge    frame_too_large     a length limit exceeded
    │   │   ├── MalformedPacket  malformed_packet    truncated, garbage, trailing bytes
    │   │   ├── UnexpectedPacket unexpected_packet   a packet not allowed now / from this role
    │   │   └── CryptoError      crypto_error        bad key or msgKey, undecryptable payload
    │   └── client.raw.ConnectRefused  connect_refused  CONNACK with a failure reason
    ├── StoreError               store_error         the store failed
    │   ├── MigrationError       migration_error     the schema cannot be brought up to date
    │   └── StoreUnavailable     store_unavailable   the database cannot be reached; retry later
    ├── core.messaging.Refused   send_refused        internal: a send refused with a reason code
    ├── cards.model.CardBug      card_bug            a card type broke its own contract
    ├── ApiError                 (per subclass)      an HTTP/SDK-level refusal with a status
    │   ├── BadRequest           bad_request    400  input failed validation (``field``)
    │   │   ├── api.http.BadJson             bad_json      400  body is not JSON
    │   │   ├── api.http.NulCharacter        nul_character 400  U+0000 in a JSON string or query
    │   │   ├── api.http.SendRefused         send_refused  400  ``reason``: the send flow said no
    │   │   ├── cards_adapter.CardSendRefused send_refused 400  the same, for a card message
    │   │   ├── ext.rejection.Invalid        invalid       400  an extension change is invalid
    │   │   ├── core.reactions.TooManyEmoji  too_many_emoji  400  a new emoji beyond the limit
    │   │   └── cards.model.CardInvalid      invalid       400  a card definition/action is invalid
    │   ├── Unauthorized         unauthorized   401  missing or unknown credential
    │   ├── Forbidden            forbidden      403  credential valid but not allowed
    │   ├── NotFound             not_found      404  no such user/channel/message
    │   │   └── api.routes.demo.UnknownDemoUser  unknown_demo_user  404
    │   ├── api.http.MethodNotAllowed  method_not_allowed  405
    │   ├── Conflict             conflict       409  lost a compare-and-set or a race
    │   │   └── ext.rejection.Stale          stale         409  an older last-writer-wins write
    │   ├── PayloadTooLarge      too_large      413  body or field above its limit
    │   ├── api.http.RateLimited       rate_limited        429  a rate limit or cap; Retry-After
    │   ├── api.http.InternalError     internal_error      500  detail in the log only
    │   └── api.http.ServiceUnavailable  unavailable       503  store closed / not ready
    │       ├── api.http.StoreDown         store_unavailable  503  database unreachable; Retry-After
    │       └── api.http.Busy              busy               503  no history-read slot in time
    └── client.errors.ClientError  client_error      the Python SDK's errors (see that module):
        InvalidArgument, CacheMismatch, ClientClosed, ConnectRefused, SendRefused,
        SendTimeout, ApiRequestFailed > CardConflict, ApiUnavailable, sync.EpochChanged

Subclasses live beside the code that raises them (module paths relative to ``magpie``);
this drawing is the one place that lists them all, so keep it in step.

Protocol errors keep the split of wsproto/h11: a :class:`LocalProtocolError` is a bug on our
side, a :class:`RemoteProtocolError` is the peer's fault and tells the caller which reason code
(``magpie.protocol.ReasonCode``) to send back before closing.
"""

from __future__ import annotations

from typing import Any, ClassVar

__all__ = [
    "ApiError",
    "BadRequest",
    "CommandError",
    "ConfigError",
    "Conflict",
    "CryptoError",
    "Forbidden",
    "FrameTooLarge",
    "LocalProtocolError",
    "MagpieError",
    "MalformedPacket",
    "MigrationError",
    "NotFound",
    "PayloadTooLarge",
    "ProtocolError",
    "RemoteProtocolError",
    "StartupError",
    "StoreError",
    "StoreUnavailable",
    "Unauthorized",
    "UnexpectedPacket",
]

# Numeric values of the reason codes used as defaults below (spec §1.8). The full enum is
# ``magpie.protocol.ReasonCode``; errors.py imports nothing of Magpie, so the two defaults are
# spelled out here.
_REASON_SYSTEM_ERROR = 15
_REASON_PAYLOAD_DECODE_ERROR = 9


class MagpieError(Exception):
    """Base of every error Magpie raises across a package boundary."""

    code: ClassVar[str] = "error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ConfigError(MagpieError):
    """A setting is missing or invalid; ``key`` names it."""

    code = "config_invalid"

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}")
        self.key = key


class StartupError(MagpieError):
    """The node cannot start: a port is taken, the data directory is not writable, the
    database cannot be opened. ``message`` names the cause, ``fix`` what to do about it (the
    command line prints both on one line)."""

    code = "startup_failed"

    def __init__(self, message: str, fix: str) -> None:
        super().__init__(message)
        self.fix = fix


class CommandError(MagpieError):
    """``magpie admin``, ``backup`` or ``restore`` cannot do what was asked: the node cannot
    be reached, refused the key, the target already holds data … ``fix`` says what to do."""

    code = "command_failed"

    def __init__(self, message: str, fix: str = "") -> None:
        super().__init__(message)
        self.fix = fix


class ProtocolError(MagpieError):
    """A WuKongIM protocol error; ``reason`` is the reason code to answer with."""

    code = "protocol_error"

    def __init__(self, message: str, reason: int = _REASON_SYSTEM_ERROR) -> None:
        super().__init__(message)
        self.reason = reason


class LocalProtocolError(ProtocolError):
    """We tried to do something the protocol does not allow (a bug on our side)."""

    code = "protocol_misuse"


class RemoteProtocolError(ProtocolError):
    """The peer sent something the protocol does not allow."""

    code = "protocol_violation"

    def __init__(self, message: str, reason: int = _REASON_PAYLOAD_DECODE_ERROR) -> None:
        super().__init__(message, reason)


class FrameTooLarge(RemoteProtocolError):
    """A length went above its configured limit."""

    code = "frame_too_large"


class MalformedPacket(RemoteProtocolError):
    """A packet is truncated, has garbage fields, or has trailing bytes."""

    code = "malformed_packet"


class UnexpectedPacket(RemoteProtocolError):
    """A packet type that is not allowed in this state or from this role."""

    code = "unexpected_packet"


class CryptoError(RemoteProtocolError):
    """A key, msgKey or ciphertext from the peer is invalid."""

    code = "crypto_error"


class StoreError(MagpieError):
    """The store could not complete an operation."""

    code = "store_error"


class MigrationError(StoreError):
    """The schema could not be migrated."""

    code = "migration_error"


class StoreUnavailable(StoreError):
    """The database could not be reached or the connection was lost (a server restart, a
    network fault, no free connection slot). Retryable: the operation may or may not have
    committed when the connection broke mid-call, so a caller retries with the same
    idempotency key (``client_msg_no``, ``action_id``), and a client is told to retry later
    (SENDACK failure, HTTP 503 with ``Retry-After``)."""

    code = "store_unavailable"


class ApiError(MagpieError):
    """A refusal at an API entry point, with an HTTP status and a stable code."""

    code = "api_error"
    status: ClassVar[int] = 400
    #: Seconds the client should wait before trying again (a ``Retry-After`` header);
    #: 0: no header.
    retry_after: ClassVar[int] = 0

    def __init__(self, message: str, *, field: str | None = None, **detail: Any) -> None:
        super().__init__(message)
        self.field = field
        self.detail: dict[str, Any] = detail

    def to_dict(self) -> dict[str, Any]:
        """The JSON body sent to the client (WuKongIM-style ``status`` + ``msg``)."""
        body: dict[str, Any] = {"status": self.status, "code": self.code, "msg": self.message}
        if self.field is not None:
            body["field"] = self.field
        body.update(self.detail)
        return body


class BadRequest(ApiError):
    """Input failed validation."""

    code = "bad_request"
    status = 400


class Unauthorized(ApiError):
    """Missing or unknown credential."""

    code = "unauthorized"
    status = 401


class Forbidden(ApiError):
    """The credential is valid but not allowed to do this."""

    code = "forbidden"
    status = 403


class NotFound(ApiError):
    """No such user, channel or message."""

    code = "not_found"
    status = 404


class Conflict(ApiError):
    """A compare-and-set or race was lost; ``detail`` carries the current state."""

    code = "conflict"
    status = 409


class PayloadTooLarge(ApiError):
    """A body or field is above its limit."""

    code = "too_large"
    status = 413
