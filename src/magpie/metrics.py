"""Prometheus metrics of one node, held in a registry built by the composition root."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["Metrics"]


class Metrics:
    """The counters and gauges Magpie exports on ``/metrics``."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.connections = Gauge("magpie_connections", "Authenticated connections", registry=r)
        self.connects = Counter(
            "magpie_connects", "CONNECT attempts by result", ["result"], registry=r
        )
        self.messages = Counter(
            "magpie_messages", "Messages committed by origin", ["origin"], registry=r
        )
        self.send_refused = Counter(
            "magpie_send_refused", "Sends refused by reason", ["reason"], registry=r
        )
        self.deliveries = Counter("magpie_deliveries", "RECV packets written", registry=r)
        self.retries = Counter("magpie_recv_retries", "RECV packets resent", registry=r)
        self.slow_consumers = Counter(
            "magpie_slow_consumer_closes", "Connections closed as slow consumers", registry=r
        )
        self.send_latency = Histogram(
            "magpie_send_seconds",
            "SEND to SENDACK time",
            buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1.0),
            registry=r,
        )
        self.webhook_failures = Counter(
            "magpie_webhook_failures", "Webhook deliveries that failed", ["event"], registry=r
        )
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
