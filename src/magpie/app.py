"""The composition root: the only place that chooses concrete backends.

:class:`Node` builds one Magpie node from :class:`~magpie.config.Settings` — store, bus, core
services and their access decisions, WebSocket gateway, HTTP API, the card service (over the
in-process :class:`~magpie.cards_adapter.InProcessPort`) and the business webhooks wired to
the send flow, the gateway and the card service — starts it, and stops it cleanly.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import socket
import stat
import time
import uuid
from pathlib import Path

from magpie.api import ApiContext, create_api
from magpie.api.guard import RequestGuard
from magpie.api.hooks import NodeWebhooks
from magpie.api.presence import Presence, PresenceSource
from magpie.api.server import HttpServer, HttpTimeouts
from magpie.api.webhooks import WebhookConfig, WebhookDispatcher
from magpie.bus.interface import Bus
from magpie.bus.memory import MemoryBus
from magpie.cards import CardService, default_types
from magpie.cards.callback import CallbackConfig
from magpie.cards_adapter import DEADLINE_KIND, InProcessPort, deadline_worker
from magpie.config import Settings
from magpie.core.access import AccessControl
from magpie.core.auth import new_api_key
from magpie.core.content_rules import Rules
from magpie.core.conversation import Conversation
from magpie.core.ids import Snowflake
from magpie.core.jobs import JobWorker, WorkerConfig
from magpie.core.messaging import Messaging, SendRequest
from magpie.core.nodes import Directory, NodeLease
from magpie.core.reactions import REACTION_CMD, Reactions
from magpie.core.reading import Reading
from magpie.core.reminders import Reminders
from magpie.core.typing_notices import Typing
from magpie.domain.channels import PERSON, fake_channel_id
from magpie.errors import ConfigError
from magpie.ext.notify import Cmd, CmdSender, Notifier
from magpie.ext.patch import PatchLimits
from magpie.ext.service import ExtService
from magpie.failures import check_writable_dir, listen_error
from magpie.files.service import Files
from magpie.files.storage import LocalDiskStorage
from magpie.gateway.admission import NodeAdmission
from magpie.gateway.server import Gateway, GatewayConfig
from magpie.gateway.session import OutboundLimits
from magpie.gateway.trace import DeliveryTrace
from magpie.guard import Defences, FdWatch, open_fd_count
from magpie.metrics import Metrics
from magpie.protocol.limits import Limits
from magpie.protocol.packets import Flags, ReasonCode
from magpie.store.interface import Store
from magpie.store.sqlite import SqliteStore

__all__ = ["Node", "open_store", "resolve_api_key", "wire_webhooks"]

log = logging.getLogger(__name__)

#: Card deadlines one timer round claims, and the tries of a failing one before it is dead
#: (a failure is a bug or a store outage; retried with backoff for about 20 minutes).
DEADLINES_PER_ROUND = 50
DEADLINE_ATTEMPTS = 25
#: The default of ``cards_db_file``: the old card file a node imports once if it exists.
DEFAULT_CARDS_DB = "cards.db"
#: Seconds between two samples of the open file descriptors, and at least between two log
#: lines about running out of them.
FD_SAMPLE_INTERVAL = 1.0
FD_LOG_INTERVAL = 10.0


def resolve_api_key(settings: Settings) -> tuple[str, Path | None]:
    """The business API key: from settings, else read or created in ``data_dir/api_key``
    (mode 0600). Returns the key and the file it lives in (``None`` when from settings)."""
    if settings.api_key:
        return settings.api_key, None
    path = Path(settings.data_dir) / "api_key"
    if path.exists():
        key = path.read_text().strip()
        if not key:
            raise ConfigError("api_key", f"{path} is empty; delete it or set MAGPIE_API_KEY")
        return key, path
    path.parent.mkdir(parents=True, exist_ok=True)
    key = new_api_key()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, stat.S_IRUSR | stat.S_IWUSR)
    with os.fdopen(fd, "w") as fh:
        fh.write(key + "\n")
    return key, path


def open_store(settings: Settings) -> Store:
    """The store ``store_url`` names (unopened): SQLite (the default) or PostgreSQL, whose
    module — and asyncpg — is imported only here and only when chosen."""
    path = settings.sqlite_path
    if path is not None:
        return SqliteStore(path, synchronous=settings.sqlite_synchronous)
    from magpie.store.postgres import PostgresStore  # lazy: asyncpg only when chosen

    return PostgresStore(settings.store_url, pool_size=settings.store_pool_size)


class Node:
    """One running Magpie node (embedded default: SQLite + in-process bus). ``reuse_port``:
    its listeners share their ports with other worker processes (``magpie serve --workers``,
    ``SO_REUSEPORT``)."""

    def __init__(self, settings: Settings, *, reuse_port: bool = False) -> None:
        self.settings = settings
        self.reuse_port = reuse_port
        check_writable_dir(Path(settings.data_dir))
        self.api_key, self.api_key_path = resolve_api_key(settings)
        self.metrics = Metrics()
        self.defences = Defences(settings, self.metrics)
        self._fd_watch = FdWatch(FD_LOG_INTERVAL, time.monotonic)
        self._fd_task: asyncio.Task[None] | None = None
        self.store = open_store(settings)
        #: Names this running process (its node id lease, its claims of durable jobs).
        self.instance = f"{socket.gethostname()}/{os.getpid()}/{uuid.uuid4().hex[:12]}"
        #: Set when the node must stop by itself (its node id was taken); ``fatal_reason``
        #: says why. ``magpie serve`` waits for it beside the signals.
        self.fatal = asyncio.Event()
        self.fatal_reason = ""
        self.lease = NodeLease(
            self.store,
            instance=self.instance,
            lease=settings.node_lease,
            wanted=settings.node_id,
            on_lost=self._lost_node_id,
        )
        self.directory = Directory(self.store)
        self.bus = _bus(settings, self.metrics)
        self._ids = Snowflake(None)
        self.messaging = Messaging(
            self.store,
            self.bus,
            self._ids,
            max_payload_bytes=settings.max_payload_bytes,
        )
        self.access = AccessControl(self.store, self.api_key)
        self.trace = DeliveryTrace(settings.trace_capacity)
        self.gateway = Gateway(
            dataclasses.replace(_gateway_config(settings), reuse_port=reuse_port),
            self.store,
            self.bus,
            self.messaging,
            self.metrics,
            self.access,
            self.defences,
            admission=NodeAdmission(self.defences),
            trace=self.trace,
        )
        self.ext = _ext_service(settings, self.store, self.messaging, self.metrics, self.trace)
        self.conv = _conversation(settings, self.store, self.messaging, self.ext, self.access)
        self.webhooks = wire_webhooks(
            settings,
            self.api_key,
            self.metrics,
            self.messaging,
            self.gateway,
            store=self.store,
            owner=self.instance,
        )
        outbox = None if self.webhooks is None else self.webhooks.event_job
        port = InProcessPort(
            self.messaging,
            self.ext,
            self.store,
            self.access,
            outbox,
            clock_ms=_wall_ms,
            cmd=_cmd_sender(self.messaging),
            callback_secret=(settings.webhook_secret or self.api_key).encode(),
        )
        self._card_port = port
        self.cards = CardService(
            port,
            default_types(),
            clock_ms=_wall_ms,
            max_state_bytes=settings.ext_max_extra_bytes,
            on_action=self.metrics.card_action,
            legacy_db=settings.cards_db_path,
            callback=CallbackConfig(
                timeout=settings.card_callback_timeout,
                attempts=settings.card_callback_attempts,
                backoff=settings.card_callback_backoff,
            ),
        )
        self.deadlines = _deadline_timer(
            settings, self.store, self.cards, self.metrics, self.instance
        )
        port.on_schedule(self.deadlines.wake)
        _warn_deprecated(settings)
        self._probe_queues()
        self._http: HttpServer | None = None
        self._ops: HttpServer | None = None
        self.api_port = 0
        #: The ops listener's port (``ops_listen``), after :meth:`start`; 0 when there is none.
        self.ops_port = 0
        self.api: ApiContext | None = None

    def _probe_queues(self) -> None:
        """Queue depths for ``/metrics`` (``magpie_queue_depth{queue}``), read at scrape."""
        probe = self.metrics.probe_queue
        gateway = self.gateway
        probe("gateway_outbound_frames", gateway.queued_frames)
        probe("gateway_unacked_recvs", gateway.unacked)
        probe("gateway_retry_schedule", gateway.scheduled_retries)
        self.metrics.delivery_order(lambda: dataclasses.asdict(gateway.order.counts))
        store = self.store
        if isinstance(store, SqliteStore):
            probe("store_writes", lambda: store.write_queue_depth)
        probe("ext_cmd_channels", lambda: self.ext.notifier.pending)
        if self.webhooks is not None:
            dispatcher = self.webhooks.dispatcher
            probe("webhooks", lambda: dispatcher.pending)

    @property
    def ws_port(self) -> int:
        """The port the WebSocket gateway listens on (after :meth:`start`)."""
        return self.gateway.port

    @property
    def tcp_port(self) -> int:
        """The port the TCP gateway listens on (after :meth:`start`; 0 when disabled)."""
        return self.gateway.tcp_port

    async def start(self) -> None:
        """Open the store, start the gateway and the HTTP API. On failure, whatever was
        started is stopped again before the error propagates."""
        try:
            await self._start()
        except BaseException:
            with contextlib.suppress(Exception):
                await self.stop()
            raise

    @property
    def node_id(self) -> int:
        """The node id this process holds (after :meth:`start`)."""
        return self.lease.node_id

    def _lost_node_id(self, why: str) -> None:
        self.fatal_reason = why
        self.fatal.set()

    async def _start(self) -> None:
        await self.store.open()
        node_id = await self.lease.claim()
        self._ids.assign(node_id, self.lease.valid)
        self.bus.assign(node_id)
        await self.bus.start()
        if self.webhooks is not None:
            await self.webhooks.start()
        try:
            await self.gateway.start()
        except OSError as exc:
            raise listen_error(exc, self.settings.host, self.settings.ws_port, "ws_port") from exc
        self.api = ApiContext(
            settings=self.settings,
            api_key=self.api_key,
            store=self.store,
            bus=self.bus,
            messaging=self.messaging,
            gateway=self.gateway,
            metrics=self.metrics,
            ws_addr=self._ws_addr(),
            tcp_addr=self._tcp_addr(),
            ext=self.ext,
            access=self.access,
            conv=self.conv,
            cards=self.cards,
            trace=self.trace,
            directory=self.directory,
        )
        await self.api.start()
        await self.cards.start()  # imports an old cards.db once; the shared secret
        self.deadlines.start()  # due card deadlines (also from before a restart) fire now
        await self._start_http(self.api)
        await self.lease.start(self.api.ws_addr, self.api.tcp_addr)  # /route may name this node now
        self._fd_task = asyncio.get_running_loop().create_task(self._watch_fds())
        log.info(
            "gateway on ws://%s:%d (TCP port %d), API on http://%s:%d; at most %d gateway and "
            "%d HTTP connections",
            self.settings.host,
            self.ws_port,
            self.tcp_port,
            self.settings.host,
            self.api_port,
            self.defences.budget.ws,
            self.defences.budget.http,
        )

    def _ws_addr(self) -> str:
        """What ``/route`` answers as ``ws_addr`` for this node."""
        return self.settings.ws_public_url or f"ws://{self.settings.host}:{self.ws_port}"

    def _tcp_addr(self) -> str:
        """What ``/route`` answers as ``tcp_addr``: ``host:port``, or empty without TCP."""
        if not self.settings.tcp_enabled:
            return ""
        return self.settings.tcp_public_addr or f"{self.settings.host}:{self.tcp_port}"

    async def _start_http(self, api: ApiContext) -> None:
        s = self.settings
        timeouts = HttpTimeouts(
            header=s.http_header_timeout,
            body=s.http_body_timeout,
            keepalive=s.http_keepalive_timeout,
        )
        app = RequestGuard(create_api(api), self.defences, self.api_key, self._is_user_token)
        listener = _listen(s.host, s.api_port, "api_port", self.reuse_port)
        self._http = HttpServer(app, listener, self.defences, timeouts)
        await self._http.start()
        self.api_port = self._http.port
        if s.ops_address is not None:
            host, port = s.ops_address
            ops = RequestGuard(
                create_api(api, "ops"), self.defences, self.api_key, self._is_user_token
            )
            listener = _listen(host, port, "ops_listen", self.reuse_port)
            self._ops = HttpServer(ops, listener, self.defences, timeouts)
            await self._ops.start()
            self.ops_port = self._ops.port

    async def _is_user_token(self, presented: str) -> bool:
        found = await self.access.identify(presented)
        return found is not None and not found.business

    async def _watch_fds(self) -> None:
        """Sample the open descriptors; the watch logs when the limit is reached."""
        while True:
            await asyncio.sleep(FD_SAMPLE_INTERVAL)
            self._fd_watch.sample(open_fd_count())

    async def stop(self) -> None:
        """Drain: stop the API, close client connections, flush and close the store. Store
        calls are bounded from here on (``store_stop_timeout``): a database that does not
        answer cannot hold the stop."""
        self.store.stopping(self.settings.store_stop_timeout)
        if self._fd_task is not None:
            self._fd_task.cancel()
            self._fd_task = None
        for server in (self._http, self._ops):
            if server is not None:
                await server.stop()
        self._http = self._ops = None
        await self.deadlines.stop()  # lets a deadline being fired finish; the rest persist
        await self.cards.stop()
        await self._card_port.aclose()
        await self.ext.close()  # pending syncMessageExtra CMDs, while clients are connected
        await self.conv.close()  # and the pending reaction CMDs
        await self.gateway.stop()
        if self.api is not None:
            await self.api.stop()
        if self.webhooks is not None:
            await self.webhooks.stop()  # after the gateway: its disconnects are stored
        await self.bus.close()
        await self.lease.stop()  # after the last message id: the id is free again
        await self.store.close()


def wire_webhooks(
    settings: Settings,
    api_key: str,
    metrics: Metrics,
    messaging: Messaging,
    gateway: Presence,
    *,
    store: Store,
    owner: str,
) -> NodeWebhooks | None:
    """The business webhooks when ``webhook_url`` is set: ``msg.notify`` / ``msg.offline``
    committed with every stored message (the send flow's outbox), ``user.onlinestatus`` on the
    gateway's connects and disconnects (when it reports them), and a dispatcher claiming as
    ``owner``; ``None`` when webhooks are off (then nothing is ever enqueued). The secret is
    ``webhook_secret`` or else the business API key."""
    if not settings.webhook_url:
        return None
    config = WebhookConfig(
        url=settings.webhook_url,
        secret=(settings.webhook_secret or api_key).encode(),
        batch_interval=settings.webhook_batch_interval,
        attempts=settings.webhook_attempts,
        backoff=settings.webhook_backoff,
        max_backoff=settings.webhook_max_backoff,
        timeout=settings.webhook_timeout,
        lease=settings.job_lease,
    )
    dispatcher = WebhookDispatcher(config, store, metrics, owner=owner)
    hooks = NodeWebhooks(dispatcher, gateway, store, _wall_ms)
    messaging.set_outbox(hooks.message_jobs)
    if isinstance(gateway, PresenceSource):
        gateway.add_presence_listener(hooks.on_presence)
    return hooks


def _deadline_timer(
    settings: Settings, store: Store, cards: CardService, metrics: Metrics, owner: str
) -> JobWorker:
    """This node's timer over every node's card deadlines (``job_lease``, ``job_poll``)."""
    config = WorkerConfig(
        kind=DEADLINE_KIND,
        owner=owner,
        lease=settings.job_lease,
        batch=DEADLINES_PER_ROUND,
        attempts=DEADLINE_ATTEMPTS,
        backoff=1.0,
        max_backoff=60.0,
        poll=settings.job_poll,
    )
    return deadline_worker(
        store,
        config,
        cards.fire,
        clock_ms=_wall_ms,
        count=metrics.job_result,
        gauge=metrics.job_counts,
    )


def _warn_deprecated(settings: Settings) -> None:
    """``cards_db_file`` only names an old file to import once (see the setting);
    ``ws_public_addr`` is the old name of ``ws_public_url``."""
    if settings.ws_public_addr:
        log.warning("ws_public_addr is deprecated: rename it to ws_public_url")
    if settings.cards_db_file != DEFAULT_CARDS_DB:
        log.warning(
            "cards_db_file is deprecated: card deadlines and the card secret live in the store "
            "now; %s is only imported once at start if it exists. Remove the setting.",
            settings.cards_db_path,
        )


def _listen(host: str, port: int, setting: str, reuse_port: bool = False) -> socket.socket:
    """A listening socket for an HTTP server, bound here (not by uvicorn) so that a taken
    port is a start-up error naming ``setting`` instead of uvicorn's exit."""
    try:
        return _bind(host, port, reuse_port)
    except OSError as exc:
        raise listen_error(exc, host, port, setting) from exc


def _bind(host: str, port: int, reuse_port: bool = False) -> socket.socket:
    """A listening TCP socket on the first address of ``host`` (``reuse_port``: shared with
    other processes that set it too)."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
        sock.listen(2048)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def _bus(settings: Settings, metrics: Metrics) -> Bus:
    """The bus ``bus_url`` names; Redis is imported only when asked for, so the embedded
    default needs neither a Redis server nor its client library at run time."""
    if settings.bus_url.startswith("memory:"):
        metrics.bus_up.set(1)  # in process: always reaches every node there is
        return MemoryBus()
    from magpie.bus.redis import RedisBus, RedisBusConfig

    config = RedisBusConfig(
        url=settings.bus_url,
        cluster_name=settings.cluster_name,
        node_id=0,  # assigned once leased
        presence_ttl=settings.bus_presence_ttl,
        queue_max=settings.bus_queue_max,
        timeout=settings.bus_timeout,
    )
    return RedisBus(config, metrics)


def _wall_ms() -> int:
    return time.time_ns() // 1_000_000


def _cmd_sender(messaging: Messaging, trace: DeliveryTrace | None = None) -> CmdSender:
    """ext's CMDs through the business send path: sync-once, no red dot; online-only
    (no-persist) unless persisted (spec §4.1). Each sent CMD is noted in the delivery trace
    (which change it announced), so the acknowledgements of a change can be found."""

    async def send(cmd: Cmd) -> bool:
        flags = Flags.SYNC_ONCE if cmd.persisted else Flags.SYNC_ONCE | Flags.NO_PERSIST
        request = SendRequest(
            from_uid=cmd.from_uid,
            channel_id=cmd.channel_id,
            channel_type=cmd.channel_type,
            payload=cmd.payload,
            client_msg_no=uuid.uuid4().hex + "0",
            flags=flags,
            from_api=True,
            subscribers=cmd.subscribers,
        )
        result = await messaging.send(request)
        if result.reason is not ReasonCode.SUCCESS:
            return False
        if trace is not None:
            _note_cmd(trace, cmd, result.message_id)
        return True

    return send


def _note_cmd(trace: DeliveryTrace, cmd: Cmd, message_id: int) -> None:
    """Record which change ``cmd`` announced, under the channel id its messages are stored
    with (a person channel's CMD is sent from the peer to each party)."""
    param = json.loads(cmd.payload).get("param") or {}
    if "extra_version" not in param:  # not a syncMessageExtra CMD
        return
    channel_id = cmd.channel_id
    if cmd.channel_type == PERSON:
        channel_id = fake_channel_id(cmd.from_uid, cmd.channel_id)
    trace.cmd_sent(channel_id, cmd.channel_type, int(param["extra_version"]), message_id)


def _ext_service(
    s: Settings, store: Store, messaging: Messaging, metrics: Metrics, trace: DeliveryTrace
) -> ExtService:
    limits = PatchLimits(
        max_patch_bytes=s.ext_max_patch_bytes,
        max_extra_bytes=s.ext_max_extra_bytes,
        max_keys=s.ext_max_keys,
        max_depth=s.ext_max_depth,
    )
    return ExtService(
        store,
        Notifier(_cmd_sender(messaging, trace), window=s.ext_coalesce_ms / 1000),
        limits=limits,
        sync_max_limit=s.ext_sync_max_limit,
        max_future_ms=s.ext_max_future_ms,
        clock_ms=_wall_ms,
        on_result=metrics.ext_result,
    )


def _conversation(
    s: Settings, store: Store, messaging: Messaging, ext: ExtService, access: AccessControl
) -> Conversation:
    """The conversation features' services (``docs/conversation.md``)."""
    send = _cmd_sender(messaging)
    typing = Typing(
        store,
        send,
        min_interval=s.typing_min_interval_ms / 1000,
        expire=s.typing_expire_ms / 1000,
    )
    reactions = Reactions(
        store,
        Notifier(send, window=s.ext_coalesce_ms / 1000, what=REACTION_CMD),
        max_emoji=s.reaction_max_emoji,
    )
    reading = Reading(store, ext, send, clock_ms=_wall_ms)
    messaging.set_rules(Rules(access, store, send))
    files = Files(
        store,
        LocalDiskStorage(Path(s.data_dir) / "files"),
        max_bytes=s.upload_max_bytes,
        clock_ms=_wall_ms,
    )
    return Conversation(
        typing=typing,
        reactions=reactions,
        reading=reading,
        reminders=Reminders(store, send),
        files=files,
    )


def _gateway_config(s: Settings) -> GatewayConfig:
    return GatewayConfig(
        host=s.host,
        port=s.ws_port,
        tcp_port=s.tcp_port if s.tcp_enabled else None,
        token_auth=s.token_auth,
        connect_timeout=s.connect_timeout,
        idle_timeout=s.idle_timeout,
        retry_interval=s.retry_interval,
        retry_attempts=s.retry_attempts,
        order_hold=s.order_hold,
        # Only a bus between nodes has several publishers per channel (gateway/order.py).
        order_hold_unknown=not s.bus_url.startswith("memory:"),
        outbound=OutboundLimits(
            max_frames=s.outbound_max_frames,
            max_bytes=s.outbound_max_bytes,
            max_inflight=s.max_inflight,
        ),
        limits=Limits(
            max_remaining_length=s.max_packet_bytes,
            max_payload=min(s.max_payload_bytes * 2, s.max_packet_bytes),
        ),
    )
