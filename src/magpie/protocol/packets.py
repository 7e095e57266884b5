"""WuKongIM packets as frozen dataclasses (``shared/spec/wukongim-v2.md`` §1.3–§1.6).

A packet object is a plain value: it knows nothing about bytes. :mod:`magpie.protocol.codec`
turns packets into bytes and back for a given protocol version.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum, IntFlag

__all__ = [
    "LATEST_VERSION",
    "Connack",
    "Connect",
    "DeviceFlag",
    "Disconnect",
    "Flags",
    "Packet",
    "PacketType",
    "Ping",
    "Pong",
    "ReasonCode",
    "Recv",
    "Recvack",
    "Send",
    "Sendack",
    "Setting",
    "Sub",
    "Suback",
]

#: Highest protocol version this codec understands (spec §1.4).
LATEST_VERSION = 6


class PacketType(IntEnum):
    """High nibble of the fixed header (spec §1.3). EVENT (12) is deliberately absent:
    JS SDK 1.0.4 cannot decode it."""

    CONNECT = 1
    CONNACK = 2
    SEND = 3
    SENDACK = 4
    RECV = 5
    RECVACK = 6
    PING = 7
    PONG = 8
    DISCONNECT = 9
    SUB = 10
    SUBACK = 11


class Flags(IntFlag):
    """Low nibble of the fixed header for every packet but CONNACK (spec §1.2)."""

    NONE = 0
    NO_PERSIST = 0x1
    RED_DOT = 0x2
    SYNC_ONCE = 0x4
    DUP = 0x8


class Setting(IntFlag):
    """The setting byte of SEND, RECV and SUB, 2023 layout spoken by JS SDK 1.0.4 (spec §1.5)."""

    NONE = 0
    STREAM = 0x04
    TOPIC = 0x08
    NO_ENCRYPT = 0x10
    SIGNAL = 0x20
    NO_UPDATE_CONVERSATION = 0x40
    RECEIPT = 0x80


class ReasonCode(IntEnum):
    """Reason codes (spec §1.8); 24–29 arrived after SDK 1.0.4."""

    UNKNOWN = 0
    SUCCESS = 1
    AUTH_FAIL = 2
    SUBSCRIBER_NOT_EXIST = 3
    IN_BLACKLIST = 4
    CHANNEL_NOT_EXIST = 5
    USER_NOT_ON_NODE = 6
    SENDER_OFFLINE = 7
    MSG_KEY_ERROR = 8
    PAYLOAD_DECODE_ERROR = 9
    FORWARD_SEND_PACKET_ERROR = 10
    NOT_ALLOW_SEND = 11
    CONNECT_KICK = 12
    NOT_IN_WHITELIST = 13
    QUERY_TOKEN_ERROR = 14
    SYSTEM_ERROR = 15
    CHANNEL_ID_ERROR = 16
    NODE_MATCH_ERROR = 17
    NODE_NOT_MATCH = 18
    BAN = 19
    NOT_SUPPORT_HEADER = 20
    CLIENT_KEY_IS_EMPTY = 21
    RATE_LIMIT = 22
    NOT_SUPPORT_CHANNEL_TYPE = 23
    DISBAND = 24
    SEND_BAN = 25
    CHANNEL_DELETING = 26
    PROTOCOL_UPGRADE_REQUIRED = 27
    IDEMPOTENCY_CONFLICT = 28
    MESSAGE_SEQ_EXHAUSTED = 29


class DeviceFlag(IntEnum):
    """CONNECT.device_flag values (spec §1.6)."""

    APP = 0
    WEB = 1
    PC = 2
    SYSTEM = 99


@dataclass(frozen=True, slots=True)
class Connect:
    """CONNECT (c→s)."""

    version: int
    device_flag: int
    device_id: str
    uid: str
    token: str
    client_timestamp: int
    client_key: str
    flags: Flags = Flags.NONE

    packet_type = PacketType.CONNECT


@dataclass(frozen=True, slots=True)
class Connack:
    """CONNACK (s→c). ``server_version`` is on the wire only for client versions > 3 (the
    HasServerVersion header flag), ``node_id`` only at version ≥ 4."""

    time_diff: int
    reason_code: int
    server_key: str
    salt: str
    server_version: int = 0
    node_id: int = 0

    packet_type = PacketType.CONNACK


@dataclass(frozen=True, slots=True)
class Send:
    """SEND (c→s). ``payload`` is the bytes on the wire (base64 ciphertext text when
    encrypted)."""

    setting: Setting
    client_seq: int
    client_msg_no: str
    channel_id: str
    channel_type: int
    msg_key: str
    payload: bytes
    flags: Flags = Flags.NONE
    stream_no: str = ""
    topic: str = ""
    expire: int = 0

    packet_type = PacketType.SEND


@dataclass(frozen=True, slots=True)
class Sendack:
    """SENDACK (s→c). ``client_msg_no`` is an optional trailing field newer servers append."""

    message_id: int
    client_seq: int
    message_seq: int
    reason_code: int
    flags: Flags = Flags.NONE
    client_msg_no: str = ""

    packet_type = PacketType.SENDACK


@dataclass(frozen=True, slots=True)
class Recv:
    """RECV (s→c). Stream fields use the 2023 layout of SDK 1.0.4 (spec §1.6)."""

    setting: Setting
    msg_key: str
    from_uid: str
    channel_id: str
    channel_type: int
    client_msg_no: str
    message_id: int
    message_seq: int
    timestamp: int
    payload: bytes
    flags: Flags = Flags.NONE
    expire: int = 0
    stream_no: str = ""
    stream_seq: int = 0
    stream_flag: int = 0
    topic: str = ""

    packet_type = PacketType.RECV


@dataclass(frozen=True, slots=True)
class Recvack:
    """RECVACK (c→s)."""

    message_id: int
    message_seq: int
    flags: Flags = Flags.NONE

    packet_type = PacketType.RECVACK


@dataclass(frozen=True, slots=True)
class Ping:
    """PING (c→s), one byte ``0x70``. A server never sends it (spec §3)."""

    packet_type = PacketType.PING


@dataclass(frozen=True, slots=True)
class Pong:
    """PONG (s→c), one byte ``0x80``."""

    packet_type = PacketType.PONG


@dataclass(frozen=True, slots=True)
class Disconnect:
    """DISCONNECT (s→c): the server kicks the client."""

    reason_code: int
    reason: str

    packet_type = PacketType.DISCONNECT


@dataclass(frozen=True, slots=True)
class Sub:
    """SUB (c→s): subscribe to a data channel (type 7)."""

    setting: Setting
    sub_no: str
    channel_id: str
    channel_type: int
    action: int
    param: str

    packet_type = PacketType.SUB


@dataclass(frozen=True, slots=True)
class Suback:
    """SUBACK (s→c)."""

    sub_no: str
    channel_id: str
    channel_type: int
    action: int
    reason_code: int

    packet_type = PacketType.SUBACK


Packet = (
    Connect | Connack | Send | Sendack | Recv | Recvack | Ping | Pong | Disconnect | Sub | Suback
)
