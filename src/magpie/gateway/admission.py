"""The node's admission of gateway connections (the :class:`~magpie.gateway.wire.Admission`
hook): connection caps, the WebSocket Origin allow-list, and who the client is behind a
trusted reverse proxy.

* **Origin** (WebSocket only): with ``ws_allowed_origins`` set, a handshake whose ``Origin``
  is not on the list is refused (1008). No ``Origin`` — native apps, servers, every TCP
  client — is always admitted: a cross-site page cannot make a browser leave it out.
* **Caps**: connections in all and per client address, over both transports together
  (:class:`~magpie.guard.Gate`); over a cap the connection is refused with 1013 (try again
  later; over TCP the socket is closed).
* **Client address**: the peer, or for a WebSocket from a trusted proxy the address its
  ``X-Forwarded-For`` names (:meth:`~magpie.guard.TrustedProxies.client`). TCP connections
  of a trusted proxy count in the total only (no header tells who is behind them).

Release recomputes the key from the same handshake, so no per-connection state is kept here.
"""

from __future__ import annotations

from magpie.gateway.wire import Handshake, Refusal
from magpie.guard import Defences, Over, address_key

__all__ = ["NodeAdmission", "client_address"]

_CLOSE_POLICY = 1008
_CLOSE_TRY_AGAIN = 1013
_FORWARDED_FOR = "x-forwarded-for"


def client_address(defences: Defences, handshake: Handshake) -> str:
    """The client's address: the peer's, or behind a trusted proxy the forwarded one."""
    peer = handshake.remote_host
    headers = handshake.headers
    if not headers or not defences.proxies.trusts(peer):
        return peer
    getall = getattr(headers, "getall", None)
    values = getall(_FORWARDED_FOR, []) if getall is not None else [headers.get(_FORWARDED_FOR)]
    return defences.proxies.client(peer, [v for v in values if v])


def _gate_key(defences: Defences, handshake: Handshake) -> str | None:
    """What the per-address cap counts the connection under (``None``: the total only)."""
    if handshake.transport == "ws" or not defences.proxies.trusts(handshake.remote_host):
        return address_key(client_address(defences, handshake))
    return None


class NodeAdmission:
    """Admission by the node's :class:`~magpie.guard.Defences` (see the module docstring)."""

    def __init__(self, defences: Defences) -> None:
        self._d = defences

    def admit(self, handshake: Handshake) -> Refusal | None:
        """``None`` to accept the connection, or why not."""
        d = self._d
        origin = handshake.origin
        if d.origins and origin is not None and origin.lower().rstrip("/") not in d.origins:
            d.refused("ws", "origin")
            return Refusal(_CLOSE_POLICY, "origin not allowed")
        over = d.ws_gate.enter(_gate_key(d, handshake))
        if over is not None:
            d.refused("ws", "conn_total" if over is Over.TOTAL else "conn_per_ip")
            return Refusal(_CLOSE_TRY_AGAIN, "too many connections")
        return None

    def release(self, handshake: Handshake) -> None:
        """An admitted connection is gone."""
        self._d.ws_gate.leave(_gate_key(self._d, handshake))
