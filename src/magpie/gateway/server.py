"""The WebSocket gateway: WuKongIM clients connect, send and receive here (spec §1–§3).

Per connection: CONNECT within ``connect_timeout`` -> token check -> X25519 + AES -> CONNACK;
then SEND -> :class:`~magpie.core.messaging.Messaging` -> SENDACK, RECVACK stops retries, PING ->
PONG. Deliveries arrive as bus events after commit and are written as one RECV per WebSocket
message, encrypted with each connection's own key. The server never sends PING (spec §3).
"""

from __future__ import annotations

import asyncio
import contextlib
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
from magpie.errors import BadRequest, CryptoError, LocalProtocolError, RemoteProtocolError
from magpie.gateway.session import OutboundLimits, Session
from magpie.gateway.ws import ConnectionClosed, WsConn, start_server
from magpie.metrics import Metrics
from magpie.protocol.connection import Connection, Role
from magpie.protocol.crypto import (
    KeyPair,
    SessionCipher,
    derive_aes_key,
    new_salt,
    open_send,
    seal_recv,
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
from magpie.store.interface import Store

__all__ = ["Gateway", "GatewayConfig", "PresenceListener"]

PresenceListener = Callable[[str, int, bool, str], None]

log = logging.getLogger(__name__)

_MASTER = 1
_KICK_REASON = "login in other device"
_CLOSE_POLICY = 1008
_CLOSE_GOING_AWAY = 1001
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
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self._store = store
        self._access = access
        self._bus = bus
        self._messaging = messaging
        self._metrics = metrics
        # labels() locks and looks the child up on every call; the child never changes.
        self._client_messages = metrics.messages.labels(origin="client")
        # Frames, bytes and acks are plain int fields, exported at scrape time (no lock).
        self._traffic = metrics.traffic("ws")
        self._clock = clock
        self._sessions: dict[str, list[Session]] = {}
        self._conn_ids = itertools.count(1)
        self._retries: deque[tuple[float, Session, int]] = deque()
        self._tasks: list[asyncio.Task[None]] = []
        self._server: object | None = None
        self.port = 0
        self._presence_listeners: list[PresenceListener] = []
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
        """Listen and start the retry and idle sweepers."""
        server = await start_server(
            self._handle,
            self.config.host,
            self.config.port,
            self.config.limits.max_remaining_length + 8,
        )
        self._server = server
        self.port = next(iter(server.sockets)).getsockname()[1]
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._retry_loop()), loop.create_task(self._idle_loop())]

    async def stop(self) -> None:
        """Stop accepting, close every connection with 1001 (clients reconnect elsewhere)."""
        for task in self._tasks:
            task.cancel()
        server = self._server
        if server is not None:
            server.close(close_connections=False)  # type: ignore[attr-defined]
        closing = [s.ws.close(_CLOSE_GOING_AWAY, "server shutting down") for s in self.sessions()]
        await asyncio.gather(*closing, return_exceptions=True)
        if server is not None:
            server.close()  # type: ignore[attr-defined]
            await server.wait_closed()  # type: ignore[attr-defined]

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

    # connection handling --------------------------------------------------------------------

    async def _handle(self, ws: WsConn) -> None:
        conn = Connection(Role.SERVER, self.config.limits)
        session = Session(
            ws,
            conn,
            f"c{next(self._conn_ids)}",
            self.config.outbound,
            self._slow_consumer,
            self._traffic,
        )
        try:
            if await self._handshake(session):
                await self._serve(session)
        except ConnectionClosed:
            pass
        except RemoteProtocolError as exc:
            session.log.info("protocol violation: %s", exc.message)
            await _quiet_close(ws, _CLOSE_POLICY, exc.code)
        except Exception:
            session.log.exception("connection failed")
            await _quiet_close(ws, 1011, "internal error")
        finally:
            self._unregister(session)

    async def _handshake(self, session: Session) -> bool:
        try:
            data = await asyncio.wait_for(session.ws.recv(), self.config.connect_timeout)
            session.traffic.count_in(data)
        except TimeoutError:
            session.log.info("no CONNECT within %.1f s", self.config.connect_timeout)
            await _quiet_close(session.ws, _CLOSE_POLICY, "connect timeout")
            return False
        packets = session.conn.receive_data(_as_bytes(data))
        if len(packets) != 1 or not isinstance(packets[0], Connect):
            raise RemoteProtocolError("expected exactly one CONNECT first")
        return await self._accept(session, packets[0])

    async def _accept(self, session: Session, connect: Connect) -> bool:
        reason, device_level = await self._authenticate(connect)
        now_ms = time.time_ns() // 1_000_000
        if reason is not ReasonCode.SUCCESS:
            self._metrics.connects.labels(result=reason.name.lower()).inc()
            session.log.info(
                "CONNECT refused (%s) uid=%r device_flag=%d remote=%s",
                reason.name.lower(),
                connect.uid[:64],
                connect.device_flag,
                session.ws.remote,
            )
            frame = session.conn.send(Connack(0, reason, "", ""))
            await _send_now(session, frame)
            await _quiet_close(session.ws, _CLOSE_POLICY, "connect refused")
            return False
        keys = KeyPair.generate()
        salt = new_salt()
        try:
            aes_key = derive_aes_key(keys, connect.client_key)
        except CryptoError as exc:
            frame = session.conn.send(Connack(0, exc.reason, "", ""))
            await _send_now(session, frame)
            await _quiet_close(session.ws, _CLOSE_POLICY, "bad client key")
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
        session.last_seen = self._clock()
        session.push(session.conn.send(ack))
        await self._register(session)
        return True

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

    async def _serve(self, session: Session) -> None:
        recv = session.ws.recv
        conn = session.conn
        clock = self._clock
        inflight = session.inflight
        traffic = self._traffic
        while not session.closed:
            data = await recv()
            session.last_seen = clock()
            traffic.frames_in += 1
            traffic.bytes_in += len(data)
            # Hot path: one RECVACK per delivered message, recognised without building packet
            # objects or awaiting; anything else (malformed included) takes the normal path.
            ack = conn.receive_recvack(data) if type(data) is bytes else None
            if ack is not None:
                message_id, message_seq, flags = ack
                traffic.acks += 1
                inflight.pop(message_id, None)
                if flags & _PERSISTED_CMD_MASK == _SYNC_ONCE:
                    await self._ack_queue(session, message_seq)
                continue
            for packet in conn.receive_data(_as_bytes(data)):
                await self._dispatch(session, packet)

    async def _dispatch(self, session: Session, packet: Packet) -> None:
        if type(packet) is Send:
            await self._on_send(session, packet)
        elif type(packet) is Recvack:
            await self._on_recvack(session, packet)
        elif isinstance(packet, Ping):
            session.push(session.conn.send(Pong()))
        elif isinstance(packet, Sub):
            ack = Suback(
                packet.sub_no,
                packet.channel_id,
                packet.channel_type,
                packet.action,
                ReasonCode.NOT_SUPPORT_CHANNEL_TYPE,
            )
            session.push(session.conn.send(ack))

    async def _on_send(self, session: Session, send: Send) -> None:
        started = time.perf_counter()
        cipher = session.cipher
        if cipher is None:  # unreachable: the state machine admits SEND only after CONNACK
            raise LocalProtocolError("SEND before the handshake finished")
        try:
            payload = open_send(cipher, send)
        except CryptoError as exc:
            self._ack(session, send, 0, 0, ReasonCode(exc.reason))
            return
        result = await self._messaging.send(
            SendRequest(
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
        )
        if result.reason is ReasonCode.SUCCESS:
            if not result.duplicate:
                self._client_messages.inc()
        else:
            self._metrics.send_refused.labels(reason=result.reason.name.lower()).inc()
        self._ack(session, send, result.message_id, result.message_seq, result.reason)
        self._metrics.send_latency.observe(time.perf_counter() - started)

    def _ack(self, session: Session, send: Send, message_id: int, seq: int, reason: int) -> None:
        # SENDACK echoes client_seq (the SDK matches on it alone) and the SEND's flags (§1.6).
        ack = Sendack(message_id, send.client_seq, seq, reason, flags=_ACK_FLAGS[send.flags])
        session.push(session.conn.send(ack))

    async def _on_recvack(self, session: Session, ack: Recvack) -> None:
        self._traffic.acks += 1
        session.inflight.pop(ack.message_id, None)
        if ack.flags & _PERSISTED_CMD_MASK == _SYNC_ONCE:
            await self._ack_queue(session, ack.message_seq)

    async def _ack_queue(self, session: Session, message_seq: int) -> None:
        # A RECVACK of a persisted command (SYNC_ONCE, not NO_PERSIST): the store is touched
        # only when a master device acknowledges it.
        if session.device_level == _MASTER and message_seq > 0:
            await self._store.ack_queue(session.uid, message_seq)

    # delivery -------------------------------------------------------------------------------

    def on_event(self, event: BusEvent) -> None:
        """Bus handler: deliver a committed message or kick connections on this node."""
        if isinstance(event, Delivery):
            self._deliver(event)
        else:
            self._kick(event)

    def _deliver(self, event: Delivery) -> None:
        msg = event.message
        # Everything that does not depend on the receiving connection is computed once.
        flags = _RECV_FLAGS[msg.flags & _RECV_FLAG_MASK]
        own_flags = _RECV_FLAGS[msg.flags & _OWN_FLAG_MASK]  # no red dot for own devices
        setting = Setting.RECEIPT if msg.setting & _RECEIPT else Setting.NONE
        track = not msg.flags & _NO_PERSIST and self.config.retry_attempts > 0
        # retry_interval is constant, so due times are appended in order: a FIFO suffices.
        due = self._clock() + self.config.retry_interval if track else 0.0
        person = msg.channel_type == PERSON
        sessions = self._sessions
        queue_seqs = event.queue_seqs
        exclude = event.exclude_conn
        deliver_one = self._deliver_one
        retry_due = due if track else None
        # Outside person channels without per-recipient queue seqs, a RECV depends on the
        # recipient only through the red-dot flag: build the two variants once, lazily.
        shared = not person and not queue_seqs
        recv_other: Recv | None = None
        recv_own: Recv | None = None
        written = 0
        for uid in event.recipients:
            group = sessions.get(uid)
            if not group:
                continue
            own = uid == msg.from_uid
            recv = (recv_own if own else recv_other) if shared else None
            if recv is None:
                recv = Recv(
                    setting,
                    "",
                    msg.from_uid,
                    peer_of(msg.channel_id, uid) if person else msg.channel_id,
                    msg.channel_type,
                    msg.client_msg_no,
                    msg.message_id,
                    queue_seqs.get(uid, msg.message_seq) if queue_seqs else msg.message_seq,
                    msg.timestamp,
                    msg.payload,
                    own_flags if own else flags,
                )
                if shared:
                    if own:
                        recv_own = recv
                    else:
                        recv_other = recv
            if len(group) == 1:
                session = group[0]
                if session.conn_id != exclude:
                    written += deliver_one(session, recv, retry_due)
                continue
            for session in tuple(group):
                if session.conn_id != exclude:
                    written += deliver_one(session, recv, retry_due)
        self._metrics.deliveries.inc(written)

    def _deliver_one(self, session: Session, recv: Recv, due: float | None) -> int:
        """Seal ``recv`` with the session's key and queue it; 1 if written. ``due`` is when
        to resend it if unacked, or None for a message that is not retried."""
        cipher = session.cipher
        if cipher is None or session.closed:
            return 0
        frame = session.conn.send(seal_recv(cipher, recv))
        if not session.push(frame):
            return 0
        if due is not None:
            if not session.track(recv.message_id, frame):
                session.log.info("too many unacked messages; closing so the client resyncs")
                self._slow_consumer(session)
                return 1
            self._retries.append((due, session, recv.message_id))
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
        while retries and retries[0][0] <= now:
            _, session, message_id = retries.popleft()
            pending = session.inflight.get(message_id)
            if pending is None or session.closed:
                continue
            if pending.attempts >= self.config.retry_attempts:
                del session.inflight[message_id]
                continue
            pending.attempts += 1
            self._metrics.retries.inc()
            session.push(pending.frame)
            retries.append((now + self.config.retry_interval, session, message_id))

    async def _idle_loop(self) -> None:
        tick = min(5.0, self.config.idle_timeout / 4)
        while True:
            await asyncio.sleep(tick)
            deadline = self._clock() - self.config.idle_timeout
            for session in [s for s in self.sessions() if s.last_seen < deadline]:
                session.log.info("idle timeout")
                session.close_soon(_CLOSE_GOING_AWAY, "idle timeout")
                self._unregister(session)


async def _send_now(session: Session, frame: bytes) -> None:
    """Write a handshake frame and wait for it (before the session's queue is in use)."""
    await session.ws.send(frame)
    session.traffic.count_out(frame)


def _as_bytes(data: bytes | str) -> bytes:
    if isinstance(data, str):
        raise RemoteProtocolError("WuKongIM packets travel in binary WebSocket messages")
    return data


async def _quiet_close(ws: WsConn, code: int, reason: str) -> None:
    with contextlib.suppress(Exception):
        await ws.close(code, reason)
