"""The process's file descriptors: raise the soft limit, share it between the listeners, and
say calmly when it is reached.

Every socket is a file descriptor. A node runs on uvloop, whose listeners (libuv) meet
``EMFILE`` on ``accept()`` with the reserve-descriptor trick: they free a descriptor kept for
the purpose, accept the waiting connection, close it at once (the client sees it closed, not
hanging), and take the reserve back — quietly, without a traceback, serving the connections
they have. What is left to do here is to keep the limit out of reach — raise the soft limit
(:func:`raise_nofile_limit`) and size the connection caps below it
(:func:`connection_budget`) — and to tell the operator when it is reached anyway:
:class:`FdWatch` samples the open descriptors and logs one warning per interval while the
process is at its limit (``process_open_fds`` and ``process_max_fds`` are on ``/metrics``).
"""

from __future__ import annotations

import errno
import logging
import os
import resource
from collections.abc import Callable
from dataclasses import dataclass

__all__ = [
    "Budget",
    "FdWatch",
    "connection_budget",
    "current_nofile_limit",
    "open_fd_count",
    "raise_nofile_limit",
]

log = logging.getLogger(__name__)

#: The soft limit is raised at most this far when the hard limit is unlimited.
_UNLIMITED_TARGET = 1 << 20
#: Within this many descriptors of the limit the process counts as out of them (libuv holds
#: one in reserve; a socket being refused takes it for a moment).
AT_LIMIT_MARGIN = 4


def raise_nofile_limit() -> tuple[int, int]:
    """Raise the soft ``RLIMIT_NOFILE`` to the hard limit (the most an unprivileged process
    may); returns the ``(soft, hard)`` limits in force afterwards."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = _UNLIMITED_TARGET if hard == resource.RLIM_INFINITY else hard
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError) as exc:  # e.g. a hard limit above the kernel's nr_open
            log.warning("could not raise the open-files limit from %d to %d: %s", soft, target, exc)
    return soft, hard


def current_nofile_limit() -> int:
    """The soft ``RLIMIT_NOFILE`` (a large number when unlimited)."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return _UNLIMITED_TARGET if soft == resource.RLIM_INFINITY else soft


@dataclass(frozen=True, slots=True)
class Budget:
    """Connection caps that fit the descriptor limit."""

    ws: int
    http: int
    lowered: bool


def connection_budget(limit: int, reserve: int, ws_cap: int, http_cap: int) -> Budget:
    """Caps for the two listeners within ``limit - reserve`` descriptors (a cap of 0: as many
    as fit). When they do not all fit, HTTP gets at most a quarter of the room and the
    gateway the rest, so a flood on one port cannot starve the other; ``lowered`` says a
    configured cap had to give way."""
    room = max(2, limit - reserve)
    quarter = max(1, room // 4)
    http = http_cap or quarter
    if ws_cap == 0 or ws_cap + http > room:
        http = min(http, quarter)
    ws = max(1, min(ws_cap or room, room - http))
    lowered = bool(ws_cap and ws < ws_cap) or bool(http_cap and http < http_cap)
    return Budget(ws, http, lowered)


def open_fd_count() -> int | None:
    """Descriptors the process has open (Linux ``/proc``); ``None`` when that cannot be
    read. Reading it takes a descriptor: failing with EMFILE means the limit is reached."""
    try:
        return len(os.listdir("/proc/self/fd")) - 1  # minus the one listdir used
    except OSError as exc:
        if exc.errno in (errno.EMFILE, errno.ENFILE):
            return current_nofile_limit()
        return None


class FdWatch:
    """Decides, sample by sample, when to say that the descriptors ran out: at most one
    warning per ``interval`` seconds while at the limit, one line when it is over."""

    def __init__(
        self,
        interval: float,
        clock: Callable[[], float],
        limit: Callable[[], int] = current_nofile_limit,
    ) -> None:
        self._interval = interval
        self._clock = clock
        self._limit = limit
        self._last = float("-inf")
        self._episodes = 0
        self._at_limit = False

    @property
    def episodes(self) -> int:
        """How many times the process has reached its limit."""
        return self._episodes

    def sample(self, open_fds: int | None) -> None:
        """One reading of the open descriptors (``None``: unknown, ignored)."""
        if open_fds is None:
            return
        limit = self._limit()
        at_limit = open_fds >= limit - AT_LIMIT_MARGIN
        now = self._clock()
        if at_limit and not self._at_limit:
            self._episodes += 1
        if at_limit and now - self._last >= self._interval:
            log.warning(
                "out of file descriptors (%d open, limit %d): new connections are refused, "
                "open ones are served; raise the limit (LimitNOFILE=, ulimit -n) or lower the "
                "connection caps",
                open_fds,
                limit,
            )
            self._last = now
        elif not at_limit and self._at_limit:
            log.warning("file descriptors available again (%d open, limit %d)", open_fds, limit)
        self._at_limit = at_limit
