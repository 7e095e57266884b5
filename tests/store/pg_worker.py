"""A separate process appending to a PostgreSQL store (``tests/store/test_postgres.py``).

``python -m tests.store.pg_worker URL WORKER COUNT`` appends COUNT messages from uid
``w<WORKER>`` into channel ``hot``, and COUNT more whose keys (``shared-<i>`` from uid
``dup``) every worker also sends; prints one JSON line: ``{"seqs": [...], "shared":
[[message_id, seq, duplicate], ...]}``.
"""

from __future__ import annotations

import asyncio
import json
import sys

from magpie.store.interface import NewMessage
from magpie.store.postgres import PostgresStore


def _message(message_id: int, key: str, from_uid: str) -> NewMessage:
    return NewMessage(message_id, key, from_uid, "hot", 2, 1_700_000_000, b'{"type":1}', 2)


async def main(url: str, worker: int, count: int) -> None:
    store = PostgresStore(url, pool_size=4, writers=2)
    await store.open()
    try:
        own = [_message(worker * 100_000 + i, f"w{worker}-{i}", f"w{worker}") for i in range(count)]
        shared = [
            _message(worker * 100_000 + 50_000 + i, f"shared-{i}", "dup") for i in range(count)
        ]
        results = await asyncio.gather(
            *(store.append_message(m, ["bob", f"w{worker}"]) for m in own),
            *(store.append_message(m, ["bob"]) for m in shared),
        )
    finally:
        await store.close()
    seqs = [r.message.message_seq for r in results[:count]]
    dups = [[r.message.message_id, r.message.message_seq, r.duplicate] for r in results[count:]]
    print(json.dumps({"seqs": seqs, "shared": dups}), flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))
