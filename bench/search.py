"""Search latency at 10^5 and 10^6 messages: SQLite FTS5 (the embedded default) and PostgreSQL.

**Corpus** (deterministic, seed 13): N messages spread evenly over 100 group channels, each a
text message of 4–12 words drawn from a Zipf vocabulary of 20,000 made-up words (rank r with
weight 1/r: the commonest word is in about half of the messages), every 50th a file message
whose ``name`` is searched too. Twenty planted **rare** words are in about N/40,000 messages
each. Two readers: ``wide``, a member of all 100 channels, and ``narrow``, of 5 of them.

**Prefill** (documented so it can be repeated): rows go straight into the store's own schema,
with the search index built by the store's own triggers in the insert's transaction, as every
message is indexed in production —

* SQLite: the store's connection setup and migrations (``magpie.store._sqlite_setup``), then
  ``executemany`` INSERTs of 50,000 messages per transaction with ``synchronous=OFF`` (the
  writer thread's statements, without the per-message seq and conversation work);
* PostgreSQL: a fresh database, :class:`~magpie.store.postgres.PostgresStore` migrates it,
  then ``COPY`` of the message rows (row triggers fire for ``COPY``).

Rows/s of the prefill is printed. **Queries** go through the store API
(``Store.search_messages``, the call behind ``POST /message/search``; limit 20, newest first),
one at a time, each class 200 times with its words drawn at random: a common word, a
mid-frequency word (ranks 200–1,000), a rare word, a two-letter prefix, two words, each for
the wide and the narrow reader, and a mid word in one named channel. Printed: p50 / p99 ms and
the mean rows returned.

**The index trigger's cost** (SQLite, at the first size): the prefill timed three ways — the
messages insert without the index trigger, with the shipped trigger, and with a trigger that
parses the payload once (``json_each``) — to measure what parsing the payload JSON several
times per message (``json_valid``, ``json_type``, ``json_extract`` on the same text) costs.

**Prefix indexes** (SQLite; ``MAGPIE_BENCH_SEARCH_PREFIX``, FTS5 ``prefix`` options separated
by ``;``, e.g. ``2 3;2 3 4``): instead of the above, at every size the corpus is built once and
each option measured on a copy of it, beside the table as migrated, the same rebuilt without a
prefix index and no index trigger at all: the rebuild's seconds (the old table's rows copied
into a new one), the index's size (``dbstat``), the query classes plus prefixes of 1, 3 and 4
letters, and the write cost per message — live, 20,000 messages inserted into the full
database at 1, 20 and 200 per transaction (``synchronous=OFF``: CPU, not fsync), and bulk,
as in the trigger-cost table.

**Merge settings** (SQLite; ``MAGPIE_BENCH_SEARCH_MERGE``, variants separated by ``;``, each
FTS5 configuration options as ``name=value`` separated by ``,``, e.g.
``automerge=8;automerge=16;crisismerge=64;pgsz=8000``): instead of the above, at every size
the corpus is built once and each variant measured on a copy of it, beside the table as
migrated and no index trigger at all: the options written into the table's configuration
(``INSERT INTO message_search (message_search, rank) VALUES (name, value)``, as a migration
would; ``columnsize`` and ``detail`` are options of the table's definition instead, set by
recreating the table as for the prefix indexes), the live inserts as for the prefix indexes
(1, 20 and 200 per transaction), then the segments the index is left with and the query
classes, after the inserts (more segments, more doclists for a query to read).

Sizes: ``MAGPIE_BENCH_SEARCH_SIZES`` (default ``100000,1000000``; the 10^6 run takes a few
minutes, mostly the prefill); PostgreSQL at ``MAGPIE_BENCH_POSTGRES_URL`` (default
``postgresql://postgres@127.0.0.1:5432/postgres``; a database of its own, dropped afterwards;
``MAGPIE_BENCH_SEARCH_PG=0`` skips it, and it is skipped with a note when unreachable).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import random
import shutil
import sqlite3
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from importlib import resources
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from bench._servers import percentile
from magpie.domain.search import SearchQuery, search_terms
from magpie.store._sqlite_setup import connect, ensure_epoch, load_migrations, migrate
from magpie.store._sqlite_setup import run_transaction as transaction
from magpie.store.interface import Store
from magpie.store.sqlite import SqliteStore

SIZES = tuple(
    int(s) for s in os.environ.get("MAGPIE_BENCH_SEARCH_SIZES", "100000,1000000").split(",")
)
WITH_PG = os.environ.get("MAGPIE_BENCH_SEARCH_PG", "1") != "0"
PG_SERVER = os.environ.get(
    "MAGPIE_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
#: FTS5 prefix options to compare (``;``-separated, e.g. ``2 3;2 3 4``); set, the run
#: measures them instead of the backends.
PREFIXES = tuple(
    p.strip() for p in os.environ.get("MAGPIE_BENCH_SEARCH_PREFIX", "").split(";") if p.strip()
)
#: FTS5 configuration variants to compare (``;``-separated; each ``name=value`` options
#: separated by ``,``, e.g. ``automerge=8;automerge=0,crisismerge=64``); set, the run
#: measures them instead of the backends.
MERGES = tuple(
    m.strip() for m in os.environ.get("MAGPIE_BENCH_SEARCH_MERGE", "").split(";") if m.strip()
)
#: Messages inserted into each prefix variant's database to time the live inserts, for each
#: of :data:`LIVE_BATCHES` messages per transaction.
LIVE_INSERTS = 20_000
LIVE_BATCHES = (1, 20, 200)
CHANNELS = 100
NARROW = 5
GROUP = 2
VOCABULARY = 20_000
RARE_EVERY = 2_000
RARE_WORDS = 20
QUERIES = 200
LIMIT = 20
BATCH = 50_000
SEED = 13

_CONSONANTS = "bdfgklmnprstvz"
_SYLLABLES = [c + v for c in _CONSONANTS for v in "aeiou"]  # 70 two-letter syllables


def word(i: int) -> str:
    """The vocabulary's word of rank ``i`` (0 is the commonest), distinct for each ``i``."""
    n = len(_SYLLABLES)
    out = _SYLLABLES[i % n] + _SYLLABLES[(i // n) % n]
    return out + _SYLLABLES[i // (n * n)] if i >= n * n else out


WORDS = [word(i) for i in range(VOCABULARY)]
RARE = [f"yrare{s}" for s in _SYLLABLES[:RARE_WORDS]]
_CUMULATIVE = list(itertools.accumulate(1 / (r + 1) for r in range(VOCABULARY)))


def channel_of(i: int) -> str:
    return f"g{i % CHANNELS:02d}"


def text_of(rng: random.Random, i: int) -> str:
    picked = rng.choices(WORDS, cum_weights=_CUMULATIVE, k=4 + rng.randrange(9))
    if i % RARE_EVERY == 7:
        picked.append(RARE[(i // RARE_EVERY) % RARE_WORDS])
    return " ".join(picked)


def payload_of(rng: random.Random, i: int) -> bytes:
    text = text_of(rng, i)
    if i % 50 == 3:
        doc: dict[str, object] = {"type": 8, "url": "/file/x", "name": text + ".pdf", "size": 1}
    else:
        doc = {"type": 1, "content": text}
    return json.dumps(doc, separators=(",", ":")).encode()


def messages(start: int, stop: int) -> Iterator[tuple[object, ...]]:
    """Message rows ``start``..``stop`` (ids from 1; the seq within its channel)."""
    rng = random.Random(SEED * 1_000_003 + start)
    for i in range(start, stop):
        yield (
            i + 1,
            i // CHANNELS + 1,
            f"c{i}",
            f"u{i % 500}",
            channel_of(i),
            GROUP,
            1_700_000_000 + i,
            payload_of(rng, i),
        )


# --- queries -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class QueryClass:
    """One row of the table: a kind of keyword, for a reader, maybe in one channel."""

    name: str
    reader: str
    pick: tuple[str, ...]  # keywords to draw from
    channel: bool = False


def query_classes() -> list[QueryClass]:
    common = tuple(WORDS[:5])
    mid = tuple(WORDS[200:1000])
    prefixes = tuple(_SYLLABLES)
    two = tuple(f"{a} {b}" for a in WORDS[:5] for b in WORDS[200:260])
    return [
        QueryClass("common word", "wide", common),
        QueryClass("common word", "narrow", common),
        QueryClass("mid word (rank 200-1,000)", "wide", mid),
        QueryClass("mid word", "narrow", mid),
        QueryClass("rare word", "wide", tuple(RARE)),
        QueryClass("rare word", "narrow", tuple(RARE)),
        QueryClass("prefix (2 letters)", "wide", prefixes),
        QueryClass("prefix (2 letters)", "narrow", prefixes),
        QueryClass("two words (common + mid)", "wide", two),
        QueryClass("mid word in one channel", "wide", mid, channel=True),
    ]


@dataclass(frozen=True)
class Timing:
    name: str
    reader: str
    p50_ms: float
    p99_ms: float
    rows: float


async def time_queries(store: Store, classes: list[QueryClass] | None = None) -> list[Timing]:
    rng = random.Random(SEED)
    out = []
    for qc in query_classes() if classes is None else classes:
        times, rows = [], 0
        for _ in range(QUERIES):
            terms = search_terms(rng.choice(qc.pick))
            channel = f"g{rng.randrange(CHANNELS):02d}" if qc.channel else ""
            query = SearchQuery(
                terms, channel_id=channel, channel_type=GROUP if channel else 0, limit=LIMIT
            )
            t0 = time.perf_counter()
            found = await store.search_messages(qc.reader, query)
            times.append(time.perf_counter() - t0)
            rows += len(found)
        out.append(
            Timing(
                qc.name,
                qc.reader,
                percentile(times, 50) * 1e3,
                percentile(times, 99) * 1e3,
                rows / QUERIES,
            )
        )
    return out


# --- SQLite ------------------------------------------------------------------------------------


def _seed_sqlite(path: Path, n: int) -> float:
    """Prefill; returns the seconds spent in the message INSERTs (their indexing included,
    generating the rows not)."""
    conn = connect(str(path), synchronous="OFF", busy_timeout_ms=5000, reader=False)
    try:
        migrate(conn, load_migrations())
        transaction(conn, ensure_epoch)
        transaction(conn, _members)
        elapsed = 0.0
        for start in range(0, n, BATCH):
            rows = list(messages(start, min(n, start + BATCH)))
            t0 = time.perf_counter()
            transaction(conn, partial(_insert, rows=rows))
            elapsed += time.perf_counter() - t0
        seqs = [(channel_of(c), GROUP, (n - c + CHANNELS - 1) // CHANNELS) for c in range(CHANNELS)]
        transaction(conn, lambda c: c.executemany("INSERT INTO channel_seq VALUES (?, ?, ?)", seqs))
        return elapsed
    finally:
        conn.close()


def _members(conn: sqlite3.Connection) -> None:
    channels = [(channel_of(c), GROUP) for c in range(CHANNELS)]
    conn.executemany("INSERT INTO channels (channel_id, channel_type) VALUES (?, ?)", channels)
    subs = [(c, t, "wide") for c, t in channels] + [(c, t, "narrow") for c, t in channels[:NARROW]]
    conn.executemany(
        "INSERT INTO subscribers (channel_id, channel_type, uid) VALUES (?, ?, ?)", subs
    )


def _insert(conn: sqlite3.Connection, rows: Sequence[tuple[object, ...]]) -> None:
    conn.executemany(
        "INSERT INTO messages (message_id, message_seq, client_msg_no, from_uid, channel_id,"
        " channel_type, timestamp, payload) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        rows,
    )


async def _sqlite_queries(path: Path) -> list[Timing]:
    store = SqliteStore(path, synchronous="NORMAL")
    await store.open()
    try:
        return await time_queries(store)
    finally:
        await store.close()


def sqlite_run(n: int) -> tuple[float, list[Timing]]:
    """(prefill rows/s, query timings) at ``n`` messages."""
    with tempfile.TemporaryDirectory(prefix="magpie-bench-search-") as tmp:
        path = Path(tmp) / "search.sqlite3"
        seconds = _seed_sqlite(path, n)
        return n / seconds, asyncio.run(_sqlite_queries(path))


# --- the index triggers' cost ---------------------------------------------------------------

_MESSAGES = """CREATE TABLE messages (message_id INTEGER PRIMARY KEY, message_seq INTEGER,
    client_msg_no TEXT, from_uid TEXT, channel_id TEXT, channel_type INTEGER,
    timestamp INTEGER, payload BLOB)"""
_SINKS = {
    "plain": "CREATE TABLE sink (rowid INTEGER PRIMARY KEY, text TEXT)",
    "fts5": "CREATE VIRTUAL TABLE sink USING fts5(text, tokenize='unicode61 remove_diacritics 2')",
}

#: The same trigger without reading the payload (a constant text).
_NO_JSON = """CREATE TRIGGER messages_index_text AFTER INSERT ON messages
WHEN NEW.message_seq > 0
BEGIN
    INSERT INTO sink (rowid, text) VALUES (NEW.message_id, 'text');
END;"""
#: One JSON function (one parse): the content alone (not a correct index).
_ONE_CALL = """CREATE TRIGGER messages_index_text AFTER INSERT ON messages
WHEN NEW.message_seq > 0
BEGIN
    INSERT INTO sink (rowid, text)
    VALUES (NEW.message_id, json_extract(CAST(NEW.payload AS TEXT), '$.content'));
END;"""
#: The same index text from one json_valid and one json_each (one parse, plus the
#: table-valued function's rows).
_ONE_PARSE = """CREATE TRIGGER messages_index_text AFTER INSERT ON messages
WHEN NEW.message_seq > 0 AND json_valid(CAST(NEW.payload AS TEXT))
BEGIN
    INSERT INTO sink (rowid, text)
    SELECT NEW.message_id, t FROM (
        SELECT trim(
            coalesce(max(CASE WHEN key = 'content' AND type = 'text' THEN value END), '')
            || ' ' ||
            coalesce(max(CASE WHEN key = 'name' AND type = 'text' THEN value END), '')
        ) AS t, max(key = 'type' AND value = 99) AS cmd
        FROM json_each(CAST(NEW.payload AS TEXT))
    ) WHERE t <> '' AND NOT cmd;
END;"""


def shipped_trigger(sink: str = "sink") -> str:
    """The message insert trigger of the SQLite store's search migration, writing to
    ``sink``."""
    sql = (resources.files("magpie.store") / "migrations" / "0011_search.sql").read_text()
    start = sql.index("CREATE TRIGGER messages_index_text")
    return sql[start : sql.index("END;", start) + 4].replace("message_search", sink)


def _insert_us(rows: Sequence[tuple[object, ...]], sink: str, trigger: str) -> float:
    """µs per message of inserting ``rows`` into an in-memory ``messages`` table with the
    ``trigger`` (best of three); ``sink`` names one of :data:`_SINKS` or is its SQL."""
    best = float("inf")
    for _ in range(3):
        conn = sqlite3.connect(":memory:")
        try:
            conn.execute(_MESSAGES)
            conn.execute(_SINKS.get(sink, sink))
            if trigger:
                conn.executescript(trigger)
            t0 = time.perf_counter()
            with conn:
                _insert(conn, rows)
            best = min(best, time.perf_counter() - t0)
        finally:
            conn.close()
    return best / len(rows) * 1e6


def trigger_cost(n: int) -> dict[str, float]:
    """µs per message inserted: the index trigger's JSON work (into a plain table, so the
    JSON functions are all that differs) and the FTS5 insert of the shipped trigger."""
    rows = list(messages(0, n))
    return {
        "no trigger": _insert_us(rows, "plain", ""),
        "trigger, no JSON": _insert_us(rows, "plain", _NO_JSON),
        "one json_extract": _insert_us(rows, "plain", _ONE_CALL),
        "shipped (7 JSON calls)": _insert_us(rows, "plain", shipped_trigger()),
        "one parse (json_each)": _insert_us(rows, "plain", _ONE_PARSE),
        "shipped, into FTS5": _insert_us(rows, "fts5", shipped_trigger()),
    }


# --- FTS5 prefix indexes ---------------------------------------------------------------------

#: The search table as the store creates it, with ``{option}`` for the prefix index.
_SEARCH_TABLE = (
    "CREATE VIRTUAL TABLE message_search USING fts5("
    "text, tokenize = 'unicode61 remove_diacritics 2'{option})"
)


def rebuild_search(conn: sqlite3.Connection, prefix: str) -> None:
    """Transaction body: recreate ``message_search`` with ``prefix`` (``''``: none) and refill
    it from the old table through a temporary copy (the triggers that write it stay)."""
    rebuild_with(conn, f", prefix = '{prefix}'" if prefix else "")


def rebuild_with(conn: sqlite3.Connection, option: str) -> None:
    """:func:`rebuild_search` with ``option`` (``", name = value"``s) in the table's
    definition."""
    conn.execute("CREATE TEMP TABLE search_copy (message_id INTEGER PRIMARY KEY, text TEXT)")
    conn.execute("INSERT INTO search_copy SELECT rowid, text FROM message_search")
    conn.execute("DROP TABLE message_search")
    conn.execute(_SEARCH_TABLE.format(option=option))
    conn.execute("INSERT INTO message_search (rowid, text) SELECT * FROM search_copy")
    conn.execute("DROP TABLE search_copy")


def prefix_classes() -> list[QueryClass]:
    """The query classes of :func:`query_classes` and prefixes of 1, 3 and 4 letters."""
    letters = tuple(sorted({s[0] for s in _SYLLABLES}))
    three = tuple(s + t[0] for s in _SYLLABLES[:14] for t in _SYLLABLES[::5])
    four = tuple(WORDS[:5] + WORDS[200:260])
    return [
        *query_classes(),
        QueryClass("prefix (1 letter)", "wide", letters),
        QueryClass("prefix (3 letters)", "wide", three),
        QueryClass("prefix (4 letters)", "wide", four),
        QueryClass("prefix (3 letters)", "narrow", three),
    ]


def _index_bytes(conn: sqlite3.Connection) -> int:
    row = conn.execute(
        "SELECT sum(pgsize) FROM dbstat WHERE name LIKE 'message_search%'"
    ).fetchone()
    return int(row[0] or 0)


def _live_insert_us(path: Path, n: int, first: int, per_txn: int) -> float:
    """µs per message of ``n`` message INSERTs (ids from ``first``), ``per_txn`` per
    transaction, into the database at ``path`` (its triggers, its search table)."""
    rows = list(messages(first, first + n))
    conn = connect(str(path), synchronous="OFF", busy_timeout_ms=5000, reader=False)
    try:
        t0 = time.perf_counter()
        for i in range(0, n, per_txn):
            transaction(conn, partial(_insert, rows=rows[i : i + per_txn]))
        return (time.perf_counter() - t0) / n * 1e6
    finally:
        conn.close()


@dataclass(frozen=True)
class PrefixResult:
    label: str
    rebuild_s: float
    index_mb: float
    live_us: tuple[float, ...]  # per message, for each of LIVE_BATCHES
    memory_us: float
    timings: list[Timing]


async def _prefix_queries(path: Path) -> list[Timing]:
    store = SqliteStore(path, synchronous="NORMAL")
    await store.open()
    try:
        return await time_queries(store, prefix_classes())
    finally:
        await store.close()


def prefix_variant(base: Path, work: Path, n: int, option: str | None) -> PrefixResult:
    """A copy of ``base`` (``n`` messages) with the search table rebuilt with the prefix
    ``option`` by :func:`rebuild_search` (``None``: left as the migrations made it;
    ``'none'``: no index trigger at all): the rebuild's seconds, the index's size, the live
    inserts' µs per message, the in-memory bulk insert's, query timings."""
    shutil.copyfile(base, work)
    conn = connect(str(work), synchronous="OFF", busy_timeout_ms=5000, reader=False)
    try:
        t0 = time.perf_counter()
        if option == "none":
            conn.execute("DROP TRIGGER messages_index_text")
        elif option is not None:
            transaction(conn, partial(rebuild_search, prefix=option))
        rebuild = time.perf_counter() - t0
        table = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'message_search'")
        sink = table.fetchone()[0].replace("message_search", "sink")
        size = _index_bytes(conn)
    finally:
        conn.close()
    timings = [] if option == "none" else asyncio.run(_prefix_queries(work))
    live = tuple(
        _live_insert_us(work, LIVE_INSERTS, n + i * LIVE_INSERTS, per_txn)
        for i, per_txn in enumerate(LIVE_BATCHES)
    )
    rows = list(messages(0, min(n, 100_000)))
    if option == "none":
        memory = _insert_us(rows, "plain", "")
    else:
        memory = _insert_us(rows, sink, shipped_trigger())
    work.unlink()
    names = {"none": "(no index trigger)", None: "none (as migrated)", "": "none, rebuilt"}
    return PrefixResult(
        names.get(option, f"'{option}'"), rebuild, size / 2**20, live, memory, timings
    )


def prefix_run(n: int) -> list[PrefixResult]:
    with tempfile.TemporaryDirectory(prefix="magpie-bench-search-") as tmp:
        base = Path(tmp) / "base.sqlite3"
        _seed_sqlite(base, n)
        work = Path(tmp) / "work.sqlite3"
        return [prefix_variant(base, work, n, o) for o in ["none", None, "", *PREFIXES]]


def _prefix_report(n: int, results: list[PrefixResult]) -> None:
    print(f"\nSQLite FTS5 prefix indexes, {n:,} messages")
    live = "".join(f"{f'x{b} µs':>10}" for b in LIVE_BATCHES)
    print(
        f"µs per message inserted: live, {LIVE_INSERTS:,} into the database at 1, 20, 200 per"
        f" transaction (synchronous=OFF); bulk, {min(n, 100_000):,} into an empty one in memory"
    )
    print(f"{'prefix option':22}{'rebuild s':>10}{'index MB':>10}{live}{'bulk µs':>9}")
    for r in results:
        cells = "".join(f"{us:>10.1f}" for us in r.live_us)
        print(f"{r.label:22}{r.rebuild_s:>10.1f}{r.index_mb:>10.1f}{cells}{r.memory_us:>9.1f}")
    queried = [r for r in results if r.timings]
    print(f"{'p50 / p99 ms':38}" + "".join(f"{r.label[:15]:>16}" for r in queried))
    for i, qc in enumerate(prefix_classes()):
        cells = "".join(f"{r.timings[i].p50_ms:>8.2f}/{r.timings[i].p99_ms:<7.1f}" for r in queried)
        print(f"{qc.name[:30]:30}{qc.reader:>8}{cells}")


# --- FTS5 merge settings ---------------------------------------------------------------------


def merge_options(variant: str) -> list[tuple[str, int | str]]:
    """``'automerge=8,detail=column'`` as ``[('automerge', 8), ('detail', 'column')]``."""
    out: list[tuple[str, int | str]] = []
    for item in variant.split(","):
        name, _, value = (part.strip() for part in item.partition("="))
        out.append((name, int(value) if value.lstrip("-").isdigit() else value))
    return out


#: Options of the table's definition rather than its configuration: set by recreating the
#: table (:func:`rebuild_with`).
TABLE_OPTIONS = ("columnsize", "detail")


def _segments(conn: sqlite3.Connection) -> int:
    """The index's segments (each has its rows in ``message_search_idx``)."""
    return int(conn.execute("SELECT count(DISTINCT segid) FROM message_search_idx").fetchone()[0])


@dataclass(frozen=True)
class MergeResult:
    label: str
    live_us: tuple[float, ...]  # per message, for each of LIVE_BATCHES
    segments: tuple[int, int]  # before and after the live inserts
    index_mb: float  # after the live inserts
    timings: list[Timing]  # after the live inserts


def merge_variant(base: Path, work: Path, n: int, variant: str | None) -> MergeResult:
    """A copy of ``base`` (``n`` messages) with the FTS5 options of ``variant`` set (``None``:
    as migrated; ``'none'``: no index trigger at all): the live inserts' µs per message, then
    the segments, the index's size and the query timings."""
    shutil.copyfile(base, work)
    conn = connect(str(work), synchronous="OFF", busy_timeout_ms=5000, reader=False)
    try:
        if variant == "none":
            conn.execute("DROP TRIGGER messages_index_text")
        elif variant is not None:
            options = merge_options(variant)
            table = "".join(f", {k} = {v}" for k, v in options if k in TABLE_OPTIONS)
            if table:
                transaction(conn, partial(rebuild_with, option=table))
            config = [(k, v) for k, v in options if k not in TABLE_OPTIONS]
            transaction(
                conn,
                lambda c: c.executemany(
                    "INSERT INTO message_search (message_search, rank) VALUES (?, ?)", config
                ),
            )
        before = _segments(conn)
    finally:
        conn.close()
    live = tuple(
        _live_insert_us(work, LIVE_INSERTS, n + i * LIVE_INSERTS, per_txn)
        for i, per_txn in enumerate(LIVE_BATCHES)
    )
    conn = connect(str(work), synchronous="OFF", busy_timeout_ms=5000, reader=False)
    try:
        after, size = _segments(conn), _index_bytes(conn)
    finally:
        conn.close()
    timings = [] if variant == "none" else asyncio.run(_sqlite_queries(work))
    work.unlink()
    names = {"none": "(no index trigger)", None: "as migrated"}
    return MergeResult(
        names.get(variant, variant or ""), live, (before, after), size / 2**20, timings
    )


def merge_run(n: int) -> list[MergeResult]:
    with tempfile.TemporaryDirectory(prefix="magpie-bench-search-") as tmp:
        base = Path(tmp) / "base.sqlite3"
        _seed_sqlite(base, n)
        work = Path(tmp) / "work.sqlite3"
        return [merge_variant(base, work, n, v) for v in ["none", None, *MERGES]]


def _merge_report(n: int, results: list[MergeResult]) -> None:
    print(f"\nSQLite FTS5 merge settings, {n:,} messages")
    live = "".join(f"{f'x{b} µs':>10}" for b in LIVE_BATCHES)
    print(
        f"µs per message inserted live, {LIVE_INSERTS:,} into the database at 1, 20, 200 per"
        " transaction (synchronous=OFF); the index's segments before -> after, its size after"
    )
    print(f"{'options':34}{live}{'segments':>14}{'MB':>7}")
    for r in results:
        cells = "".join(f"{us:>10.1f}" for us in r.live_us)
        segs = f"{r.segments[0]} -> {r.segments[1]}"
        print(f"{r.label[:34]:34}{cells}{segs:>14}{r.index_mb:>7.1f}")
    queried = [r for r in results if r.timings]
    print("p50 / p99 ms after the live inserts")
    print(f"{'':38}" + "".join(f"{r.label[:15]:>16}" for r in queried))
    for i, qc in enumerate(query_classes()):
        cells = "".join(f"{r.timings[i].p50_ms:>8.2f}/{r.timings[i].p99_ms:<7.1f}" for r in queried)
        print(f"{qc.name[:30]:30}{qc.reader:>8}{cells}")


# --- PostgreSQL --------------------------------------------------------------------------------


async def _pg(url: str, sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def _seed_pg(url: str, n: int, variant: str = "") -> float:
    """A migrated schema at ``url`` filled by COPY; returns the seconds spent copying.
    ``variant`` (SQL run before the COPY) changes the index trigger for :func:`pg_trigger_cost`."""
    import asyncpg

    from magpie.store.postgres import PostgresStore

    store = PostgresStore(url, pool_size=2, writers=1)
    await store.open()  # migrates
    await store.close()
    conn = await asyncpg.connect(url)
    try:
        channels = [(channel_of(c), GROUP) for c in range(CHANNELS)]
        await conn.executemany(
            "INSERT INTO channels (channel_id, channel_type) VALUES ($1, $2)", channels
        )
        subs = [(c, t, "wide") for c, t in channels] + [
            (c, t, "narrow") for c, t in channels[:NARROW]
        ]
        await conn.executemany(
            "INSERT INTO subscribers (channel_id, channel_type, uid) VALUES ($1, $2, $3)", subs
        )
        if variant:
            await conn.execute(variant)
        columns = ["message_id", "message_seq", "client_msg_no", "from_uid", "channel_id",
                   "channel_type", "timestamp", "payload"]  # fmt: skip
        elapsed = 0.0
        for start in range(0, n, BATCH):
            rows = list(messages(start, min(n, start + BATCH)))
            t0 = time.perf_counter()
            await conn.copy_records_to_table("messages", records=rows, columns=columns)
            elapsed += time.perf_counter() - t0
        await conn.execute("ANALYZE")
        return elapsed
    finally:
        await conn.close()


async def pg_run(n: int) -> tuple[float, list[Timing]]:
    from magpie.store.postgres import PostgresStore

    name = f"magpie_bench_search_{uuid.uuid4().hex[:10]}"
    await _pg(PG_SERVER, f'CREATE DATABASE "{name}"')
    parts = urlsplit(PG_SERVER)
    url = urlunsplit((parts.scheme, parts.netloc, "/" + name, "", ""))
    try:
        seconds = await _seed_pg(url, n)
        store = PostgresStore(url)
        await store.open()
        try:
            return n / seconds, await time_queries(store)
        finally:
            await store.close()
    finally:
        await _pg(PG_SERVER, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


#: PostgreSQL trigger variants: the index trigger off; the payload read without the
#: EXCEPTION block of ``magpie_payload_doc`` (a subtransaction per message; without it a
#: payload that is not JSON would fail the insert: for measuring only).
PG_VARIANTS = {
    "no index trigger": "ALTER TABLE messages DISABLE TRIGGER messages_index_text",
    "shipped trigger": "",
    "without the EXCEPTION block": """
        CREATE OR REPLACE FUNCTION magpie_payload_doc(payload bytea) RETURNS jsonb
        LANGUAGE sql IMMUTABLE AS $$ SELECT convert_from(payload, 'UTF8')::jsonb $$""",
}


async def pg_trigger_cost(n: int) -> dict[str, float]:
    """µs per message COPYed with each of :data:`PG_VARIANTS`, each in a fresh database."""
    out = {}
    for name, variant in PG_VARIANTS.items():
        db = f"magpie_bench_search_{uuid.uuid4().hex[:10]}"
        await _pg(PG_SERVER, f'CREATE DATABASE "{db}"')
        parts = urlsplit(PG_SERVER)
        try:
            url = urlunsplit((parts.scheme, parts.netloc, "/" + db, "", ""))
            out[name] = await _seed_pg(url, n, variant) / n * 1e6
        finally:
            await _pg(PG_SERVER, f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
    return out


async def _pg_reachable() -> str:
    try:
        await asyncio.wait_for(_pg(PG_SERVER, "SELECT 1"), 10)
    except Exception as e:  # any failure means: skip with a note
        return f"{type(e).__name__}: {e}"
    return ""


# --- report ------------------------------------------------------------------------------------


def _table(title: str, rate: float, timings: list[Timing]) -> None:
    print(f"\n{title}: prefill {rate:,.0f} rows/s (INSERTs with the index triggers)")
    print(f"{'query':30}{'reader':>8}{'p50 ms':>9}{'p99 ms':>9}{'rows':>6}")
    for t in timings:
        print(f"{t.name:30}{t.reader:>8}{t.p50_ms:>9.2f}{t.p99_ms:>9.2f}{t.rows:>6.1f}")


def _growth(results: dict[tuple[str, int], list[Timing]]) -> None:
    """p50 and p99 at the largest size over the smallest, per query class and backend."""
    small, large = SIZES[0], SIZES[-1]
    backends = [b for b in ("sqlite", "pg") if (b, large) in results]
    print(f"\np50 / p99 ms at {small:,} -> {large:,} messages")
    print(f"{'query':30}{'reader':>8}" + "".join(f"{b:>36}" for b in backends))
    for i, qc in enumerate(query_classes()):
        cells = []
        for b in backends:
            x, y = results[b, small][i], results[b, large][i]
            cells.append(
                f"{x.p50_ms:.2f}/{x.p99_ms:.1f} -> {y.p50_ms:.2f}/{y.p99_ms:.1f} "
                f"(p99 x{y.p99_ms / x.p99_ms:.1f})"
            )
        print(f"{qc.name:30}{qc.reader:>8}" + "".join(f"{c:>36}" for c in cells))


def _trigger_report(n: int, with_pg: bool) -> None:
    cost = trigger_cost(n)
    base = cost["trigger, no JSON"]
    print(f"\nSQLite index trigger, {n:,} messages inserted in memory, µs per message:")
    for variant, us in cost.items():
        json_part = "JSON calls" in variant or "parse" in variant or "json_" in variant
        print(f"  {variant:26}{us:>8.1f}" + (f"  (JSON: +{us - base:.1f} µs)" if json_part else ""))
    fts = cost["shipped, into FTS5"] - cost["shipped (7 JSON calls)"]
    json_us = cost["shipped (7 JSON calls)"] - base
    index_us = cost["shipped, into FTS5"] - cost["no trigger"]
    print(
        f"  the FTS5 insert: +{fts:.1f} µs; the shipped trigger's JSON calls: {json_us:.1f} µs, "
        f"{json_us / max(index_us, 1e-9) * 100:.0f}% of the index's {index_us:.1f} µs"
    )
    if with_pg:
        pg = asyncio.run(pg_trigger_cost(n))
        print(f"PostgreSQL, {n:,} messages by COPY, µs per message:")
        for variant, us in pg.items():
            print(f"  {variant:30}{us:>8.1f}")


def run() -> None:
    """Every size on SQLite, then PostgreSQL; growth; the index triggers' cost (or, with
    ``MAGPIE_BENCH_SEARCH_PREFIX``, the prefix indexes, or with ``MAGPIE_BENCH_SEARCH_MERGE``
    the merge settings, at every size)."""
    if MERGES:
        for n in SIZES:
            _merge_report(n, merge_run(n))
        return
    if PREFIXES:
        for n in SIZES:
            _prefix_report(n, prefix_run(n))
        return
    print(
        f"{CHANNELS} group channels, 4-12 words per message from {VOCABULARY:,} (Zipf), "
        f"readers: wide = all channels, narrow = {NARROW}; {QUERIES} queries per row, limit {LIMIT}"
    )
    results: dict[tuple[str, int], list[Timing]] = {}
    for n in SIZES:
        rate, timings = sqlite_run(n)
        results["sqlite", n] = timings
        _table(f"SQLite FTS5, {n:,} messages", rate, timings)
    skip = asyncio.run(_pg_reachable()) if WITH_PG else "MAGPIE_BENCH_SEARCH_PG=0"
    if skip:
        print(f"\nPostgreSQL skipped: {skip}")
    else:
        for n in SIZES:
            rate, timings = asyncio.run(pg_run(n))
            results["pg", n] = timings
            _table(f"PostgreSQL tsvector/GIN, {n:,} messages", rate, timings)
    if len(SIZES) > 1:
        _growth(results)
    _trigger_report(min(SIZES[0], 100_000), not skip)


if __name__ == "__main__":
    run()
