"""Defences against abuse: rate limits (token buckets), connection caps, trusted proxies,
file-descriptor limits. Pure counting and arithmetic here; the gateway and the HTTP API apply
them at their entry points (``docs/security.md``)."""

from magpie.guard.address import TrustedProxies, address_key
from magpie.guard.bucket import Buckets, Rate
from magpie.guard.defences import Defences
from magpie.guard.fds import (
    Budget,
    FdWatch,
    connection_budget,
    open_fd_count,
    raise_nofile_limit,
)
from magpie.guard.gate import Gate, GateCaps, Over

__all__ = [
    "Buckets",
    "Budget",
    "Defences",
    "FdWatch",
    "Gate",
    "GateCaps",
    "Over",
    "Rate",
    "TrustedProxies",
    "address_key",
    "connection_budget",
    "open_fd_count",
    "raise_nofile_limit",
]
