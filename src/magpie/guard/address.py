"""Who is the client: the peer address, or behind a trusted reverse proxy the address the
proxy saw (``X-Forwarded-For``), and the key per-address limits count under.

``X-Forwarded-For`` is a list a client can prefill with anything; each proxy appends the
address it received the request from. So it is read only when the peer is a trusted proxy,
from the right, skipping trusted proxies: the first untrusted entry is the client (the
rightmost address nobody trusted could have forged). IPv6 clients are counted per /64, the
block one subscriber usually holds.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["TrustedProxies", "address_key"]

_IPV6_SUBSCRIBER_PREFIX = 64


def _parse(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    text = text.strip()
    if text.startswith("[") and "]" in text:  # "[2001:db8::1]:443"
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:  # "203.0.113.7:51000"
        text = text.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


@dataclass(frozen=True, slots=True)
class TrustedProxies:
    """The networks whose ``X-Forwarded-For`` is believed (none by default)."""

    networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()

    def trusts(self, peer: str) -> bool:
        """Whether ``peer`` (an address string) is a trusted proxy."""
        if not self.networks:
            return False
        address = _parse(peer)
        return address is not None and any(address in net for net in self.networks)

    def client(self, peer: str, forwarded_for: Iterable[str]) -> str:
        """The client's address: ``peer`` unless it is a trusted proxy, else the rightmost
        untrusted address of the ``X-Forwarded-For`` values (several headers in order);
        ``peer`` when the header is missing or unparsable."""
        if not self.trusts(peer):
            return peer
        hops = [hop for value in forwarded_for for hop in value.split(",")]
        for hop in reversed(hops):
            address = _parse(hop)
            if address is None:
                return peer  # a garbled list: nothing in it can be believed
            if not any(address in net for net in self.networks):
                return str(address)
        first = _parse(hops[0]) if hops else None
        return str(first) if first is not None else peer  # proxies all the way


def address_key(address: str) -> str:
    """What per-address limits count under: the address, or its /64 for IPv6."""
    if ":" not in address:
        return address  # IPv4 (or a Unix socket's empty name): the address itself
    parsed = _parse(address)
    if isinstance(parsed, ipaddress.IPv6Address):
        net = ipaddress.IPv6Network((parsed, _IPV6_SUBSCRIBER_PREFIX), strict=False)
        return str(net)
    return str(parsed) if parsed is not None else address
