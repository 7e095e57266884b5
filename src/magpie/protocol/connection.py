"""Sans-I/O state machine of one WuKongIM connection, for either end.

Bytes in, packets out (:meth:`Connection.receive_data`); packets in, bytes out
(:meth:`Connection.send`). Nothing here touches a socket or a clock; crypto is left to
:mod:`magpie.protocol.crypto` (the state machine only checks *which* packet may go *when*).

The conversation (``shared/spec/wukongim-v2.md`` §1.3, §3, §10), as one table for both ends::

    AWAIT_CONNECT --CONNECT(c)--> AWAIT_CONNACK --CONNACK(s, success)--> ESTABLISHED
                                                --CONNACK(s, failure)--> CLOSED
    ESTABLISHED: c sends SEND RECVACK PING SUB; s sends SENDACK RECV PONG SUBACK
    ESTABLISHED --DISCONNECT(s)--> CLOSED

:data:`TRANSITIONS` is keyed by the role of the packet's *sender*, so the same table serves
the server (which sends ``s`` packets and receives ``c`` packets) and the client. A missing
key is an error: :class:`~magpie.errors.LocalProtocolError` when we try to send it,
:class:`~magpie.errors.UnexpectedPacket` when the peer sent it. A server never sends PING:
SDK 1.0.4's reassembler treats a lone ``0x70`` as a partial header and corrupts the next frame
(§3), so PING is a client-only packet here.

Reason codes carried by :class:`~magpie.errors.UnexpectedPacket` (what to answer with):
``AUTH_FAIL`` when a server gets anything but one CONNECT before it has answered it (the
connection is not authenticated; a failing CONNACK can still be sent from AWAIT_CONNACK),
``PAYLOAD_DECODE_ERROR`` in every other case (a second CONNECT, a server-only packet from a
client, anything after the conversation closed).

After the peer's protocol error (decode error or unexpected packet) the connection is
*failed*: :meth:`~Connection.receive_data` raises the same kind of error again, and the only
packet we may still send is one that closes the conversation (a failing CONNACK or a
DISCONNECT), so the reason can be told to the peer. Once CLOSED, every later call raises
:class:`~magpie.errors.LocalProtocolError` (the caller should have closed the socket); a
packet that follows a closing one in the *same* chunk of data is the peer's
:class:`~magpie.errors.UnexpectedPacket`.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from enum import Enum
from types import MappingProxyType

from magpie.errors import LocalProtocolError, RemoteProtocolError, UnexpectedPacket
from magpie.protocol.codec import Decoder, encode
from magpie.protocol.crypto import RecvSealer, SessionCipher, seal_recv
from magpie.protocol.limits import DEFAULT_LIMITS, Limits
from magpie.protocol.packets import (
    LATEST_VERSION,
    Connack,
    Connect,
    Packet,
    PacketType,
    ReasonCode,
)

__all__ = ["ALLOWED", "INITIAL_VERSION", "TRANSITIONS", "Connection", "Role", "State"]

#: Protocol version assumed before negotiation: what SDK 1.0.4 speaks (§1.4).
INITIAL_VERSION = 2


class Role(Enum):
    """Which end of the connection this object plays."""

    SERVER = "server"
    CLIENT = "client"

    @property
    def peer(self) -> Role:
        """The other end."""
        return Role.CLIENT if self is Role.SERVER else Role.SERVER


class State(Enum):
    """Where the conversation is; shared by both ends (see the module docstring)."""

    AWAIT_CONNECT = "await_connect"  # nothing exchanged yet
    AWAIT_CONNACK = "await_connack"  # CONNECT sent, CONNACK not yet
    ESTABLISHED = "established"  # CONNACK success: messages flow
    CLOSED = "closed"  # CONNACK failure or DISCONNECT: nothing more


_T = PacketType
_S = State

#: Packet types each role may ever send (spec §1.3 "Dir"); PING is client-only (§3).
ALLOWED: Mapping[Role, frozenset[PacketType]] = MappingProxyType(
    {
        Role.CLIENT: frozenset({_T.CONNECT, _T.SEND, _T.RECVACK, _T.PING, _T.SUB}),
        Role.SERVER: frozenset(
            {_T.CONNACK, _T.SENDACK, _T.RECV, _T.PONG, _T.DISCONNECT, _T.SUBACK}
        ),
    }
)


def _transitions() -> dict[tuple[Role, State, PacketType], State]:
    table = {
        (Role.CLIENT, _S.AWAIT_CONNECT, _T.CONNECT): _S.AWAIT_CONNACK,
        # A CONNACK whose reason is not SUCCESS goes to CLOSED instead (§3: ConnectFail).
        (Role.SERVER, _S.AWAIT_CONNACK, _T.CONNACK): _S.ESTABLISHED,
        (Role.SERVER, _S.ESTABLISHED, _T.DISCONNECT): _S.CLOSED,
    }
    for role, kinds in ALLOWED.items():
        for kind in kinds - {_T.CONNECT, _T.CONNACK, _T.DISCONNECT}:
            table[role, _S.ESTABLISHED, kind] = _S.ESTABLISHED
    return table


#: ``(sender role, state, packet type) -> next state``; a missing key is not allowed.
TRANSITIONS: Mapping[tuple[Role, State, PacketType], State] = MappingProxyType(_transitions())

_UNAUTHENTICATED = frozenset({_S.AWAIT_CONNECT, _S.AWAIT_CONNACK})


def _by_state() -> dict[tuple[Role, State], dict[PacketType, State]]:
    """:data:`TRANSITIONS` split per (sender, state), so that checking one packet hashes only
    its (int) type: hashing a plain :class:`Enum` member runs Python code."""
    tables: dict[tuple[Role, State], dict[PacketType, State]] = {
        (role, state): {} for role in Role for state in State
    }
    for (role, state, kind), following in TRANSITIONS.items():
        tables[role, state][kind] = following
    return tables


_BY_STATE = _by_state()

# A whole RECVACK frame as the fast path sees it: header byte, one length byte, the body.
_RECVACK_FRAME_V5 = struct.Struct(">BBqI")  # message_id i64, message_seq u32 (version ≤ 5)
_RECVACK_FRAME_V6 = struct.Struct(">BBqQ")  # message_seq u64 from version 6
_RECVACK_KIND = int(PacketType.RECVACK)


class Connection:
    """One end of one WuKongIM connection: checks and frames every packet both ways.

    ``limits`` bound what the peer may send (and what we agree to encode). The protocol
    version starts at :data:`INITIAL_VERSION`; a server adopts
    ``min(CONNECT.version, LATEST_VERSION)``, a client the version of the CONNECT it sent,
    lowered to CONNACK's ``server_version`` if the server reports an older one (§1.4).
    """

    __slots__ = (
        "_ack_layout",
        "_decoder",
        "_error",
        "_in",
        "_limits",
        "_out",
        "_role",
        "_state",
        "_version",
    )

    def __init__(self, role: Role, limits: Limits = DEFAULT_LIMITS) -> None:
        self._role = role
        self._limits = limits
        self._state = State.AWAIT_CONNECT
        self._out = _BY_STATE[role, self._state]  # what we may send now
        self._in = _BY_STATE[role.peer, self._state]  # what the peer may send now
        self._version = INITIAL_VERSION
        self._decoder = Decoder(version=INITIAL_VERSION, limits=limits)
        self._error: RemoteProtocolError | None = None
        self._ack_layout: struct.Struct | None = None

    @property
    def role(self) -> Role:
        """The end this object plays."""
        return self._role

    @property
    def state(self) -> State:
        """Where the conversation is."""
        return self._state

    @property
    def version(self) -> int:
        """The protocol version packets are encoded and decoded at."""
        return self._version

    @property
    def failed(self) -> bool:
        """Whether the peer broke the protocol (only a closing packet may still be sent)."""
        return self._error is not None

    def receive_data(self, data: bytes) -> list[Packet]:
        """Decode ``data`` (any cut of the byte stream) and return the complete packets.

        Raises a :class:`~magpie.errors.RemoteProtocolError` subclass if the peer's bytes
        are malformed or too large or a packet is not allowed now; its ``reason`` is the
        code to answer with. Packets decoded earlier in the same call are dropped then.
        """
        self._check_open()
        if (error := self._error) is not None:
            raise type(error)(f"connection already failed: {error.message}", error.reason)
        try:
            packets = self._decoder.feed(data)
            for packet in packets:
                self._receive(packet)
        except RemoteProtocolError as exc:
            self._error = exc
            self._ack_layout = None
            raise
        return packets

    def receive_recvack(self, data: bytes) -> tuple[int, int, int] | None:
        """Fast path for a server's commonest packet, equivalent to :meth:`receive_data`.

        If ``data`` is exactly one well-formed RECVACK frame (minimal one-byte length, at the
        current version's layout) that :meth:`receive_data` would accept now, return its
        ``(message_id, message_seq, flag nibble)``. Otherwise return ``None`` and change
        nothing: the caller hands ``data`` to :meth:`receive_data`, which decodes it (or
        raises) as usual.
        """
        layout = self._ack_layout  # None unless a RECVACK may be received now (_fast_ack)
        if (
            layout is None
            or len(data) != layout.size
            or data[0] >> 4 != _RECVACK_KIND
            or data[1] != layout.size - 2
            or self._decoder.buffered
        ):
            return None
        header, _, message_id, message_seq = layout.unpack(data)
        return message_id, message_seq, header & 0x0F

    def _fast_ack(self) -> None:
        """Decide once per change of state, version or health whether :meth:`receive_recvack`
        may answer, and at which layout: a server's established, healthy connection whose
        limits admit a RECVACK body."""
        layout = _RECVACK_FRAME_V6 if self._version >= 6 else _RECVACK_FRAME_V5
        allowed = (
            self._role is Role.SERVER
            and self._state is State.ESTABLISHED
            and self._error is None
            and layout.size - 2 <= self._limits.max_remaining_length
        )
        self._ack_layout = layout if allowed else None

    def send(self, packet: Packet) -> bytes:
        """Check that we may send ``packet`` now and return its bytes.

        Raises :class:`~magpie.errors.LocalProtocolError` if the packet is not allowed for
        our role in this state, or cannot be encoded. The state changes only on success.
        """
        self._check_open()
        kind = getattr(packet, "packet_type", None)
        if not isinstance(kind, PacketType):
            raise LocalProtocolError(f"not a packet: {type(packet).__name__}")
        following = self._following(self._out, kind, packet)
        if following is None:
            raise LocalProtocolError(self._refusal(self._role, kind))
        if self._error is not None and following is not State.CLOSED:
            raise LocalProtocolError("after the peer's protocol error only a closing packet")
        version = self._outbound_version(packet)
        data = encode(packet, version, self._limits)
        self._set_version(version)
        if following is not self._state:
            self._set_state(following)
        return data

    def send_sealed_recv(self, sealer: RecvSealer, cipher: SessionCipher) -> bytes:
        """``send(seal_recv(cipher, sealer.recv))``, the bytes sealed by ``sealer`` (one
        message to many connections, :class:`~magpie.protocol.crypto.RecvSealer`).

        A RECV changes no state, so where :meth:`send` would accept it (a server's
        established connection) only the frame is built; anywhere else :meth:`send` decides
        and raises as usual.
        """
        if self._state is State.ESTABLISHED and self._role is Role.SERVER and self._error is None:
            return sealer.frame(cipher, self._version)
        return self.send(seal_recv(cipher, sealer.recv))

    def _check_open(self) -> None:
        if self._state is State.CLOSED:
            raise LocalProtocolError("the connection is closed")

    def _following(
        self, table: Mapping[PacketType, State], kind: PacketType, packet: Packet
    ) -> State | None:
        """The state after ``packet`` (of ``kind``) is sent, or ``None`` if not allowed;
        ``table`` is the sender's share of :data:`TRANSITIONS` for the current state."""
        following = table.get(kind)
        if isinstance(packet, Connack) and packet.reason_code != ReasonCode.SUCCESS:
            return State.CLOSED if following is not None else None
        return following

    def _refusal(self, sender: Role, kind: PacketType) -> str:
        if kind is PacketType.PING and sender is Role.SERVER:
            return "a server never sends PING: SDK 1.0.4 cannot parse a lone 0x70 (spec §3)"
        return f"{sender.value} may not send {kind.name} in state {self._state.name}"

    def _receive(self, packet: Packet) -> None:
        """Apply one packet from the peer to the state, or raise UnexpectedPacket."""
        following = self._following(self._in, packet.packet_type, packet)
        if following is None:
            peer = self._role.peer
            raise UnexpectedPacket(self._refusal(peer, packet.packet_type), self._reason())
        if isinstance(packet, Connect):
            self._set_version(min(packet.version, LATEST_VERSION))
        elif isinstance(packet, Connack) and 0 < packet.server_version < self._version:
            self._set_version(packet.server_version)
        if following is not self._state:
            self._set_state(following)

    def _set_state(self, state: State) -> None:
        self._state = state
        self._out = _BY_STATE[self._role, state]
        self._in = _BY_STATE[self._role.peer, state]
        self._fast_ack()

    def _reason(self) -> ReasonCode:
        """The reason code to answer an unexpected packet with (module docstring)."""
        if self._role is Role.SERVER and self._state in _UNAUTHENTICATED:
            return ReasonCode.AUTH_FAIL
        return ReasonCode.PAYLOAD_DECODE_ERROR

    def _outbound_version(self, packet: Packet) -> int:
        """A CONNECT is encoded at (and fixes) its own version; the rest at the session's."""
        if not isinstance(packet, Connect):
            return self._version
        if not 1 <= packet.version <= LATEST_VERSION:
            raise LocalProtocolError(f"cannot speak protocol version {packet.version}")
        return packet.version

    def _set_version(self, version: int) -> None:
        self._decoder.version = version
        if version != self._version:
            self._version = version
            self._fast_ack()
