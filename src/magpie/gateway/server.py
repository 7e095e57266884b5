"""The gateway: WuKongIM clients connect, send and receive here (spec §1–§3).

Two transports carry the same packets to the same code: WebSocket (``ws_port``) and plain TCP
(``tcp_port``), both behind :mod:`magpie.gateway.wire`. Per connection, callback-driven:

    AWAIT_CONNECT --bytes, one CONNECT--> AUTHENTICATING --CONNACK success--> ESTABLISHED
        | connect timer fires / protocol error            | refused / bad key
        v                                                  v
      CLOSED <------------------------------------------ CLOSED

CONNECT within ``connect_timeout`` -> token check -> X25519 + AES -> CONNACK (a packet the
client completes before CONNACK is a protocol violation, as the state machine says); then, in
the read callback: RECVACK stops retries,
PING -> PONG, SUB -> SUBACK, all without leaving the callback; a SEND (and a master device's
RECVACK of a persisted command) is queued as work that awaits the store, done in arrival order
by one task per busy session: SEND -> :class:`~magpie.core.messaging.Messaging` -> SENDACK.
Deliveries arrive as bus events after commit and are written as one RECV per packet (one
WebSocket message each), encrypted with each connection's own key. The server never sends
PING (spec §3).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from magpie.bus.interface import Bus, BusEvent, Delivery, Kick
from magpie.core.access import AccessControl
from magpie.core.channels import validate_uid
from magpie.core.messaging import Messaging, SendRequest
from magpie.domain.channels import PERSON, peer_of
from magpie.errors import (
    BadRequest,
    CryptoError,
    LocalProtocolError,
    RemoteProtocolError,
    StoreError,
)
from magpie.gateway.admission import client_address
from magpie.gateway.order import ChannelOrder
from magpie.gateway.session import OutboundLimits, Phase, Session
from magpie.gateway.tcp import start_tcp_server
from magpie.gateway.trace import DEFAULT_TRACE_CAPACITY, DeliveryTrace
from magpie.gateway.wire import ADMIT_ALL, Admission, Wire
from magpie.gateway.ws import start_ws_server
from magpie.guard import Defences, address_key
from magpie.metrics import Metrics, Traffic
from magpie.protocol.connection import Connection, Role
from magpie.protocol.crypto import (
    KeyPair,
    RecvSealer,
    SessionCipher,
    derive_aes_key,
    new_salt,
    open_send,
)
from magpie.protocol.limits import Limits
from magpie.protocol.packets import (
    LATEST_VERSION,
    Connack,
    Connect,
    Disconnect,
    Flags,
    Packet,
    Ping,
    Pong,
    ReasonCode,
    Recv,
    Recvack,
    Send,
    Sendack,
    Setting,
    Sub,
    Suback,
)
from magpie.store.interface import Store, StoredMessage

__all__ = ["Gateway", "GatewayConfig", "PresenceListener"]

PresenceListener = Callable[[str, int, bool, str], None]

log = logging.getLogger(__name__)

_MASTER = 1
_KICK_REASON = "login in other device"
_CLOSE_POLICY = 1008
#: RFC 6455 registry: "Try Again Later" (a throttled CONNECT).
_CLOSE_TRY_AGAIN = 1013
_CLOSE_GOING_AWAY = 1001
_CLOSE_INTERNAL = 1011
#: Work items (SENDs) a session may have waiting before its socket is no longer read.
MAX_PENDING_WORK = 32
#: Seconds between sweeps of the orderer's idle channels (forgotten after two).
_ORDER_SWEEP = 60.0
#: How long :meth:`Gateway.stop` waits for closing handshakes.
_STOP_WAIT = 5.0
# Plain ints for flag tests in hot paths: IntFlag arithmetic runs Python code.
_NO_PERSIST = int(Flags.NO_PERSIST)
_SYNC_ONCE = int(Flags.SYNC_ONCE)
_PERSISTED_CMD_MASK = _SYNC_ONCE | _NO_PERSIST
#: The RECV flags a message keeps, and those for the sender's other devices (no red dot).
_RECV_FLAG_MASK = int(Flags.RED_DOT | Flags.SYNC_ONCE | Flags.NO_PERSIST)
_OWN_FLAG_MASK = int(Flags.SYNC_ONCE | Flags.NO_PERSIST)
_RECV_FLAGS = tuple(Flags(i) for i in range(_RECV_FLAG_MASK + 1))
_RECEIPT = int(Setting.RECEIPT)
#: SENDACK flags by SEND flag nibble: the same without DUP (§1.6).
_ACK_FLAGS = tuple(Flags(i & ~Flags.DUP) for i in range(16))


@dataclass(frozen=True, slots=True)
class GatewayConfig:
    """The gateway's share of the settings."""

    host: str
    port: int
    token_auth: bool
    connect_timeout: float
    idle_timeout: float
    retry_interval: float
    retry_attempts: int
    outbound: OutboundLimits
    limits: Limits
    #: The plain TCP listener's port (0: a free one); ``None``: no TCP listener.
    tcp_port: int | None = None
    #: Seconds a delivery above a channel's missing seq waits before the gap is read from
    #: the store (:mod:`magpie.gateway.order`).
    order_hold: float = 0.05
    #: Hold a channel's first delivery too (several nodes publish into one channel).
    order_hold_unknown: bool = False
    #: Share the listening ports with other worker processes (``SO_REUSEPORT``).
    reuse_port: bool = False


class Gateway:
    """Holds this node's client connections and delivers bus events to them."""

    def __init__(
        self,
        config: GatewayConfig,
        store: Store,
        bus: Bus,
        messaging: Messaging,
        metrics: Metrics,
        access: AccessControl,
        defences: Defences,
        clock: Callable[[], float] = time.monotonic,
        admission: Admission = ADMIT_ALL,
        trace: DeliveryTrace | None = None,
    ) -> None:
        self.config = config
        self.admission = admission
        #: Which devices acknowledged what, and when (a bounded ring; ``magpie admin``).
        self.trace = trace if trace is not None else DeliveryTrace(DEFAULT_TRACE_CAPACITY)
        self._record_ack = self.trace.record_ack  # bound once: the RECVACK hot path
        self._defences = defences
        self._send_bucket = defences.send
        self._store = store
        self._access = access
        self._bus = bus
        self._messaging = messaging
        self._metrics = metrics
        # labels() locks and looks the child up on every call; the child never changes.
        self._client_messages = metrics.messages.labels(origin="client")
        # Frames, bytes and acks are plain int fields, exported at scrape time (no lock).
        self._traffic_ws = metrics.traffic("ws")
        self._traffic_tcp = metrics.traffic("tcp")
        self._clock = clock
        self._sessions: dict[str, list[Session]] = {}
        self._conn_ids = itertools.count(1)
        #: (due, message_id, sessions that have not acknowledged it, resends so far), one
        #: entry per delivered message, in due order.
        self._retries: deque[tuple[float, int, list[Session], int]] = deque()
        self._tasks: list[asyncio.Task[None]] = []
        self._servers: list[asyncio.Server] = []
        #: Every open connection, authenticated or not (to close them all on stop).
        self._open: set[Session] = set()
        #: The SENDs of this node's connections under way: (uid, client_msg_no) -> conn id.
        #: A message the orderer fills from the store can go out before its own publication
        #: (which names the sending connection); this keeps it from the sender all the same.
        self._sending: dict[tuple[str, str], str] = {}
        self.port = 0
        self.tcp_port = 0
        self._presence_listeners: list[PresenceListener] = []
        #: Per-channel order of deliveries (held, filled from the store) before _deliver.
        self.order = ChannelOrder(
            self._deliver,
            self._read_gap,
            hold=config.order_hold,
            hold_unknown=config.order_hold_unknown,
            fetch_queue=self._read_queue_gap,
            online=self._sessions.__contains__,
        )
        self._order_accept = self.order.accept
        bus.subscribe(self.on_event)

    def add_presence_listener(self, listener: PresenceListener) -> None:
        """Call ``listener(uid, device_flag, online, conn_id)`` on every connect and
        disconnect of this node (``user.onlinestatus`` webhooks)."""
        self._presence_listeners.append(listener)

    def _presence(self, session: Session, online: bool) -> None:
        for listener in self._presence_listeners:
            try:
                listener(session.uid, session.device_flag, online, session.conn_id)
            except Exception:
                session.log.exception("presence listener failed")

    # lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        """Listen (WebSocket, and TCP if configured) and start the retry and idle sweepers."""
        cfg = self.config
        ws = await start_ws_server(
            self._open_ws,
            self.admission,
            cfg.host,
            cfg.port,
            max_frame_size=cfg.limits.max_remaining_length + 8,
            handshake_timeout=cfg.connect_timeout,
            reuse_port=cfg.reuse_port,
        )
        self._servers.append(ws)
        self.port = _bound_port(ws)
        if cfg.tcp_port is not None:
            tcp = await start_tcp_server(
                self._open_tcp, self.admission, cfg.host, cfg.tcp_port, reuse_port=cfg.reuse_port
            )
            self._servers.append(tcp)
            self.tcp_port = _bound_port(tcp)
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._retry_loop()),
            loop.create_task(self._idle_loop()),
            loop.create_task(self._order_sweep_loop()),
        ]

    async def stop(self) -> None:
        """Stop accepting, close every connection with 1001 (clients reconnect elsewhere)."""
        for task in self._tasks:
            task.cancel()
        await self.order.close()
        for server in self._servers:
            server.close()
        sessions = list(self._open)
        for session in sessions:
            session.close_soon(_CLOSE_GOING_AWAY, "server shutting down")
            self._unregister(session)
        workers = [s.worker for s in sessions if s.worker is not None]
        waits = [s.ws.wait_closed() for s in sessions]
        if workers or waits:
            await asyncio.wait(
                [asyncio.ensure_future(w) for w in (*workers, *waits)], timeout=_STOP_WAIT
            )
        for server in self._servers:
            await server.wait_closed()
        self._servers.clear()

    def queued_frames(self) -> int:
        """Frames waiting in the outbound queues of every session (a metrics probe)."""
        return sum(s.queued for s in self.sessions())

    def unacked(self) -> int:
        """Persisted RECVs written and not yet acknowledged (a metrics probe)."""
        return sum(len(s.inflight) for s in self.sessions())

    def scheduled_retries(self) -> int:
        """Entries of the retry schedule (a metrics probe)."""
        return len(self._retries)

    def sessions(self) -> Iterator[Session]:
        """Every authenticated session of this node."""
        for group in self._sessions.values():
            yield from group

    def online(self, uid: str) -> list[Session]:
        """The sessions of ``uid`` on this node."""
        return list(self._sessions.get(uid, ()))

    # connection handling (callbacks; see the module docstring) ------------------------------

    def _open_ws(self, wire: Wire) -> Session:
        """The WebSocket transport admitted a connection."""
        return self._open_session(wire, self._traffic_ws)

    def _open_tcp(self, wire: Wire) -> Session:
        """The TCP transport admitted a connection."""
        return self._open_session(wire, self._traffic_tcp)

    def _open_session(self, wire: Wire, traffic: Traffic) -> Session:
        """The session that handles a new connection's events."""
        conn = Connection(Role.SERVER, self.config.limits)
        conn_id = f"c{next(self._conn_ids)}"
        session = Session(
            wire, conn, conn_id, self.config.outbound, self._slow_consumer, traffic, events=self
        )
        loop = asyncio.get_running_loop()
        session.timer = loop.call_later(self.config.connect_timeout, self._connect_timeout, session)
        self._open.add(session)
        return session

    def _connect_timeout(self, session: Session) -> None:
        session.timer = None
        if session.phase is Phase.AWAIT_CONNECT:
            session.log.info("no CONNECT within %.1f s", self.config.connect_timeout)
            session.close_soon(_CLOSE_POLICY, "connect timeout")

    def session_data(self, session: Session, data: bytes) -> None:
        """Bytes from a client (the read callback)."""
        if session.phase is Phase.ESTABLISHED and not session.closed:
            # Hot path: one RECVACK per delivered message, recognised without building packet
            # objects (it cannot raise); anything else (malformed included) takes the
            # normal path below.
            session.last_seen = self._clock()
            ack = session.conn.receive_recvack(data)
            if ack is not None:
                traffic = session.traffic
                traffic.frames_in += 1
                traffic.bytes_in += len(data)
                traffic.acks += 1
                message_id, message_seq, flags = ack
                self._record_ack(
                    (message_id, session.uid, session.device_flag, session.device_id, _now_ms())
                )
                session.inflight.pop(message_id, None)
                if flags & _PERSISTED_CMD_MASK == _SYNC_ONCE:
                    self._queue_ack(session, message_seq)
                return
        if session.closed:
            return
        try:
            if session.phase is Phase.ESTABLISHED:
                self._established(session, data)
            elif session.phase is Phase.AWAIT_CONNECT:
                self._first_bytes(session, data)
            elif session.phase is Phase.AUTHENTICATING:
                self._early(session, data)
        except RemoteProtocolError as exc:
            self._violation(session, exc)
        except Exception:
            session.log.exception("connection failed")
            session.close_soon(_CLOSE_INTERNAL, "internal error")
            self._unregister(session)

    def session_invalid(self, session: Session, reason: str) -> None:
        """The transport got something that is not WuKongIM."""
        self._violation(session, RemoteProtocolError(reason))

    def session_lost(self, session: Session) -> None:
        """The socket is gone."""
        self._open.discard(session)
        self._unregister(session)
        if session.work:
            session.work.clear()  # no SENDACK can reach it; the client resends

    def _violation(self, session: Session, exc: RemoteProtocolError) -> None:
        session.log.info("protocol violation: %s", exc.message)
        session.close_soon(_CLOSE_POLICY, exc.code)
        self._unregister(session)

    def _first_bytes(self, session: Session, data: bytes) -> None:
        # Over TCP the CONNECT may arrive in pieces: wait for a whole packet. The state machine
        # refuses anything but one CONNECT first (and anything after it before CONNACK).
        session.traffic.count_in(data)
        packets = session.conn.receive_data(data)
        if not packets:
            return
        connect = packets[0]
        if type(connect) is not Connect:  # unreachable: the state machine raised
            raise RemoteProtocolError("expected a CONNECT first")
        if session.timer is not None:
            session.timer.cancel()
            session.timer = None
        session.phase = Phase.AUTHENTICATING
        session.worker = asyncio.get_running_loop().create_task(self._accept(session, connect))

    def _early(self, session: Session, data: bytes) -> None:
        # A client waits for CONNACK before it sends anything (it has no keys yet): a packet
        # completed now is refused by the state machine (raises), however the bytes were cut;
        # the start of one is kept by the decoder for after CONNACK.
        session.traffic.count_in(data)
        if session.conn.receive_data(data):  # unreachable: nothing is allowed before CONNACK
            raise RemoteProtocolError("a packet before CONNACK")

    def _established(self, session: Session, data: bytes) -> None:
        traffic = session.traffic
        traffic.frames_in += 1
        traffic.bytes_in += len(data)
        dispatch = self._dispatch
        for packet in session.conn.receive_data(data):
            dispatch(session, packet)

    def _dispatch(self, session: Session, packet: Packet) -> None:
        """One packet of an established session, in the read callback."""
        kind = type(packet)
        if kind is Send:
            self._queue_work(session, packet)  # type: ignore[arg-type]
        elif kind is Recvack:
            self._on_recvack(session, packet)  # type: ignore[arg-type]
        elif kind is Ping:
            session.push(session.conn.send(Pong()))
        elif kind is Sub:
            session.push(session.conn.send(_suback(packet)))  # type: ignore[arg-type]

    def _on_recvack(self, session: Session, ack: Recvack) -> None:
        session.traffic.acks += 1
        self.trace.ack(ack.message_id, session.uid, session.device_flag, session.device_id)
        session.inflight.pop(ack.message_id, None)
        if ack.flags & _PERSISTED_CMD_MASK == _SYNC_ONCE:
            self._queue_ack(session, ack.message_seq)

    def _queue_ack(self, session: Session, message_seq: int) -> None:
        # A RECVACK of a persisted command (SYNC_ONCE, not NO_PERSIST): the store is touched
        # only when a master device acknowledges it.
        if session.device_level == _MASTER and message_seq > 0:
            self._queue_work(session, message_seq)

    def _queue_work(self, session: Session, item: Send | int) -> None:
        work = session.work
        if work is None:
            work = session.work = deque()
        work.append(item)
        if session.worker is None:
            session.worker = asyncio.get_running_loop().create_task(self._work(session))
        elif len(work) >= MAX_PENDING_WORK:
            session.ws.pause_reading()

    async def _work(self, session: Session) -> None:
        """Do a session's queued work in arrival order; reading resumes once it is done."""
        work = session.work
        try:
            while work and not session.closed:
                item = work.popleft()
                if type(item) is int:
                    await self._ack_queue(session, item)
                else:
                    await self._on_send(session, item)  # type: ignore[arg-type]
        except Exception:
            session.log.exception("connection failed")
            session.close_soon(_CLOSE_INTERNAL, "internal error")
            self._unregister(session)
        finally:
            session.worker = None
            if not session.closed:
                session.ws.resume_reading()

    async def _accept(self, session: Session, connect: Connect) -> None:
        """The AUTHENTICATING phase, as a task: check the CONNECT and answer CONNACK."""
        try:
            if await self._handshake(session, connect) and not session.closed:
                session.phase = Phase.ESTABLISHED
                await self._register(session)
        except Exception:
            session.log.exception("connection failed")
            session.close_soon(_CLOSE_INTERNAL, "internal error")
            self._unregister(session)
        finally:
            if session.worker is asyncio.current_task():
                session.worker = None
            if session.work and session.worker is None and not session.closed:
                session.worker = asyncio.get_running_loop().create_task(self._work(session))

    async def _handshake(self, session: Session, connect: Connect) -> bool:
        handshake = session.ws.handshake
        ip = "" if handshake is None else address_key(client_address(self._defences, handshake))
        if not self._admit(session, self._throttled(ip, connect.uid)):
            return False
        try:
            reason, device_level = await self._authenticate(connect)
        except StoreError as exc:  # the store is down: the client retries later
            session.log.warning("CONNECT refused: %s", exc.message)
            reason, device_level = ReasonCode.SYSTEM_ERROR, 0
        now_ms = time.time_ns() // 1_000_000
        if session.closed:
            return False
        if reason is not ReasonCode.SUCCESS:
            if reason is ReasonCode.AUTH_FAIL:
                self._defences.auth_fail_ip.spend(ip)
                self._defences.auth_fail_uid.spend(connect.uid)
            self._metrics.connects.labels(result=reason.name.lower()).inc()
            session.log.info(
                "CONNECT refused (%s) uid=%r device_flag=%d remote=%s",
                reason.name.lower(),
                connect.uid[:64],
                connect.device_flag,
                session.ws.remote,
            )
            self._refuse(session, reason, "connect refused")
            return False
        if not self._admit(session, self._over_user_limits(connect, device_level)):
            return False
        keys = KeyPair.generate()
        salt = new_salt()
        try:
            aes_key = derive_aes_key(keys, connect.client_key)
        except CryptoError as exc:
            self._refuse(session, ReasonCode(exc.reason), "bad client key")
            return False
        session.cipher = SessionCipher(aes_key, salt.encode())
        session.uid = connect.uid
        session.device_flag = connect.device_flag
        session.device_id = connect.device_id
        session.device_level = device_level
        # The server version travels only to clients above version 3 (spec §1.4); the codec
        # leaves it out for older ones, so CONNACK stays 0x20 for SDK 1.0.4.
        ack = Connack(
            now_ms - connect.client_timestamp,
            ReasonCode.SUCCESS,
            keys.public_b64,
            salt,
            server_version=LATEST_VERSION,
        )
        # Presence first, so that every node's deliveries find this connection before its
        # client can sync; then CONNACK and the local registration with no await between
        # them, so nothing delivered here can precede the CONNACK on the wire.
        try:
            await self._bus.register(session.uid)
        except BaseException:
            self._bus.unregister(session.uid)  # register counted the connection already
            raise
        if session.closed:  # the socket went while presence was being registered
            self._bus.unregister(session.uid)
            return False
        session.last_seen = self._clock()
        session.push(session.conn.send(ack))
        return True

    def _throttled(self, ip: str, uid: str) -> str | None:
        """The rule refusing a CONNECT before its token is even checked: too many CONNECTs
        from the address, or too many failed tokens from it or against the uid."""
        d = self._defences
        if not d.connect_ip.take(ip):
            return "connect_rate_ip"
        if d.auth_fail_ip.empty(ip):
            return "auth_fail_ip"
        if d.auth_fail_uid.empty(uid):
            return "auth_fail_uid"
        return None

    def _over_user_limits(self, connect: Connect, level: int) -> str | None:
        """The rule refusing an authenticated CONNECT: the uid's connections on this node
        (a master device does not count the same-flag sessions it will kick), or its CONNECT
        rate (checked after the token, so nobody spends another user's budget)."""
        d = self._defences
        if d.ws_per_uid:
            group = self._sessions.get(connect.uid, ())
            if level == _MASTER:
                group = [s for s in group if s.device_flag != connect.device_flag]
            if len(group) >= d.ws_per_uid:
                return "conn_per_uid"
        if not d.connect_uid.take(connect.uid):
            return "connect_rate_uid"
        return None

    def _admit(self, session: Session, rule: str | None) -> bool:
        """Close a throttled CONNECT with 1013 (try again later) and no CONNACK: the JS SDK
        gives up for good on any failed CONNACK, but reconnects after a plain close."""
        if rule is None:
            return True
        self._defences.refused("ws", rule)
        session.log.info("CONNECT refused (%s); closing with 1013", rule)
        session.close_soon(_CLOSE_TRY_AGAIN, "try again later")
        return False

    def _refuse(self, session: Session, reason: ReasonCode, why: str) -> None:
        session.push(session.conn.send(Connack(0, reason, "", "")))
        session.close_soon(_CLOSE_POLICY, why)

    async def _authenticate(self, connect: Connect) -> tuple[ReasonCode, int]:
        """The CONNECT's verdict and the device level of its token (0 without one)."""
        try:
            validate_uid(connect.uid)
        except BadRequest:
            return ReasonCode.AUTH_FAIL, 0
        if not connect.client_key:
            return ReasonCode.CLIENT_KEY_IS_EMPTY, 0
        if not self.config.token_auth:
            # No token check, but a registered token still says whether this is a master.
            row = await self._store.get_token(connect.uid, connect.device_flag)
            return ReasonCode.SUCCESS, 0 if row is None else row.device_level
        row = await self._access.connect_token(connect.uid, connect.device_flag, connect.token)
        if row is None:
            return ReasonCode.AUTH_FAIL, 0
        return ReasonCode.SUCCESS, row.device_level

    async def _register(self, session: Session) -> None:
        self._sessions.setdefault(session.uid, []).append(session)
        self._metrics.connections.inc()
        self._metrics.connects.labels(result="success").inc()
        session.log.identify(session.uid, session.device_flag)
        session.log.info(
            "connected uid=%s device_flag=%d device_id=%s remote=%s",
            session.uid,
            session.device_flag,
            session.device_id,
            session.ws.remote,
        )
        self._presence(session, True)
        if session.device_level == _MASTER:
            kick = Kick(
                session.uid,
                session.device_flag,
                ReasonCode.CONNECT_KICK,
                _KICK_REASON,
                keep_conn=session.conn_id,
            )
            await self._bus.publish(kick)

    def _unregister(self, session: Session) -> None:
        session.closed = True
        group = self._sessions.get(session.uid)
        if group and session in group:
            group.remove(session)
            self._bus.unregister(session.uid)
            self._metrics.connections.dec()
            session.log.info(
                "disconnected uid=%s device_flag=%d remote=%s",
                session.uid,
                session.device_flag,
                session.ws.remote,
            )
            self._presence(session, False)
            if not group:
                del self._sessions[session.uid]
        session.inflight.clear()

    async def _on_send(self, session: Session, send: Send) -> None:
        if not self._send_bucket.take(session.uid):
            self._refuse_send(session, send)
            return
        session.refusals = 0
        started = time.perf_counter()
        cipher = session.cipher
        if cipher is None:  # unreachable: the state machine admits SEND only after CONNACK
            raise LocalProtocolError("SEND before the handshake finished")
        try:
            payload = open_send(cipher, send)
        except CryptoError as exc:
            self._ack(session, send, 0, 0, ReasonCode(exc.reason))
            return
        request = SendRequest(
            from_uid=session.uid,
            channel_id=send.channel_id,
            channel_type=send.channel_type,
            payload=payload,
            client_msg_no=send.client_msg_no,
            flags=send.flags,
            setting=int(send.setting),
            topic=send.topic,
            expire=send.expire,
            exclude_conn=session.conn_id,
        )
        key = (session.uid, send.client_msg_no)
        self._sending[key] = session.conn_id
        try:
            result = await self._messaging.send(request)
        except StoreError as exc:
            # Nothing was acknowledged: the client sends again with the same client_msg_no
            # (a commit whose answer was lost is then found by the dedupe, I2).
            session.log.warning("SEND failed, the store is unavailable: %s", exc.message)
            self._metrics.send_refused.labels(reason="system_error").inc()
            self._ack(session, send, 0, 0, ReasonCode.SYSTEM_ERROR)
            return
        finally:
            if self._sending.get(key) == session.conn_id:
                del self._sending[key]
        if result.reason is ReasonCode.SUCCESS:
            if not result.duplicate:
                self._client_messages.inc()
        else:
            self._metrics.send_refused.labels(reason=result.reason.name.lower()).inc()
        self._ack(session, send, result.message_id, result.message_seq, result.reason)
        self._metrics.send_latency.observe(time.perf_counter() - started)

    async def _ack_queue(self, session: Session, seq: int) -> None:
        """Advance the uid's offline-queue cursor (a master device's RECVACK); a store that
        is down leaves it where it was: the next acknowledgement moves it."""
        try:
            await self._store.ack_queue(session.uid, seq)
        except StoreError as exc:
            session.log.warning("queue cursor not advanced: %s", exc.message)

    def _refuse_send(self, session: Session, send: Send) -> None:
        """SENDACK with reason 22 (rate limit; nothing stored); after ``send_refusals_close``
        refusals in a row the connection is closed (policy)."""
        self._defences.refused("ws", "send_rate")
        self._ack(session, send, 0, 0, ReasonCode.RATE_LIMIT)
        session.refusals += 1
        limit = self._defences.send_refusals_close
        if limit and session.refusals >= limit and not session.closed:
            self._defences.refused("ws", "send_flood")
            session.log.warning("%d SENDs over the rate limit in a row: closing", limit)
            session.close_soon(_CLOSE_POLICY, "rate limit")
            self._unregister(session)

    def _ack(self, session: Session, send: Send, message_id: int, seq: int, reason: int) -> None:
        # SENDACK echoes client_seq (the SDK matches on it alone) and the SEND's flags (§1.6).
        ack = Sendack(message_id, send.client_seq, seq, reason, flags=_ACK_FLAGS[send.flags])
        session.push(session.conn.send(ack))

    # delivery -------------------------------------------------------------------------------

    def on_event(self, event: BusEvent) -> None:
        """Bus handler: deliver a committed message or kick connections on this node."""
        if isinstance(event, Delivery):
            self._order_accept(event)
        else:
            self._kick(event)

    async def _read_gap(
        self, channel_id: str, channel_type: int, first: int, end: int
    ) -> list[StoredMessage]:
        """The committed messages of a channel with ``first <= seq < end`` (a gap the
        orderer fills)."""
        found = await self._store.get_messages(
            channel_id, channel_type, start_seq=first, end_seq=end, limit=end - first, pull_mode=1
        )
        return [m for m in found if first <= m.message_seq < end]

    async def _read_queue_gap(
        self, uid: str, first: int, end: int
    ) -> list[tuple[int, StoredMessage]]:
        """The queued commands of ``uid`` with ``first <= queue seq < end`` (a gap the
        orderer fills; those already acknowledged are gone from the queue)."""
        found = await self._store.read_queue(uid, first - 1, end - first)
        return [(e.queue_seq, e.message) for e in found if first <= e.queue_seq < end]

    def _deliver(self, event: Delivery) -> None:
        msg = event.message
        # Everything that does not depend on the receiving connection is computed once: the
        # RECV, its encoding and its verify string (RecvSealer); per connection only the two
        # encryptions of §2.2/§2.3 remain.
        flags = _RECV_FLAGS[msg.flags & _RECV_FLAG_MASK]
        own_flags = _RECV_FLAGS[msg.flags & _OWN_FLAG_MASK]  # no red dot for own devices
        setting = Setting.RECEIPT if msg.setting & _RECEIPT else Setting.NONE
        track = not msg.flags & _NO_PERSIST and self.config.retry_attempts > 0
        # The sessions that got it and must acknowledge it: one retry entry per message.
        tracked: list[Session] | None = [] if track else None
        person = msg.channel_type == PERSON
        sessions = self._sessions
        queue_seqs = event.queue_seqs
        exclude = event.exclude_conn
        if not exclude and self._sending:  # filled from the store before its publication?
            exclude = self._sending.get((msg.from_uid, msg.client_msg_no), "")
        deliver_one = self._deliver_one
        limits = self.config.limits
        message_id = msg.message_id
        # Outside person channels without per-recipient queue seqs, a RECV depends on the
        # recipient only through the red-dot flag: prepare the two variants once, lazily.
        shared = not person and not queue_seqs
        other: RecvSealer | None = None
        own_devices: RecvSealer | None = None
        written = 0
        for uid in event.recipients:
            group = sessions.get(uid)
            if not group:
                continue
            own = uid == msg.from_uid
            sealer = (own_devices if own else other) if shared else None
            if sealer is None:
                recv = Recv(
                    setting,
                    "",
                    msg.from_uid,
                    peer_of(msg.channel_id, uid) if person else msg.channel_id,
                    msg.channel_type,
                    msg.client_msg_no,
                    message_id,
                    queue_seqs.get(uid, msg.message_seq) if queue_seqs else msg.message_seq,
                    msg.timestamp,
                    msg.payload,
                    own_flags if own else flags,
                )
                sealer = RecvSealer(recv, limits)
                if shared:
                    if own:
                        own_devices = sealer
                    else:
                        other = sealer
            if len(group) == 1:
                session = group[0]
                if session.conn_id != exclude:
                    written += deliver_one(session, sealer, message_id, tracked)
                continue
            for session in tuple(group):
                if session.conn_id != exclude:
                    written += deliver_one(session, sealer, message_id, tracked)
        if tracked:
            # retry_interval is constant, so due times are appended in order: a FIFO suffices.
            due = self._clock() + self.config.retry_interval
            self._retries.append((due, message_id, tracked, 0))
        self._metrics.deliveries.inc(written)

    def _deliver_one(
        self,
        session: Session,
        sealer: RecvSealer,
        message_id: int,
        tracked: list[Session] | None,
    ) -> int:
        """Seal the RECV with the session's key and queue it; 1 if written. ``tracked``
        collects the sessions that must acknowledge it (``None``: it is not retried)."""
        cipher = session.cipher
        if cipher is None or session.closed:
            return 0
        frame = session.conn.send_sealed_recv(sealer, cipher)
        if not session.push(frame):
            return 0
        if tracked is not None:
            if not session.track(message_id, frame):
                session.log.info("too many unacked messages; closing so the client resyncs")
                self._slow_consumer(session)
                return 1
            tracked.append(session)
        return 1

    def _kick(self, kick: Kick) -> None:
        for session in self.online(kick.uid):
            if session.conn_id == kick.keep_conn:
                continue
            if kick.device_flag is not None and session.device_flag != kick.device_flag:
                continue
            session.log.info("kicked: %s", kick.reason)
            session.push(session.conn.send(Disconnect(kick.reason_code, kick.reason)))
            session.close_soon(_CLOSE_POLICY, "kicked", delay=0.5)
            self._unregister(session)

    def _slow_consumer(self, session: Session) -> None:
        session.log.warning("slow consumer: closing")
        self._metrics.slow_consumers.inc()
        session.close_soon(_CLOSE_POLICY, "slow consumer")
        self._unregister(session)

    # background loops -----------------------------------------------------------------------

    async def _retry_loop(self) -> None:
        tick = min(1.0, self.config.retry_interval / 2)
        while True:
            await asyncio.sleep(tick)
            self._retry_due(self._clock())

    def _retry_due(self, now: float) -> None:
        retries = self._retries
        attempts_max = self.config.retry_attempts
        while retries and retries[0][0] <= now:
            _, message_id, sessions, attempts = retries.popleft()
            again: list[Session] = []
            for session in sessions:
                frame = session.inflight.get(message_id)
                if frame is None or session.closed:
                    continue
                if attempts >= attempts_max:
                    del session.inflight[message_id]
                    continue
                session.push(frame)
                again.append(session)
            if again:
                self._metrics.retries.inc(len(again))
                retries.append((now + self.config.retry_interval, message_id, again, attempts + 1))

    async def _order_sweep_loop(self) -> None:
        """Forget channels without a delivery for a minute or two (the orderer's state)."""
        while True:
            await asyncio.sleep(_ORDER_SWEEP)
            self.order.sweep()

    async def _idle_loop(self) -> None:
        tick = min(5.0, self.config.idle_timeout / 4)
        while True:
            await asyncio.sleep(tick)
            deadline = self._clock() - self.config.idle_timeout
            for session in [s for s in self.sessions() if s.last_seen < deadline]:
                session.log.info("idle timeout")
                session.close_soon(_CLOSE_GOING_AWAY, "idle timeout")
                self._unregister(session)


def _suback(sub: Sub) -> Suback:
    """Channel subscriptions (live streams) are not supported."""
    return Suback(
        sub.sub_no,
        sub.channel_id,
        sub.channel_type,
        sub.action,
        ReasonCode.NOT_SUPPORT_CHANNEL_TYPE,
    )


def _bound_port(server: asyncio.Server) -> int:
    return int(server.sockets[0].getsockname()[1])


def _now_ms() -> int:
    """Wall-clock milliseconds (the delivery trace's timestamps)."""
    return int(time.time() * 1000)
