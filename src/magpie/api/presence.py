"""What the API needs to know about connected clients, as a small protocol.

The API reads presence (``/user/onlinestatus``, ``msg.offline``, ``user.onlinestatus``) through
:class:`Presence` instead of importing the gateway, so it depends on two methods and two
attributes, not on gateway internals; :class:`magpie.gateway.server.Gateway` satisfies it
structurally, and tests can pass a fake.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from typing import Protocol, runtime_checkable

__all__ = [
    "MASTER",
    "Presence",
    "PresenceCallback",
    "PresenceSource",
    "SessionView",
    "has_online_master",
    "offline_uids",
    "onlinestatus_entry",
]

#: ``device_level`` of a master device (``/user/token``): only an online master suppresses
#: ``msg.offline`` (spec §6.1, §9 item 7).
MASTER = 1

#: ``(uid, device_flag, online, conn_id)``, called after a connection registers or leaves.
PresenceCallback = Callable[[str, int, bool, str], None]


class SessionView(Protocol):
    """One authenticated connection, as far as the API cares."""

    @property
    def device_flag(self) -> int:
        """CONNECT.device_flag (0 app, 1 web, 2 pc)."""
        ...

    @property
    def device_level(self) -> int:
        """0 slave, 1 master (from the token registration)."""
        ...


class Presence(Protocol):
    """The connections of this node (the gateway)."""

    @property
    def port(self) -> int:
        """The listening port; 0 until the gateway listens."""
        ...

    def online(self, uid: str) -> Sequence[SessionView]:
        """The connections of ``uid`` on this node."""
        ...


@runtime_checkable
class PresenceSource(Protocol):
    """Optional: a gateway that reports connects and disconnects (``user.onlinestatus``)."""

    def add_presence_listener(self, callback: PresenceCallback) -> None:
        """Call ``callback`` after every register / unregister."""
        ...


def has_online_master(presence: Presence, uid: str) -> bool:
    """Whether ``uid`` has a master device connected to this node."""
    return any(s.device_level == MASTER for s in presence.online(uid))


def offline_uids(presence: Presence, sender: str, recipients: Iterable[str]) -> list[str]:
    """The recipients (sender excluded) with no online master device: ``msg.offline``."""
    return [u for u in recipients if u != sender and not has_online_master(presence, u)]


_DIGITS = re.compile(r"\d+$")


def _socket_id(conn_id: str) -> str:
    """WuKongIM's socket id is an integer; the gateway's ids look like ``c42``, so keep the
    trailing digits (business servers parse this field as a number)."""
    match = _DIGITS.search(conn_id)
    return match.group(0) if match else "0"


def onlinestatus_entry(
    presence: Presence, uid: str, device_flag: int, online: bool, conn_id: str
) -> str:
    """``"uid-deviceFlag-online-socketID-onlineCountForFlag-totalOnlineCount"`` (spec §6.1),
    with the counts as they are after the change."""
    sessions = presence.online(uid)
    same_flag = sum(1 for s in sessions if s.device_flag == device_flag)
    return f"{uid}-{device_flag}-{int(online)}-{_socket_id(conn_id)}-{same_flag}-{len(sessions)}"
