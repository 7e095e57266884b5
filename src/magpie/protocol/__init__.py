"""Sans-I/O WuKongIM protocol (v2, with v3–v6 fields): packets, codec, crypto, state machine.

Nothing in this package performs I/O, awaits, or reads the clock; time and randomness that
matter are arguments. Reference: ``shared/spec/wukongim-v2.md``.
"""

from magpie.protocol.codec import Decoder, decode, encode
from magpie.protocol.connection import Connection, Role, State
from magpie.protocol.crypto import (
    KeyPair,
    SessionCipher,
    derive_aes_key,
    new_salt,
    open_recv,
    open_send,
    seal_recv,
    seal_send,
)
from magpie.protocol.limits import DEFAULT_LIMITS, Limits
from magpie.protocol.packets import (
    LATEST_VERSION,
    Connack,
    Connect,
    DeviceFlag,
    Disconnect,
    Flags,
    Packet,
    PacketType,
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

__all__ = [
    "DEFAULT_LIMITS",
    "LATEST_VERSION",
    "Connack",
    "Connect",
    "Connection",
    "Decoder",
    "DeviceFlag",
    "Disconnect",
    "Flags",
    "KeyPair",
    "Limits",
    "Packet",
    "PacketType",
    "Ping",
    "Pong",
    "ReasonCode",
    "Recv",
    "Recvack",
    "Role",
    "Send",
    "Sendack",
    "SessionCipher",
    "Setting",
    "State",
    "Sub",
    "Suback",
    "decode",
    "derive_aes_key",
    "encode",
    "new_salt",
    "open_recv",
    "open_send",
    "seal_recv",
    "seal_send",
]
