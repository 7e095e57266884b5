"""A bus node in its own process, for crash tests: ``python -m tests.bus.node_proc URL CLUSTER
NODE_ID TTL UID...`` starts a Redis bus, registers the uids, prints ``ready`` and waits to be
killed (``kill -9`` leaves its registrations and lease behind, as a crash does)."""

from __future__ import annotations

import asyncio
import sys

from magpie.bus.redis import RedisBus, RedisBusConfig
from magpie.metrics import Metrics


async def _main(url: str, cluster: str, node_id: int, ttl: float, uids: list[str]) -> None:
    bus = RedisBus(RedisBusConfig(url, cluster, node_id, presence_ttl=ttl), Metrics())
    await bus.start()
    for uid in uids:
        await bus.register(uid)
    print("ready", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    url, cluster, node, ttl, *uids = sys.argv[1:]
    asyncio.run(_main(url, cluster, int(node), float(ttl), uids))
