"""Logging of a node: text lines (default) or JSON lines, request ids, connection context.

:func:`configure_logging` installs one handler on the root logger, formatting either
``2026-01-31 12:00:00,000 INFO magpie.api.access GET /user/token 200 …`` text lines or one
JSON object per line (``log_format = "json"``, for log shippers), through the well-known
``python-json-logger`` formatter. Structured fields passed as ``extra=`` (``request_id``,
``uid``, ``device_flag``, ``remote`` …) become JSON keys; the text form carries the same facts
in its message.

**What is never logged at INFO or above**: tokens, API keys (only their :func:`key_id`),
message payloads and request bodies (``tests/core/test_logs.py`` checks a node's whole INFO
output for them).

The request id of the HTTP request being handled lives in :data:`REQUEST_ID` (a context
variable set by the access-log middleware), and every record logged while it is set carries
it as ``request_id``.
"""

from __future__ import annotations

import hashlib
import logging
import sys
from collections.abc import MutableMapping
from contextvars import ContextVar
from typing import IO, Any

from pythonjsonlogger.json import JsonFormatter

__all__ = [
    "LOG_FORMATS",
    "REQUEST_ID",
    "TEXT_FORMAT",
    "ConnectionLog",
    "configure_logging",
    "json_formatter",
    "key_id",
]

#: The text line: time, level, logger, message.
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
#: Accepted values of the ``log_format`` setting.
LOG_FORMATS = ("text", "json")
#: The id of the HTTP request being handled ("" outside a request).
REQUEST_ID: ContextVar[str] = ContextVar("magpie_request_id", default="")
#: Libraries whose INFO lines repeat ours (websockets logs every connection open/close).
_CHATTY = ("websockets", "uvicorn", "uvicorn.error", "uvicorn.access")


def key_id(key: str) -> str:
    """A short, stable, non-secret name of an API key for logs: ``key:`` and the first 8 hex
    digits of its SHA-256."""
    return "key:" + hashlib.sha256(key.encode()).hexdigest()[:8]


class _RequestIdFilter(logging.Filter):
    """Adds ``request_id`` to records logged while an HTTP request is being handled."""

    def filter(self, record: logging.LogRecord) -> bool:
        request_id = REQUEST_ID.get()
        if request_id and not hasattr(record, "request_id"):
            record.request_id = request_id
        return True


def json_formatter() -> logging.Formatter:
    """One JSON object per record: ``time`` (ISO 8601, UTC), ``level``, ``logger``,
    ``message``, the record's ``extra`` fields, and ``exc_info`` when there is one."""
    return JsonFormatter(
        "%(levelname)s %(name)s %(message)s",
        rename_fields={"levelname": "level", "name": "logger"},
        timestamp="time",
        json_ensure_ascii=False,
    )


def configure_logging(level: str, fmt: str = "text", stream: IO[str] | None = None) -> None:
    """Send every log record at ``level`` or above to ``stream`` (stderr) as ``fmt`` lines
    (``"text"`` or ``"json"``), replacing the root logger's handlers."""
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(json_formatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    handler.addFilter(_RequestIdFilter())
    root = logging.getLogger()
    for old in root.handlers[:]:
        root.removeHandler(old)
    root.addHandler(handler)
    numeric = logging.getLevelName(level.upper())
    root.setLevel(numeric)
    quiet = logging.DEBUG if numeric == logging.DEBUG else logging.WARNING
    for name in _CHATTY:
        logging.getLogger(name).setLevel(quiet)


class ConnectionLog(logging.LoggerAdapter):  # type: ignore[type-arg]
    """The logger of one client connection: text lines start with ``[conn_id]``; JSON lines
    carry ``conn`` and, once authenticated, ``uid``, ``device_flag`` and ``remote``."""

    def __init__(self, logger: logging.Logger, conn_id: str, remote: str = "") -> None:
        super().__init__(logger, {"conn": conn_id, "remote": remote})

    def identify(self, uid: str, device_flag: int) -> None:
        """Tag every later line with the authenticated user and device."""
        self.extra = {**(self.extra or {}), "uid": uid, "device_flag": device_flag}

    def process(
        self, msg: Any, kwargs: MutableMapping[str, Any]
    ) -> tuple[Any, MutableMapping[str, Any]]:
        """Prefix the message with the connection id and merge the context into ``extra``."""
        extra = dict(self.extra or {})
        extra.update(kwargs.get("extra") or {})
        kwargs["extra"] = extra
        return f"[{extra['conn']}] {msg}", kwargs
