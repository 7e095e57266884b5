"""The Magpie Python SDK: an asyncio WuKongIM v2 client with a local cache.

.. code-block:: python

    from magpie.client import Channel, Client

    async with Client(ws_url, "alice", token, cache_path="alice.db", api_url=http_url) as c:
        c.messages.on(lambda m: print(m.from_uid, m.text))
        c.ext_changes.on(lambda ch: print(ch.message_id, ch.old, "->", ch.new))
        await c.send(Channel.group("team"), {"type": 1, "content": "hello"})
        await c.cards.act(message_id, "approve")

See ``docs/client.md``. The package imports only :mod:`magpie.protocol`,
:mod:`magpie.domain` (the shared vocabulary) and the error tree of Magpie (import-linter
enforces it).
"""

from magpie.client.cards import Cards, CardState, new_action_id
from magpie.client.client import SYNC_MESSAGE_EXTRA, Client
from magpie.client.connection import ConnectionChange
from magpie.client.errors import (
    ApiRequestFailed,
    ApiUnavailable,
    CacheMismatch,
    CardConflict,
    ClientClosed,
    ClientError,
    ConnectRefused,
    InvalidArgument,
    RateLimited,
    SendRefused,
    SendTimeout,
)
from magpie.client.model import (
    Channel,
    Command,
    Conversation,
    ExtChange,
    Message,
    MessageEdited,
    Presence,
    Reaction,
    ReactionChange,
    Reader,
    ReadersPage,
    ReadResult,
    ReceiptChange,
    Reminder,
    Reply,
    SearchPage,
    SendResult,
    SyncPhase,
    SyncProgress,
    Typing,
    UnreadCleared,
    Upload,
)
from magpie.client.options import ClientOptions
from magpie.client.state import ConnectionState, ConnectionTrigger, StateChange, SyncState
from magpie.client.topics import Stream, Subscription, Topic
from magpie.domain.ext import ExtState

__all__ = [
    "SYNC_MESSAGE_EXTRA",
    "ApiRequestFailed",
    "ApiUnavailable",
    "CacheMismatch",
    "CardConflict",
    "CardState",
    "Cards",
    "Channel",
    "Client",
    "ClientClosed",
    "ClientError",
    "ClientOptions",
    "Command",
    "ConnectRefused",
    "ConnectionChange",
    "ConnectionState",
    "ConnectionTrigger",
    "Conversation",
    "ExtChange",
    "ExtState",
    "InvalidArgument",
    "Message",
    "MessageEdited",
    "Presence",
    "RateLimited",
    "Reaction",
    "ReactionChange",
    "ReadResult",
    "Reader",
    "ReadersPage",
    "ReceiptChange",
    "Reminder",
    "Reply",
    "SearchPage",
    "SendRefused",
    "SendResult",
    "SendTimeout",
    "StateChange",
    "Stream",
    "Subscription",
    "SyncPhase",
    "SyncProgress",
    "SyncState",
    "Topic",
    "Typing",
    "UnreadCleared",
    "Upload",
    "new_action_id",
]
