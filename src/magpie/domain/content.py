"""Message content: the payload rule and the content types (spec §4, §4.1).

Every message payload is a UTF-8 JSON object with an integer ``type`` — the JS SDK cannot
handle anything else — so the server refuses other payloads, the SDK refuses to send them,
and an edited content (``content_edit``) must be one too.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

__all__ = [
    "CMD",
    "FILE",
    "IMAGE",
    "TEXT",
    "check_content",
    "cmd_payload",
    "decode_content",
    "read_payload",
]

#: Plain text (``{"type": 1, "content": "..."}``).
TEXT = 1
#: An image (``{"type": 2, "url", "width", "height", "size", "name"}``).
IMAGE = 2
#: A file (``{"type": 8, "url", "name", "size"}``).
FILE = 8
#: A command: an invisible instruction to the client (``syncMessageExtra``, …); only the
#: business API may send one.
CMD = 99


def cmd_payload(name: str, param: Mapping[str, Any]) -> bytes:
    """The payload of the CMD ``name``: ``{"type":99,"cmd":name,"param":param}`` (compact
    UTF-8 JSON)."""
    body = {"type": CMD, "cmd": name, "param": dict(param)}
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


def check_content(content: object) -> dict[str, Any]:
    """``content`` if it is a JSON object with an integer ``type``; ``ValueError`` (with a
    message fit for the peer) otherwise."""
    if not isinstance(content, dict):
        raise ValueError("payload must be a JSON object")
    kind = content.get("type")
    if isinstance(kind, bool) or not isinstance(kind, int):
        raise ValueError("payload needs an integer 'type'")
    return content


def read_payload(payload: bytes) -> dict[str, Any]:
    """The content of a payload that follows the rule; ``ValueError`` otherwise."""
    try:
        content = json.loads(payload)
    except (UnicodeDecodeError, ValueError):
        raise ValueError("payload is not UTF-8 JSON") from None
    return check_content(content)


def decode_content(payload: bytes) -> dict[str, Any] | None:
    """The payload's JSON object (whatever its ``type``), or ``None`` if it is not one."""
    try:
        value = json.loads(payload)
    except (UnicodeDecodeError, ValueError):
        return None
    return value if isinstance(value, dict) else None
