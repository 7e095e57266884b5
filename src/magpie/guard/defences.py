"""The defences of one node, built from the settings: the rate limits, the connection caps
and who is a trusted proxy, shared by the WebSocket gateway and the HTTP API
(``docs/security.md`` lists each one with its setting and default)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from magpie.config import Settings
from magpie.guard.address import TrustedProxies
from magpie.guard.bucket import Buckets, Rate
from magpie.guard.fds import connection_budget, current_nofile_limit
from magpie.guard.gate import Gate, GateCaps
from magpie.metrics import Metrics

__all__ = ["Defences"]

log = logging.getLogger(__name__)


class Defences:
    """Every limit's state for one node (counts and buckets live here, not in modules)."""

    def __init__(
        self,
        settings: Settings,
        metrics: Metrics,
        clock: Callable[[], float] = time.monotonic,
        nofile_limit: int | None = None,
    ) -> None:
        s = settings
        self.settings = settings
        self._metrics = metrics
        self.proxies = TrustedProxies(s.trusted_networks)
        self.origins = s.allowed_origins
        limit = current_nofile_limit() if nofile_limit is None else nofile_limit
        self.budget = connection_budget(
            limit, s.fd_reserve, s.ws_max_connections, s.http_max_connections
        )
        if self.budget.lowered:
            log.warning(
                "the open-files limit %d (minus fd_reserve %d) cannot hold the connection caps;"
                " serving at most %d gateway and %d HTTP connections (raise the limit, e.g."
                " LimitNOFILE= or ulimit -n)",
                limit,
                s.fd_reserve,
                self.budget.ws,
                self.budget.http,
            )
        self.ws_gate = Gate(GateCaps(self.budget.ws, s.ws_max_connections_per_ip))
        self.http_gate = Gate(GateCaps(self.budget.http, s.http_max_connections_per_ip))
        self.token_inflight = Gate(GateCaps(0, s.http_max_inflight_per_token))
        self.ws_per_uid = s.ws_max_connections_per_uid

        def buckets(rate: float, burst: int) -> Buckets[str]:
            return Buckets(Rate(rate, burst), clock, s.rate_limit_keys)

        self.connect_ip = buckets(s.connect_ip_rate, s.connect_ip_burst)
        self.connect_uid = buckets(s.connect_uid_rate, s.connect_uid_burst)
        #: Failed credentials, shared by both ports (a guesser switching ports gains nothing).
        self.auth_fail_ip = buckets(s.auth_fail_ip_rate, s.auth_fail_ip_burst)
        self.auth_fail_uid = buckets(s.auth_fail_uid_rate, s.auth_fail_uid_burst)
        self.send = buckets(s.send_rate, s.send_burst)
        self.send_refusals_close = s.send_refusals_close
        self.http_ip = buckets(s.http_ip_rate, s.http_ip_burst)
        self.http_token = buckets(s.http_token_rate, s.http_token_burst)
        self.http_key = buckets(s.http_key_rate, s.http_key_burst)

    def refused(self, port: str, rule: str) -> None:
        """Count one refusal on ``port`` (``ws`` or ``http``) by ``rule``."""
        self._metrics.refused.labels(port=port, rule=rule).inc()

    def timed_out(self, phase: str) -> None:
        """Count one HTTP connection closed in ``phase`` (``head``, ``body``, ``write``)."""
        self._metrics.http_timeouts.labels(phase=phase).inc()
