"""Prometheus metrics of one node, held in a registry built by the composition root.

Every name exported on ``/metrics`` is declared here (the Grafana dashboard in
``docs/grafana-dashboard.json`` uses exactly these; ``tests/api/test_metrics.py`` checks it):

==========================================  =================================================
process and runtime                         ``process_*`` (CPU, memory, open fds), ``python_*``
HTTP API                                    ``magpie_http_requests_total{method,route,status}``,
                                            ``magpie_http_request_duration_seconds{method,route}``
gateway connections                         ``magpie_connections``, ``magpie_connects_total
                                            {result}``, ``magpie_slow_consumer_closes_total``
gateway traffic                             ``magpie_gateway_frames_total{transport,direction}``,
                                            ``magpie_gateway_bytes_total{transport,direction}``,
                                            ``magpie_gateway_recvacks_total{transport}``
sends                                       ``magpie_messages_total{origin}``,
                                            ``magpie_send_refused_total{reason}``,
                                            ``magpie_send_seconds`` (SEND to SENDACK)
deliveries                                  ``magpie_deliveries_total``,
                                            ``magpie_recv_retries_total``
message extensions                          ``magpie_ext_changes_total{result}``
cards                                       ``magpie_card_actions_total{card_type,result}``
webhooks                                    ``magpie_webhook_deliveries_total{event}``,
                                            ``magpie_webhook_retries_total{event}``,
                                            ``magpie_webhook_failures_total{event}``
durable jobs (webhook outbox, card          ``magpie_jobs_total{kind,result}`` (done,
deadlines)                                  retried, dead, released),
                                            ``magpie_jobs_stored{kind,state}`` (pending,
                                            dead: in the shared store)
queue depths (read at scrape time)          ``magpie_queue_depth{queue}``
bus between nodes (scale-out)               ``magpie_bus_events_total{direction}``,
                                            ``magpie_bus_frames_total``,
                                            ``magpie_bus_dropped_total{reason}``,
                                            ``magpie_bus_up``
per-channel delivery order                  ``magpie_delivery_order_total{outcome}``
defences (docs/security.md)                 ``magpie_refused_total{port,rule}``,
                                            ``magpie_http_timeouts_total{phase}``
==========================================  =================================================

**Cheap hot paths.** Per-frame traffic is counted in plain integer fields of a
:class:`Traffic` object that the gateway bumps (no lock, no label lookup); a collector turns
them into counters at scrape time. Labelled counters on per-request or per-message paths are
bound once per label set (:class:`_Children`), since ``labels()`` takes a lock and a lookup
on every call. Queue depths are read by probes at scrape time only.

No ``*_created`` series: the client library's created-timestamp samples are turned off
(they double the output and no dashboard uses them).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

__all__ = ["HttpMetrics", "Metrics", "Traffic"]

#: HTTP latency buckets (seconds): sub-millisecond reads up to slow history pages.
HTTP_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)
#: Methods kept as label values; anything else is counted as ``OTHER``.
_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})


class Traffic:
    """Frame and byte counts of one gateway transport, bumped on its hot paths."""

    __slots__ = ("acks", "bytes_in", "bytes_out", "frames_in", "frames_out", "transport")

    def __init__(self, transport: str) -> None:
        self.transport = transport
        self.frames_in = 0
        self.bytes_in = 0
        self.frames_out = 0
        self.bytes_out = 0
        self.acks = 0

    def count_in(self, frame: bytes | str) -> None:
        """One inbound frame (off the hot loop, which adds to the fields inline)."""
        self.frames_in += 1
        self.bytes_in += len(frame)

    def count_out(self, frame: bytes) -> None:
        """One outbound frame written (off the direct-write path, which adds inline)."""
        self.frames_out += 1
        self.bytes_out += len(frame)


class _Children:
    """A labelled metric's children, bound once per label values."""

    __slots__ = ("_children", "_metric")

    def __init__(self, metric: Any) -> None:
        self._metric = metric
        self._children: dict[tuple[str, ...], Any] = {}

    def __call__(self, *values: str) -> Any:
        """The child for ``values`` (created on first use)."""
        child = self._children.get(values)
        if child is None:
            child = self._children[values] = self._metric.labels(*values)
        return child


class HttpMetrics:
    """Requests by route template and status, and their latency."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "magpie_http_requests",
            "HTTP requests by method, route template and status",
            ["method", "route", "status"],
            registry=registry,
        )
        self.duration = Histogram(
            "magpie_http_request_duration_seconds",
            "HTTP request handling time by method and route template",
            ["method", "route"],
            buckets=HTTP_BUCKETS,
            registry=registry,
        )
        self._requests = _Children(self.requests)
        self._duration = _Children(self.duration)

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        """Count one answered request."""
        method = method if method in _METHODS else "OTHER"
        self._requests(method, route, str(status)).inc()
        self._duration(method, route).observe(seconds)


class _TrafficCollector(Collector):
    """``magpie_gateway_*_total`` from the :class:`Traffic` objects of the transports."""

    def __init__(self) -> None:
        self.sources: list[Traffic] = []

    def collect(self) -> Iterator[Metric]:
        frames = CounterMetricFamily(
            "magpie_gateway_frames",
            "Gateway frames (WuKongIM packets) by transport and direction",
            labels=["transport", "direction"],
        )
        data = CounterMetricFamily(
            "magpie_gateway_bytes",
            "Gateway bytes (frame payloads) by transport and direction",
            labels=["transport", "direction"],
        )
        acks = CounterMetricFamily(
            "magpie_gateway_recvacks",
            "RECVACKs received (a device acknowledged a delivered message)",
            labels=["transport"],
        )
        for t in self.sources:
            frames.add_metric([t.transport, "in"], t.frames_in)
            frames.add_metric([t.transport, "out"], t.frames_out)
            data.add_metric([t.transport, "in"], t.bytes_in)
            data.add_metric([t.transport, "out"], t.bytes_out)
            acks.add_metric([t.transport], t.acks)
        yield from (frames, data, acks)


class _QueueCollector(Collector):
    """``magpie_queue_depth{queue}``: each probe is called at scrape time."""

    def __init__(self) -> None:
        self.probes: dict[str, Callable[[], float]] = {}

    def collect(self) -> Iterator[Metric]:
        depth = GaugeMetricFamily(
            "magpie_queue_depth", "Items waiting in the node's queues", labels=["queue"]
        )
        for name, probe in sorted(self.probes.items()):
            depth.add_metric([name], float(probe()))
        yield depth


class _OrderCollector(Collector):
    """``magpie_delivery_order_total{outcome}``: the per-channel orderer's counts."""

    def __init__(self) -> None:
        self.sources: list[Callable[[], dict[str, int]]] = []

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(
            "magpie_delivery_order",
            "Deliveries held for per-channel order, filled from the store, skipped, late, "
            "or dropped as copies of filled ones",
            labels=["outcome"],
        )
        totals: dict[str, int] = {}
        for source in self.sources:
            for outcome, n in source().items():
                totals[outcome] = totals.get(outcome, 0) + n
        for outcome, n in sorted(totals.items()):
            family.add_metric([outcome], n)
        yield family


class Metrics:
    """The metrics Magpie exports on ``/metrics`` (see the module docstring)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        # The library's default collectors sit in its global registry; ours is the node's own.
        ProcessCollector(registry=r)
        PlatformCollector(registry=r)
        GCCollector(registry=r)
        self.http = HttpMetrics(r)
        self._traffic = _TrafficCollector()
        self._order = _OrderCollector()
        self._queues = _QueueCollector()
        r.register(self._traffic)
        r.register(self._order)
        r.register(self._queues)
        self._gateway(r)
        self._sends(r)
        self._services(r)
        self._bus(r)
        self._defences(r)

    def _gateway(self, r: CollectorRegistry) -> None:
        self.connections = Gauge("magpie_connections", "Authenticated connections", registry=r)
        self.connects = Counter(
            "magpie_connects", "CONNECT attempts by result", ["result"], registry=r
        )
        self.slow_consumers = Counter(
            "magpie_slow_consumer_closes", "Connections closed as slow consumers", registry=r
        )

    def _sends(self, r: CollectorRegistry) -> None:
        self.messages = Counter(
            "magpie_messages", "Messages committed by origin", ["origin"], registry=r
        )
        self.send_refused = Counter(
            "magpie_send_refused", "Sends refused by reason", ["reason"], registry=r
        )
        self.deliveries = Counter("magpie_deliveries", "RECV packets written", registry=r)
        self.retries = Counter("magpie_recv_retries", "RECV packets resent", registry=r)
        self.send_latency = Histogram(
            "magpie_send_seconds",
            "SEND to SENDACK time",
            buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1.0),
            registry=r,
        )

    def _services(self, r: CollectorRegistry) -> None:
        self.history_refused = Counter(
            "magpie_history_refused",
            "History reads refused: no read slot within history_wait_timeout",
            registry=r,
        )
        self.history_truncated = Counter(
            "magpie_history_truncated",
            "History answers stopped early at history_max_bytes",
            ["endpoint"],
            registry=r,
        )
        self.ext_changes = Counter(
            "magpie_ext_changes",
            "Message-extension change attempts by result (applied, conflict, stale, "
            "forbidden, invalid, duplicate, not_found)",
            ["result"],
            registry=r,
        )
        self.card_actions = Counter(
            "magpie_card_actions",
            "Card actions by card type and result (applied, duplicate, or the refusal code)",
            ["card_type", "result"],
            registry=r,
        )
        self.webhook_deliveries = Counter(
            "magpie_webhook_deliveries", "Webhook requests delivered", ["event"], registry=r
        )
        self.webhook_retries = Counter(
            "magpie_webhook_retries", "Webhook requests sent again", ["event"], registry=r
        )
        self.webhook_failures = Counter(
            "magpie_webhook_failures", "Webhook deliveries that failed", ["event"], registry=r
        )
        self._ext_result = _Children(self.ext_changes)
        self._card_result = _Children(self.card_actions)
        self.jobs = Counter(
            "magpie_jobs",
            "Durable jobs settled by this node, by kind and result (done, retried, dead, "
            "released untried)",
            ["kind", "result"],
            registry=r,
        )
        self.jobs_stored = Gauge(
            "magpie_jobs_stored",
            "Durable jobs in the store (every node's), by kind and state (pending, dead)",
            ["kind", "state"],
            registry=r,
        )
        self._job_result = _Children(self.jobs)

    def _bus(self, r: CollectorRegistry) -> None:
        self.bus_events = Counter(
            "magpie_bus_events",
            "Events sent to or received from other nodes",
            ["direction"],
            registry=r,
        )
        self.bus_frames = Counter(
            "magpie_bus_frames",
            "Frames published to other nodes (one per event and node holding recipients)",
            registry=r,
        )
        self.bus_dropped = Counter(
            "magpie_bus_dropped",
            "Events for other nodes dropped (down, overflow, undecodable); clients resync",
            ["reason"],
            registry=r,
        )
        self.bus_up = Gauge("magpie_bus_up", "1 while the bus reaches the other nodes", registry=r)

    def _defences(self, r: CollectorRegistry) -> None:
        self.refused = Counter(
            "magpie_refused",
            "Connections, CONNECTs, SENDs and requests refused by a defence (docs/security.md)",
            ["port", "rule"],
            registry=r,
        )
        self.http_timeouts = Counter(
            "magpie_http_timeouts",
            "HTTP connections closed for a request head, body or reader too slow",
            ["phase"],
            registry=r,
        )

    # --- hooks the composition root wires into the services ---------------------------------

    def traffic(self, transport: str) -> Traffic:
        """A new :class:`Traffic` for one gateway transport, exported from now on."""
        counts = Traffic(transport)
        self._traffic.sources.append(counts)
        return counts

    def delivery_order(self, source: Callable[[], dict[str, int]]) -> None:
        """Export ``source()`` (outcome -> count) as ``magpie_delivery_order_total``."""
        self._order.sources.append(source)

    def probe_queue(self, name: str, probe: Callable[[], float]) -> None:
        """Export ``probe()`` as ``magpie_queue_depth{queue=name}`` (read at scrape time)."""
        self._queues.probes[name] = probe

    def ext_result(self, result: str) -> None:
        """Count one extension change attempt."""
        self._ext_result(result).inc()

    def card_action(self, card_type: str, result: str) -> None:
        """Count one card action."""
        self._card_result(card_type, result).inc()

    def job_result(self, kind: str, result: str, n: int) -> None:
        """Count ``n`` settled jobs of ``kind`` (nothing when ``n`` is 0)."""
        if n:
            self._job_result(kind, result).inc(n)

    def job_counts(self, kind: str, pending: int, dead: int) -> None:
        """The stored number of pending and dead jobs of ``kind``."""
        self.jobs_stored.labels(kind, "pending").set(pending)
        self.jobs_stored.labels(kind, "dead").set(dead)

    def names(self) -> Iterable[str]:
        """Every metric family name this registry exports (for tests and the dashboard)."""
        return [m.name for m in self.registry.collect()]
