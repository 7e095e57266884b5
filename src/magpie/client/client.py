"""The Python SDK's client: one user, one connection, a local cache, live listeners.

.. code-block:: python

    async with Client("ws://127.0.0.1:5200", "alice", token, cache_path="alice.db",
                      api_url="http://127.0.0.1:5001") as client:
        client.messages.on(lambda m: print(m.channel, m.text))
        result = await client.send(Channel.group("team"), {"type": 1, "content": "hi"})

What happens underneath (see the modules): :mod:`.connection` keeps the link up (handshake,
heartbeat, backoff); :mod:`.outbox` resends unacknowledged sends after a reconnect;
every RECV is cached (:mod:`.cache`) *before* its RECVACK; :mod:`.sync` fills gaps and pulls
extension changes after each connect and on every ``syncMessageExtra`` CMD; :mod:`.cards`
acts on interactive cards. Without ``api_url`` the client still connects, sends and receives,
but cannot sync history or extensions.
"""

from __future__ import annotations

import asyncio
import logging
import random
import secrets
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from magpie.client.cache import Cache
from magpie.client.cards import Cards
from magpie.client.connection import ConnectionChange, Connector
from magpie.client.errors import ClientClosed, InvalidArgument, SendTimeout
from magpie.client.features import UNREAD_CLEAR, ConversationFeatures
from magpie.client.http import HttpApi
from magpie.client.model import (
    Channel,
    Command,
    Conversation,
    ExtChange,
    Message,
    SendResult,
    SyncProgress,
    encode_content,
)
from magpie.client.options import ClientOptions
from magpie.client.outbox import Outbox, PendingSend
from magpie.client.raw import RawClient, ReceivedMessage
from magpie.client.state import ConnectionState, SyncState, backoff_delay
from magpie.client.sync import Coalescer, Syncer
from magpie.client.topics import Topic
from magpie.domain.channels import MAX_ID_LENGTH, uid_problem
from magpie.domain.ext import ExtState
from magpie.protocol.packets import DeviceFlag, Recvack, Sendack, Setting

__all__ = ["SYNC_MESSAGE_EXTRA", "Client"]

log = logging.getLogger(__name__)

#: The CMD the server sends after every extension change of a channel (spec §5.2).
SYNC_MESSAGE_EXTRA = "syncMessageExtra"
_FULL = "full"


def _check_url(url: object, argument: str, schemes: tuple[str, ...]) -> str:
    if not isinstance(url, str) or not url.startswith(schemes):
        raise InvalidArgument(argument, f"must be a URL starting with {' or '.join(schemes)}")
    return url


def _check_identity(uid: object, token: object, device_flag: object) -> None:
    problem = uid_problem(uid)
    if problem is not None:
        raise InvalidArgument("uid", problem)
    if not isinstance(token, str) or not token:
        raise InvalidArgument("token", "must be a non-empty string")
    if isinstance(device_flag, bool) or device_flag not in set(DeviceFlag):
        raise InvalidArgument("device_flag", "must be 0 (app), 1 (web), 2 (pc) or 99 (system)")


class Client(ConversationFeatures):
    """A WuKongIM v2 client with a local cache. Use ``async with`` (or :meth:`open` and
    :meth:`close`). Replies, reactions, read state, reminders, typing, edits, files, search
    and presence come from :class:`~.features.ConversationFeatures`."""

    def __init__(
        self,
        url: str,
        uid: str,
        token: str,
        device_flag: int = DeviceFlag.PC,
        cache_path: str | Path | None = None,
        *,
        api_url: str | None = None,
        options: ClientOptions | None = None,
        http_transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        _check_url(url, "url", ("ws://", "wss://", "tcp://"))
        _check_identity(uid, token, device_flag)
        if api_url is not None:
            _check_url(api_url, "api_url", ("http://", "https://"))
        self.uid = uid
        self.options = options or ClientOptions()
        q = self.options.stream_max_queue
        #: Messages newly cached (live, synced, and this client's own sends), commands aside.
        self.messages: Topic[Message] = Topic("message", q)
        #: Commands (content type 99), e.g. ``syncMessageExtra``.
        self.commands: Topic[Command] = Topic("command", q)
        #: Extension changes applied to the cache (only those that made it newer).
        self.ext_changes: Topic[ExtChange] = Topic("ext change", q)
        #: Connection state changes.
        self.states: Topic[ConnectionChange] = Topic("state", q)
        #: Sync progress.
        self.sync_progress: Topic[SyncProgress] = Topic("sync progress", q)
        self.cache = Cache(cache_path, self.options.cache_synchronous)
        self._api = None if api_url is None else self._make_api(api_url, token, http_transport)
        self._syncer = (
            None
            if self._api is None
            else Syncer(self.cache, self._api, self.options, _Wiring(self))
        )
        self._full: Coalescer[str] = Coalescer(self._full_sync, self._sync_failed)
        self._outbox = Outbox(self._stored)
        self._connector = Connector(url, uid, token, int(device_flag), self.options, _Wiring(self))
        self._links = 0
        self._synced = asyncio.Event()
        self._sync_failures = 0
        self._retry: asyncio.TimerHandle | None = None
        self._opened = False
        self._closed = False
        #: Interactive cards (``await client.cards.act(...)``).
        self.cards = Cards(self._api, self.cache, self.options, self._card_changed)
        self._init_features()

    def _make_api(
        self, api_url: str, token: str, transport: httpx.AsyncBaseTransport | None
    ) -> HttpApi:
        options = self.options
        return HttpApi(
            api_url,
            self.uid,
            token,
            timeout=options.request_timeout,
            transport=transport,
            read_attempts=options.read_attempts,
            read_retry_max=options.read_retry_max,
        )

    # --- lifecycle --------------------------------------------------------------------------

    async def open(self, *, connect: bool = True) -> None:
        """Open the cache (its content is readable at once) and, unless ``connect`` is false,
        start connecting in the background."""
        if self._opened:
            raise InvalidArgument("open", "the client is already open")
        self._opened = True
        await self.cache.open(self.uid)
        if connect:
            self._connector.start()

    def connect(self) -> None:
        """Start connecting (after ``open(connect=False)``)."""
        self._require_open()
        self._connector.start()

    async def close(self) -> None:
        """Disconnect, fail pending sends with :class:`ClientClosed`, close the cache."""
        if self._closed:
            return
        self._closed = True
        self._cancel_retry()
        await self._connector.close()
        self._outbox.fail_all(ClientClosed("the client was closed"))
        await self._outbox.close()
        await self._full.close()
        await self._close_features()
        if self._syncer is not None:
            await self._syncer.close()
        if self._api is not None:
            await self._api.close()
        if self._opened:
            await self.cache.close()
        for topic in (self.messages, self.commands, self.ext_changes, self.sync_progress):
            topic.close()
        self.states.close()

    async def __aenter__(self) -> Client:
        try:
            await self.open()
        except BaseException:
            await self.close()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def _require_open(self) -> None:
        if not self._opened or self._closed:
            raise ClientClosed("the client is not open", "closed" if self._closed else "idle")

    # --- state ------------------------------------------------------------------------------

    @property
    def state(self) -> ConnectionState:
        """The connection state."""
        return self._connector.state

    @property
    def sync_state(self) -> SyncState:
        """Where the last full sync is (IDLE without an ``api_url``)."""
        return SyncState.IDLE if self._syncer is None else self._syncer.state

    @property
    def api_requests(self) -> int:
        """HTTP requests made so far."""
        return 0 if self._api is None else self._api.requests

    async def wait_connected(self, timeout: float | None = None) -> None:
        """Wait until connected; :class:`ClientClosed` if the client stopped for good,
        ``TimeoutError`` after ``timeout`` seconds."""
        async with asyncio.timeout(timeout):
            await self._connector.wait_connected()

    async def wait_synced(self, timeout: float | None = None) -> None:
        """Wait until the full sync after the current connection finished."""
        async with asyncio.timeout(timeout):
            await self._synced.wait()

    async def sync(self) -> None:
        """Run a full sync now (or join the one running) and wait for it."""
        self._require_open()
        await self._full.run(_FULL)

    # --- sending ----------------------------------------------------------------------------

    async def send(
        self,
        channel: Channel,
        content: Mapping[str, Any],
        *,
        client_msg_no: str | None = None,
        timeout: float | None = None,
        receipt: bool = False,
    ) -> SendResult:
        """Send ``content`` (a JSON object with an integer ``type``) to ``channel`` and wait
        for its SENDACK. While disconnected the send waits and goes out on the next link.
        ``receipt=True`` sends it with the receipt setting: its readers are counted
        (``mark_read``, ``read_by``, ``receipts``).

        Raises :class:`InvalidArgument` before sending anything, :class:`SendRefused` with
        the server's reason, :class:`SendTimeout` after ``timeout`` seconds, or
        :class:`ClientClosed`."""
        if not isinstance(channel, Channel):
            raise InvalidArgument("channel", "must be a Channel (Channel.person / .group)")
        payload = encode_content(content, self.options.max_payload_bytes)
        number = self._client_msg_no(client_msg_no)
        self._require_open()
        if self.state.terminal:
            raise self._connector.failure or ClientClosed("the client is closed")
        setting = Setting.RECEIPT if receipt is True else Setting.NONE
        pending = self._outbox.add(channel, payload, number, setting)
        if (link := self._connector.link) is not None:
            self._outbox.flush(link, self._links)
        return await self._await_ack(pending, timeout)

    @staticmethod
    def _client_msg_no(given: str | None) -> str:
        if given is None:
            return secrets.token_hex(16) + "p"
        if not isinstance(given, str) or not 1 <= len(given) <= MAX_ID_LENGTH:
            raise InvalidArgument("client_msg_no", "must be a string of 1–128 characters")
        return given

    async def _await_ack(self, pending: PendingSend, timeout: float | None) -> SendResult:
        try:
            async with asyncio.timeout(timeout):
                return await asyncio.shield(pending.future)
        except TimeoutError:
            self._outbox.forget(pending)
            raise SendTimeout(pending.client_msg_no) from None
        except asyncio.CancelledError:
            self._outbox.forget(pending)
            raise

    async def _stored(self, pending: PendingSend, ack: Sendack) -> None:
        """A send was stored: cache it like a received message."""
        message = Message.of(
            pending.channel,
            ack.message_id,
            ack.message_seq,
            pending.client_msg_no,
            self.uid,
            int(time.time()),
            pending.payload,
        )
        for fresh in (await self.cache.put_messages([message])).fresh:
            self.messages.publish(fresh)

    # --- reading the cache ------------------------------------------------------------------

    async def history(
        self, channel: Channel, limit: int = 50, before_seq: int | None = None
    ) -> list[Message]:
        """Cached messages of ``channel`` (oldest first), each with its extension."""
        self._require_open()
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise InvalidArgument("limit", "must be a positive int")
        return await self.cache.history(channel, limit, before_seq)

    async def message(self, message_id: int) -> Message | None:
        """The cached message ``message_id`` with its extension, if cached."""
        self._require_open()
        return await self.cache.message(message_id)

    async def ext(self, message_id: int) -> ExtState | None:
        """The cached extension of ``message_id``."""
        self._require_open()
        return await self.cache.ext(message_id)

    async def conversations(self) -> list[Conversation]:
        """The cached conversation list, newest first."""
        self._require_open()
        return await self.cache.conversations()

    # --- the connector's events (via _Wiring) --------------------------------------------------

    async def _link_up(self, link: RawClient) -> None:
        """Resend what is pending, then sync."""
        self._links += 1
        self._outbox.flush(link, self._links)
        self._synced.clear()
        if self._syncer is None:
            self._synced.set()
        else:
            self._full.kick(_FULL)

    def _link_down(self) -> None:
        """Stop the sync of the lost link; the next link syncs again."""
        self._synced.clear()
        self._cancel_retry()
        if self._syncer is not None:
            self._syncer.link_lost()
        self._full.cancel()

    def _state_changed(self, change: ConnectionChange) -> None:
        """Publish; fail pending sends when the client stopped for good."""
        if change.new in (ConnectionState.REFUSED, ConnectionState.KICKED):
            self._outbox.fail_all(self._connector.failure or ClientClosed(change.new.value))
        self.states.publish(change)

    async def _received(self, link: RawClient, batch: Sequence[ReceivedMessage]) -> None:
        """Cache the batch durably, RECVACK each RECV, then tell the listeners."""
        messages = [m for m in map(_to_message, batch) if m is not None]
        fresh = (await self.cache.put_messages(messages)).fresh
        for item in batch:
            p = item.packet
            await link.write(Recvack(p.message_id, p.message_seq, flags=p.flags))
        self._dispatch(messages, {m.message_id for m in fresh})
        if self._syncer is not None:
            await self._check_gaps(fresh)

    def _dispatch(self, messages: Sequence[Message], fresh: set[int]) -> None:
        for message in messages:
            if message.is_command:
                self._on_command(Command.of(message))
            elif message.message_id in fresh or message.message_seq == 0:
                self.messages.publish(message)

    def _on_command(self, command: Command) -> None:
        self.commands.publish(command)
        if command.cmd == SYNC_MESSAGE_EXTRA and self._syncer is not None:
            self._syncer.ext_changed(command.target, _int(command.param, "extra_version"))
        elif self._feature_command(command) and command.cmd == UNREAD_CLEAR:
            self._resync()  # the conversation's cached unread count comes with the sync

    def _ext_pull(self, channel: Channel) -> None:
        if self._syncer is not None:
            self._syncer.ext_changed(channel)

    async def _check_gaps(self, fresh: Sequence[Message]) -> None:
        """A live message above a missing seq: fill the channel (after a short delay)."""
        spans: dict[Channel, tuple[int, int]] = {}
        for m in fresh:
            low, high = spans.get(m.channel, (m.message_seq, m.message_seq))
            spans[m.channel] = (min(low, m.message_seq), max(high, m.message_seq))
        for channel, (low, high) in spans.items():
            if await self.cache.holes(channel, max(1, low - 1), high):
                assert self._syncer is not None  # noqa: S101 - checked by the caller
                self._syncer.live_gap(channel)

    # --- the syncer's events (via _Wiring) ------------------------------------------------------

    def _progress(self, event: SyncProgress) -> None:
        """Publish sync progress."""
        self.sync_progress.publish(event)

    def _ext_changes_applied(self, changes: Sequence[ExtChange]) -> None:
        """Publish extension changes (and the receipts and edits they are)."""
        for change in changes:
            self.ext_changes.publish(change)
        self._feature_ext_changes(changes)

    def _synced_messages(self, messages: Sequence[Message]) -> None:
        """Publish messages a sync cached (commands aside)."""
        for message in messages:
            if not message.is_command:
                self.messages.publish(message)

    def _resync(self) -> None:
        """Run a full sync soon (the store epoch changed)."""
        if self._connector.link is not None:
            self._full.kick(_FULL)

    async def _full_sync(self, _: str) -> None:
        assert self._syncer is not None  # noqa: S101 - only scheduled with a syncer
        await self._syncer.full_sync()
        self._sync_failures = 0
        self._synced.set()
        self._features_synced()

    def _sync_failed(self, _: str, exc: BaseException) -> None:
        """A full sync failed (e.g. the HTTP API is down while the gateway is up): retry
        with the reconnect backoff while the link lasts."""
        o = self.options
        delay = backoff_delay(
            self._sync_failures, o.backoff_initial, o.backoff_max, o.backoff_jitter, random.random
        )
        self._sync_failures += 1
        log.info("sync failed (%s: %s); retry in %.1f s", type(exc).__name__, exc, delay)
        self._cancel_retry()
        self._retry = asyncio.get_running_loop().call_later(delay, self._retry_sync)

    def _retry_sync(self) -> None:
        if self._connector.link is not None and not self._closed:
            self._full.kick(_FULL)

    def _cancel_retry(self) -> None:
        if self._retry is not None:
            self._retry.cancel()
            self._retry = None

    def _card_changed(self, message_id: int) -> None:
        """A card action succeeded: pull its channel's extension changes now."""
        if self._syncer is None:
            return
        task = asyncio.get_running_loop().create_task(self.cache.message(message_id))
        task.add_done_callback(self._pull_for)

    def _pull_for(self, task: asyncio.Task[Message | None]) -> None:
        if self._syncer is None or task.cancelled() or task.exception() is not None:
            return
        message = task.result()
        if message is not None:
            self._syncer.ext_changed(message.channel)


class _Wiring:
    """The client's side of its connector (:class:`~.connection.LinkHandler`) and syncer
    (:class:`~.sync.SyncSink`), kept off the client's public surface."""

    def __init__(self, client: Client) -> None:
        self._client = client

    async def link_up(self, link: RawClient) -> None:
        """A link is up."""
        await self._client._link_up(link)

    async def received(self, link: RawClient, batch: Sequence[ReceivedMessage]) -> None:
        """RECVs arrived."""
        await self._client._received(link, batch)

    def link_down(self) -> None:
        """The link is gone."""
        self._client._link_down()

    def state_changed(self, change: ConnectionChange) -> None:
        """The connection state changed."""
        self._client._state_changed(change)

    def progress(self, event: SyncProgress) -> None:
        """A sync step happened."""
        self._client._progress(event)

    def synced_messages(self, messages: Sequence[Message]) -> None:
        """A sync cached messages."""
        self._client._synced_messages(messages)

    def ext_changes_applied(self, changes: Sequence[ExtChange]) -> None:
        """Extension changes were applied."""
        self._client._ext_changes_applied(changes)

    def resync(self) -> None:
        """A full sync is needed."""
        self._client._resync()


def _to_message(item: ReceivedMessage) -> Message | None:
    p = item.packet
    try:
        channel = Channel(p.channel_id, p.channel_type)
    except InvalidArgument:
        log.warning("RECV %d has an invalid channel; acknowledged, not cached", p.message_id)
        return None
    return Message.of(
        channel, p.message_id, p.message_seq, p.client_msg_no, p.from_uid, p.timestamp, item.payload
    )


def _int(param: Mapping[str, Any], key: str) -> int | None:
    value = param.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else None
