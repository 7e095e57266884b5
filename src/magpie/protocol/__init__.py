"""Sans-I/O WuKongIM protocol (v2, with v3–v6 fields): packets, codec, crypto, state machine.

Nothing in this package performs I/O, awaits, or reads the clock; time and randomness that
matter are arguments. Reference: ``shared/spec/wukongim-v2.md``.
"""

from magpie.protocol.packets import (
    LATEST_VERSION,
    ChannelType,
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
    "LATEST_VERSION",
    "ChannelType",
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
