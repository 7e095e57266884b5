"""The ``magpie`` command: ``serve`` runs a node, ``demo`` runs one with seeded demo data."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
import time
import traceback
from collections.abc import Awaitable, Callable, Iterator, Sequence
from pathlib import Path

import uvloop

from magpie import __version__, backup
from magpie import admin as admin_cli
from magpie.app import Node
from magpie.cards import CreateRequest
from magpie.client import chat as chat_cli
from magpie.config import Settings, load_settings
from magpie.core.auth import hash_token
from magpie.core.messaging import SendRequest
from magpie.datalock import DataLock
from magpie.domain.members import OWNER
from magpie.errors import StartupError
from magpie.failures import EXIT_CONFIG, check_writable_dir, explain
from magpie.guard import raise_nofile_limit
from magpie.logs import configure_logging
from magpie.protocol.packets import Flags
from magpie.store.interface import ChannelInfo, TokenRow
from magpie.web import DEMO_GROUP, DEMO_OWNER, DEMO_USERS
from magpie.workers import Supervisor, become_worker, fixed_ports, refusal

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="magpie", description=__doc__)
    parser.add_argument("--version", action="version", version=f"magpie {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", help="TOML settings file ([magpie] table)")
    common.add_argument(
        "--debug", action="store_true", help="print the traceback of a failure, not just why"
    )
    serve = sub.add_parser("serve", parents=[common], help="run a Magpie node")
    serve.add_argument(
        "--workers",
        type=_positive,
        default=1,
        help="worker processes on the same ports (SO_REUSEPORT), each a cluster member with "
        "its own node id; needs PostgreSQL (store_url) and Redis (bus_url)",
    )
    serve.add_argument("--worker-ready-fd", type=int, default=-1, help=argparse.SUPPRESS)
    serve.add_argument("--worker-of", type=int, default=0, help=argparse.SUPPRESS)
    sub.add_parser(
        "demo", parents=[common], help="run a node with demo users, a group and a direct chat"
    )
    chat = sub.add_parser("chat", help="a terminal chat client (the Python SDK)")
    chat_cli.add_arguments(chat)
    admin = sub.add_parser(
        "admin", parents=[common], help="users, tokens, channels, messages of a running node"
    )
    admin_cli.add_arguments(admin)
    backup = sub.add_parser(
        "backup", parents=[common], help="copy the SQLite store into a new directory (online)"
    )
    backup.add_argument("dest", help="a new or empty directory")
    restore = sub.add_parser(
        "restore", parents=[common], help="put a backup in place (node stopped; new epoch)"
    )
    restore.add_argument("source", help="a directory written by magpie backup")
    restore.add_argument("--force", action="store_true", help="replace an existing store")
    return parser


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= 256:
        raise argparse.ArgumentTypeError(f"must be a number of processes 1–256 (got {text!r})")
    return value


async def _run(
    node: Node,
    after_start: Callable[[Node], Awaitable[None]] | None = None,
    ready_fd: int = -1,
) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await node.start()
    try:
        if after_start is not None:
            await after_start(node)
        _announce(node)
        if ready_fd >= 0:  # a worker: tell the supervisor (magpie.workers)
            os.write(ready_fd, b"1")
            os.close(ready_fd)
        stopping = asyncio.ensure_future(stop.wait())
        failing = asyncio.ensure_future(node.fatal.wait())
        await asyncio.wait({stopping, failing}, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        failing.cancel()
        print("magpie: draining connections and stopping", flush=True)
    finally:
        await node.stop()
    if node.fatal.is_set():
        raise StartupError(
            f"stopped: {node.fatal_reason}",
            "check the store's availability; restart the node (it leases a node id again)",
        )


def _announce(node: Node) -> None:
    s = node.settings
    tcp = f", TCP gateway on {s.host}:{node.tcp_port}" if node.tcp_port else ""
    print(
        f"magpie {__version__}: WebSocket gateway on ws://{s.host}:{node.ws_port}{tcp} "
        f"(node id {node.node_id})",
        flush=True,
    )
    openapi = "" if s.ops_listen else " (OpenAPI at /openapi.json)"
    print(f"magpie: HTTP API on http://{s.host}:{node.api_port}{openapi}", flush=True)
    if s.ops_address is not None:
        host = s.ops_address[0]
        print(
            f"magpie: /metrics, /openapi.json, /health, /ready on http://{host}:{node.ops_port}",
            flush=True,
        )
    if node.api_key_path is not None:
        print(f"magpie: business API key in {node.api_key_path}", flush=True)
    print(f"magpie: data in {s.store_display}", flush=True)
    if s.demo_ui:
        print(f"magpie: demo page at http://{s.host}:{node.api_port}/", flush=True)


async def _seed_demo(node: Node) -> None:
    store = node.store
    for uid in DEMO_USERS:
        for flag in (0, 1, 2):
            await store.set_token(TokenRow(uid, flag, hash_token(f"demo-{uid}"), 0))
    await store.upsert_channel(ChannelInfo(DEMO_GROUP, 2))
    await store.add_subscribers(DEMO_GROUP, 2, DEMO_USERS)
    await store.set_role(DEMO_GROUP, 2, [DEMO_OWNER], OWNER)  # may revoke any message
    welcome = json.dumps({"type": 1, "content": "Welcome to the Magpie demo group!"}).encode()
    await node.messaging.send(
        SendRequest("alice", DEMO_GROUP, 2, welcome, "demo-welcome", Flags.RED_DOT, from_api=True)
    )
    hello = json.dumps({"type": 1, "content": "Hi Bob, this is a direct chat."}).encode()
    await node.messaging.send(
        SendRequest("alice", "bob", 1, hello, "demo-direct", Flags.RED_DOT, from_api=True)
    )
    print(
        "magpie demo: users " + ", ".join(DEMO_USERS) + " (token demo-<uid>), group "
        f"'{DEMO_GROUP}' (owner {DEMO_OWNER}), direct chat alice<->bob",
        flush=True,
    )
    await _seed_cards(node)


_DEMO_DAY_MS = 24 * 3600 * 1000


def _demo_cards(now_ms: int) -> list[tuple[str, str, dict[str, object]]]:
    """One card of each type in the demo group: (creator, client_msg_no, definition)."""
    day = _DEMO_DAY_MS
    lunch = [
        {"id": "main", "kind": "single", "prompt": "Main course?", "options": ["Pizza", "Sushi"]},
        {"id": "extras", "kind": "multiple", "prompt": "Extras?", "options": ["Salad", "Cake"],
         "required": False},
        {"id": "note", "kind": "text", "prompt": "Allergies or wishes?", "required": False},
    ]  # fmt: skip
    return [
        ("alice", "demo-card-approval", {"type": "approval@1", "title": "Team offsite budget",
         "description": "2 days, 4 people, 1,800 EUR", "approvers": ["bob", "carol"],
         "mode": "all", "expires_at": now_ms + 7 * day}),
        ("bob", "demo-card-survey", {"type": "survey@1", "title": "Friday lunch",
         "questions": lunch, "closes_at": now_ms + 2 * day}),
        ("alice", "demo-card-task", {"type": "task@1", "title": "Prepare the quarterly report",
         "assignees": ["carol", "dave"], "due": now_ms + 3 * day}),
        ("dave", "demo-card-vote", {"type": "vote@1", "title": "Next team event",
         "options": ["Bowling", "Escape room", "Cooking class"], "closes_at": now_ms + 3 * day}),
    ]  # fmt: skip


async def _seed_cards(node: Node) -> None:
    """One card of each type (approval, survey, task, vote) in the demo group."""
    now_ms = time.time_ns() // 1_000_000
    for creator, client_msg_no, card in _demo_cards(now_ms):
        req = CreateRequest(creator, DEMO_GROUP, 2, card, "", client_msg_no)
        await node.cards.create(req)
    print("magpie demo: cards (approval, survey, task, vote) in the group", flush=True)


def _settings(config: str | None, demo: bool) -> Settings:
    """``serve``: the settings as given (no demo page unless ``demo_ui``); ``demo``: the page
    and the demo login on, data in ``var/demo`` unless a config file says otherwise."""
    if not demo:
        return load_settings(config)
    if config:
        return load_settings(config, demo_ui=True, demo_login=True)
    return load_settings(None, data_dir="var/demo", demo_ui=True, demo_login=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``magpie`` command."""
    args = _parser().parse_args(argv)
    if args.command == "chat":
        return chat_cli.run(args)
    if args.command in _TOOLS:
        try:
            configure_logging("WARNING")
            _TOOLS[args.command](args)
        except KeyboardInterrupt:
            return 130
        except Exception as exc:
            return fail(exc, debug=args.debug)
        return 0
    try:
        # Logging first, so warnings about the settings themselves are printed.
        configure_logging("WARNING")
        settings = _settings(args.config, args.command == "demo")
        configure_logging(settings.log_level, settings.log_format)
        workers = getattr(args, "workers", 1)
        if workers > 1:
            return _supervise(args, settings, workers)
        ready_fd = getattr(args, "worker_ready_fd", -1)
        if ready_fd >= 0:
            become_worker(args.worker_of)
        raise_nofile_limit()  # before the node sizes its connection caps to the limit
        with _exclusive(settings):
            node = Node(settings, reuse_port=ready_fd >= 0)
            # uvloop: measured faster than the default loop for the gateway
            # (docs/architecture.md).
            seed = _seed_demo if args.command == "demo" else None
            uvloop.run(_run(node, seed, ready_fd))
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        return fail(exc, debug=args.debug)
    return 0


def _supervise(args: argparse.Namespace, settings: Settings, workers: int) -> int:
    """``serve --workers N``: the parent of N workers (:mod:`magpie.workers`)."""
    why = refusal(settings, workers)
    if why is not None:
        print(f"magpie: {why}", file=sys.stderr)
        return EXIT_CONFIG
    command = [sys.executable, "-m", "magpie.cli", "serve"]
    if args.config:
        command += ["--config", args.config]
    if args.debug:
        command.append("--debug")
    env = {**os.environ, **fixed_ports(settings)}
    return Supervisor(command, workers, env).run()


@contextlib.contextmanager
def _exclusive(settings: Settings) -> Iterator[None]:
    """Hold the SQLite store's lock (:mod:`magpie.datalock`) while the node runs: a second
    ``magpie serve`` on it is refused. A PostgreSQL store is shared by design."""
    path = settings.sqlite_path
    if path is None:
        yield
        return
    check_writable_dir(Path(settings.data_dir))  # the usual message for a bad data_dir
    lock = DataLock(path)
    lock.acquire()
    try:
        yield
    finally:
        lock.release()


def _backup(args: argparse.Namespace) -> None:
    manifest = backup.backup(load_settings(args.config), Path(args.dest))
    print(
        f"magpie: backup of store epoch {manifest.epoch} (schema {manifest.schema_version}) "
        f"in {args.dest}: {', '.join(manifest.files)}",
        flush=True,
    )


def _restore(args: argparse.Namespace) -> None:
    settings = load_settings(args.config)
    backup.refuse_if_running(settings)
    done = backup.restore(settings, Path(args.source), force=args.force)
    print(
        f"magpie: restored {', '.join(done.files)} into {done.store.parent}; store epoch "
        f"{done.old_epoch} -> {done.new_epoch} (clients drop their caches and sync again)",
        flush=True,
    )


_TOOLS: dict[str, Callable[[argparse.Namespace], None]] = {
    "admin": admin_cli.run,
    "backup": _backup,
    "restore": _restore,
}


def fail(exc: BaseException, *, debug: bool) -> int:
    """Print why the command failed in one line (and, with ``--debug``, the traceback
    first); the exit status."""
    if debug:
        traceback.print_exception(exc)
    line, status = explain(exc)
    print(f"magpie: {line}", file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
