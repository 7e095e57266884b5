"""JSON renderings of stored rows in WuKongIM's shapes (spec §6).

``MessageResp`` is the message object of ``/message/sync``, ``/channel/messagesync``,
``/conversation/sync`` recents and the ``msg.notify`` / ``msg.offline`` webhooks. A person
channel is stored under its fake id (``a@b``); every rendering rewrites it to the peer as seen
by a *viewer* uid — the asking user, or the sender for webhooks (so the business server sees
the receiver, as WuKongIM does).

Extension rows are rendered by :mod:`magpie.api.views` only (card state is projected there).
"""

from __future__ import annotations

import base64
from typing import Any

from magpie.domain.channels import visible_channel_id
from magpie.domain.ext import OpRecord
from magpie.protocol.packets import Flags
from magpie.store.interface import ConversationRow, StoredMessage

__all__ = [
    "conversation_resp",
    "message_resp",
    "op_resp",
]


#: The flag bits as plain ints: ``int & IntFlag`` goes through ``enum``'s Python-level
#: operators (≈ 1 µs per rendered message), ``int & int`` does not.
_NO_PERSIST, _RED_DOT, _SYNC_ONCE = int(Flags.NO_PERSIST), int(Flags.RED_DOT), int(Flags.SYNC_ONCE)


def _header(flags: int) -> dict[str, int]:
    flags = int(flags)
    return {
        "no_persist": int(flags & _NO_PERSIST != 0),
        "red_dot": int(flags & _RED_DOT != 0),
        "sync_once": int(flags & _SYNC_ONCE != 0),
    }


def message_resp(msg: StoredMessage, viewer: str = "", seq: int | None = None) -> dict[str, Any]:
    """A MessageResp of ``msg`` as ``viewer`` sees it (default: the sender's view).

    ``seq`` overrides ``message_seq``: a queued sync-once command carries the recipient's
    queue seq instead of a channel seq."""
    return {
        "header": _header(msg.flags),
        "setting": msg.setting,
        "message_id": msg.message_id,
        "message_idstr": str(msg.message_id),
        "client_msg_no": msg.client_msg_no,
        "message_seq": msg.message_seq if seq is None else seq,
        "from_uid": msg.from_uid,
        "channel_id": visible_channel_id(msg.channel_id, msg.channel_type, viewer or msg.from_uid),
        "channel_type": msg.channel_type,
        "topic": msg.topic,
        "timestamp": msg.timestamp,
        "payload": base64.b64encode(msg.payload).decode("ascii"),
        "expire": msg.expire,
    }


def conversation_resp(
    row: ConversationRow, recents: list[StoredMessage], viewer: str
) -> dict[str, Any]:
    """One entry of ``/conversation/sync`` (v1.1.4 shape plus v2's ``readed_to_msg_seq``)."""
    return {
        "channel_id": visible_channel_id(row.channel_id, row.channel_type, viewer),
        "channel_type": row.channel_type,
        "unread": row.unread,
        "timestamp": row.timestamp,
        "last_msg_seq": row.last_msg_seq,
        "last_client_msg_no": row.last_client_msg_no,
        "offset_msg_seq": 0,
        "readed_to_msg_seq": row.readed_to_msg_seq,
        "version": row.version,
        "recents": [message_resp(m, viewer) for m in recents],
    }


def op_resp(op: OpRecord) -> dict[str, Any]:
    """One operation-log row."""
    return {
        "op_id": op.op_id,
        "message_id": op.message_id,
        "message_id_str": str(op.message_id),
        "action_id": op.action_id,
        "actor": {"uid": op.actor.uid, "device": op.actor.device},
        "operation": op.operation,
        "patch": dict(op.patch),
        "base_version": op.base_version,
        "status_before": op.status_before,
        "status_after": op.status_after,
        "version_after": op.version_after,
        "result": op.result.value,
        "code": op.code,
        "detail": op.detail,
        "created_at": op.created_at,
    }
