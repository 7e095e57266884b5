"""``magpie admin``: look after a running node over its HTTP API with the business key.

::

    magpie admin users list                     # uids holding tokens, their devices
    magpie admin users create alice             # registers a fresh token (printed once)
    magpie admin tokens list alice              # alice's devices with a token
    magpie admin tokens revoke alice [--device-flag 1]
    magpie admin channels list
    magpie admin channels create team --members alice,bob
    magpie admin channels show team
    magpie admin channels add team carol        # / remove
    magpie admin message 2128905632370135040    # message, extension, op log, delivery trace

Where the node is and its key come from the node's own settings (``--config``, ``MAGPIE_*``):
``http://<host>:<api_port>`` and ``api_key`` or ``data_dir/api_key`` — so on the node's
machine no option is needed; elsewhere ``--url`` and ``--api-key-file``. ``--json`` prints the
API's answer as is. Failures are one line (``magpie: …``) with what to do; tokens are shown
only when this command made them.
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

import httpx

from magpie.config import Settings, load_settings
from magpie.errors import CommandError

__all__ = ["add_arguments", "run"]

_WILDCARD = ("0.0.0.0", "::", "")  # noqa: S104 - bind addresses, compared only
_DEVICES = {0: "app", 1: "web", 2: "pc"}
_TIMEOUT = 15.0


#: ``--json`` is accepted after the sub-command too (``magpie admin users list --json``).
_JSON = argparse.ArgumentParser(add_help=False)
_JSON.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print JSON")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options and sub-commands of ``magpie admin``."""
    parser.add_argument("--url", help="the node's HTTP API (default: from its settings)")
    parser.add_argument("--api-key-file", help="a file holding the business API key")
    parser.add_argument("--json", action="store_true", help="print the API's JSON answers")
    area = parser.add_subparsers(dest="area", required=True)
    _users(area.add_parser("users", help="list or create users"))
    _tokens(area.add_parser("tokens", help="list or revoke a user's tokens"))
    _channels(area.add_parser("channels", help="list, create, show channels, edit members"))
    message = area.add_parser(
        "message", parents=[_JSON], help="a message, its extension, op log and trace"
    )
    message.add_argument("message_id", type=int)
    message.add_argument("--ops", type=int, default=20, help="op-log rows to show (0: none)")


def _users(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="action", required=True)
    ls = sub.add_parser("list", parents=[_JSON])
    ls.add_argument("--after", default="", help="list uids after this one")
    ls.add_argument("--limit", type=int, default=100)
    create = sub.add_parser(
        "create", parents=[_JSON], help="register a token for a uid (a new user)"
    )
    create.add_argument("uid")
    create.add_argument("--token", help="the token (default: a fresh random one, printed)")
    create.add_argument(
        "--device-flag",
        type=int,
        choices=(0, 1, 2),
        action="append",
        help="0 app, 1 web, 2 pc (repeatable; default all three)",
    )
    create.add_argument("--master", action="store_true", help="master device level")


def _tokens(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="action", required=True)
    sub.add_parser("list", parents=[_JSON]).add_argument("uid")
    create = sub.add_parser("create", parents=[_JSON], help="the same as users create")
    create.add_argument("uid")
    create.add_argument("--token")
    create.add_argument("--device-flag", type=int, choices=(0, 1, 2), action="append")
    create.add_argument("--master", action="store_true")
    revoke = sub.add_parser(
        "revoke", parents=[_JSON], help="remove tokens and close the devices' connections"
    )
    revoke.add_argument("uid")
    revoke.add_argument("--device-flag", type=int, choices=(0, 1, 2), default=-1)


def _channels(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="action", required=True)
    ls = sub.add_parser("list", parents=[_JSON])
    ls.add_argument("--limit", type=int, default=100)
    for name, what in (("create", "create a channel"), ("show", "a channel and its members")):
        c = sub.add_parser(name, parents=[_JSON], help=what)
        c.add_argument("channel_id")
        c.add_argument("--type", type=int, default=2, help="channel type (default 2, group)")
        if name == "create":
            c.add_argument("--members", default="", help="comma-separated uids")
    for name in ("add", "remove"):
        c = sub.add_parser(name, parents=[_JSON], help=f"{name} members")
        c.add_argument("channel_id")
        c.add_argument("uids", nargs="+")
        c.add_argument("--type", type=int, default=2)


# --- talking to the node -------------------------------------------------------------------


def _url(settings: Settings, given: str | None) -> str:
    if given:
        return given.rstrip("/")
    host = "127.0.0.1" if settings.host in _WILDCARD else settings.host
    host = f"[{host}]" if ":" in host else host
    return f"http://{host}:{settings.api_port}"


def _key(settings: Settings, key_file: str | None) -> str:
    """The business key: ``--api-key-file``, ``api_key`` or the node's ``data_dir/api_key``
    (read only: this command never creates one)."""
    if key_file:
        path = Path(key_file)
    elif settings.api_key:
        return settings.api_key
    else:
        path = Path(settings.data_dir) / "api_key"
    try:
        key = path.read_text().strip()
    except OSError as exc:
        raise CommandError(
            f"cannot read the API key from {path} ({exc.strerror})",
            "pass --api-key-file, set MAGPIE_API_KEY, or run where the node's data_dir is",
        ) from exc
    if not key:
        raise CommandError(f"{path} is empty", "pass the file holding the node's API key")
    return key


@dataclass
class _Node:
    """The node's API with the business key."""

    url: str
    http: httpx.Client

    def call(self, method: str, path: str, body: Any = None, params: Any = None) -> Any:
        try:
            r = self.http.request(method, path, json=body, params=params)
        except httpx.ConnectError as exc:
            raise CommandError(
                f"cannot reach the node at {self.url} ({exc})",
                "is it running? pass --url, or check host/api_port in its settings",
            ) from exc
        except httpx.HTTPError as exc:
            raise CommandError(f"the request to {self.url}{path} failed: {exc}") from exc
        return _answer(self.url, path, r)


def _answer(url: str, path: str, r: httpx.Response) -> Any:
    try:
        body = r.json() if r.content else None
    except ValueError:
        body = None
    if r.status_code == 401:
        raise CommandError(
            f"the node at {url} refused the API key",
            "pass the node's key with --api-key-file or MAGPIE_API_KEY",
        )
    if r.status_code >= 400:
        msg = body.get("msg", r.reason_phrase) if isinstance(body, dict) else r.reason_phrase
        code = body.get("code", "") if isinstance(body, dict) else ""
        raise CommandError(f"{path}: {msg} ({code or r.status_code})")
    return body


# --- commands ------------------------------------------------------------------------------


def _ms(at_ms: int) -> str:
    if not at_ms:
        return "-"
    return datetime.fromtimestamp(at_ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def _table(out: TextIO, header: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    cells = [[str(c) for c in header], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    for row in cells:
        out.write("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
        out.write("\n")


def _users_list(node: _Node, a: argparse.Namespace, out: TextIO) -> Any:
    page = node.call("GET", "/admin/users", params={"after": a.after, "limit": a.limit})
    if not a.json:
        rows = [[u["uid"], ", ".join(_device(d) for d in u["devices"])] for u in page["users"]]
        _table(out, ["uid", "devices with a token"], rows)
        if page["next"]:
            out.write(f"(more: --after {page['next']})\n")
    return page


def _device(d: dict[str, Any]) -> str:
    name = _DEVICES.get(d["device_flag"], str(d["device_flag"]))
    return name + (" (master)" if d["device_level"] == 1 else "")


def _users_create(node: _Node, a: argparse.Namespace, out: TextIO) -> Any:
    token = a.token or secrets.token_urlsafe(24)
    flags = a.device_flag or [0, 1, 2]
    for flag in flags:
        body = {
            "uid": a.uid,
            "token": token,
            "device_flag": flag,
            "device_level": 1 if a.master else 0,
        }
        node.call("POST", "/user/token", body)
    answer = {"uid": a.uid, "device_flags": flags, "token": token if not a.token else ""}
    if not a.json:
        devices = ", ".join(_DEVICES[f] for f in flags)
        out.write(f"token registered for {a.uid} ({devices})\n")
        if not a.token:
            out.write(f"token: {token}\n(shown once: only its digest is stored)\n")
    return answer


def _tokens_list(node: _Node, a: argparse.Namespace, out: TextIO) -> Any:
    page = node.call("GET", "/admin/users", params={"uid": a.uid})
    user = page["users"][0]
    if not a.json:
        rows = [
            [
                _DEVICES.get(d["device_flag"], d["device_flag"]),
                d["device_flag"],
                "master" if d["device_level"] == 1 else "slave",
            ]
            for d in user["devices"]
        ]
        _table(out, ["device", "flag", "level"], rows)
    return user


def _tokens_revoke(node: _Node, a: argparse.Namespace, out: TextIO) -> Any:
    answer = node.call("POST", "/user/device_quit", {"uid": a.uid, "device_flag": a.device_flag})
    if not a.json:
        which = "every device" if a.device_flag < 0 else _DEVICES[a.device_flag]
        out.write(f"tokens of {a.uid} ({which}) removed; its connections closed\n")
    return answer


def _channels_list(node: _Node, a: argparse.Namespace, out: TextIO) -> Any:
    page = node.call("GET", "/admin/channels", params={"limit": a.limit})
    if not a.json:
        rows = [
            [c["channel_id"], c["channel_type"], "yes" if c["ban"] else ""]
            for c in page["channels"]
        ]
        _table(out, ["channel", "type", "banned"], rows)
    return page


def _channels_create(node: _Node, a: argparse.Namespace, out: TextIO) -> Any:
    members = [m.strip() for m in a.members.split(",") if m.strip()]
    body = {"channel_id": a.channel_id, "channel_type": a.type, "subscribers": members}
    answer = node.call("POST", "/channel", body)
    if not a.json:
        out.write(f"channel {a.channel_id} (type {a.type}) with {len(members)} members\n")
    return answer


def _channels_show(node: _Node, a: argparse.Namespace, out: TextIO) -> Any:
    params = {"channel_id": a.channel_id, "channel_type": a.type}
    info = node.call("GET", "/admin/channel", params=params)
    if not a.json:
        out.write(
            f"channel {info['channel_id']} type {info['channel_type']}"
            f"{' (banned)' if info['ban'] else ''}\n"
        )
        out.write(f"members ({len(info['members'])}): {', '.join(info['members'])}\n")
    return info


def _channels_members(node: _Node, a: argparse.Namespace, out: TextIO) -> Any:
    path = "/channel/subscriber_add" if a.action == "add" else "/channel/subscriber_remove"
    body = {"channel_id": a.channel_id, "channel_type": a.type, "subscribers": a.uids}
    answer = node.call("POST", path, body)
    if not a.json:
        verb = "added to" if a.action == "add" else "removed from"
        out.write(f"{', '.join(a.uids)} {verb} {a.channel_id}\n")
    return answer


def _message(node: _Node, a: argparse.Namespace, out: TextIO) -> Any:
    found = node.call("GET", f"/admin/messages/{a.message_id}", params={"ops_limit": a.ops})
    if not a.json:
        _print_message(found, out)
    return found


def _print_message(found: dict[str, Any], out: TextIO) -> None:
    m, ext, trace = found["message"], found["extension"], found["trace"]
    out.write(
        f"message {m['message_id_str'] if 'message_id_str' in m else m['message_id']}"
        f"  seq {m['message_seq']}  from {m['from_uid']}  in {found['storage_channel_id']}"
        f" (type {m['channel_type']})  at {_ms(int(m['timestamp']) * 1000)}\n"
    )
    if ext is None:
        out.write("extension: none (never changed)\n")
    else:
        out.write(
            f"extension: version {ext.get('version')} extra_version "
            f"{ext.get('extra_version')} status {ext.get('status')!r}\n"
        )
    if found["ops"]:
        out.write("op log:\n")
        rows = [
            [
                op["op_id"],
                _ms(op["created_at"]),
                op["actor"]["uid"] or "-",
                op["operation"],
                op["result"],
                op["version_after"],
            ]
            for op in found["ops"]
        ]
        _table(out, ["  op", "at", "actor", "operation", "result", "version"], rows)
    out.write(
        f"delivery trace of node {trace['node_id']} ({trace['kept']} of "
        f"{trace['capacity']} acknowledgements kept, since {_ms(trace['oldest_ms'])}):\n"
    )
    acks = trace["message_acks"]
    change_acks = (trace["change"] or {}).get("acks", [])
    rows = [
        [a["uid"], _DEVICES.get(a["device_flag"], a["device_flag"]), "message", _ms(a["at_ms"])]
        for a in acks
    ]
    rows += [
        [
            a["uid"],
            _DEVICES.get(a["device_flag"], a["device_flag"]),
            "latest change",
            _ms(a["at_ms"]),
        ]
        for a in change_acks
    ]
    if rows:
        _table(out, ["  uid", "device", "acknowledged", "at"], rows)
    waiting = [x["uid"] for x in trace["members"] if not x["acked"]]
    out.write(f"members not seen acknowledging on this node: {', '.join(waiting) or 'none'}\n")


_COMMANDS: dict[tuple[str, str], Callable[[_Node, argparse.Namespace, TextIO], Any]] = {
    ("users", "list"): _users_list,
    ("users", "create"): _users_create,
    ("tokens", "list"): _tokens_list,
    ("tokens", "create"): _users_create,
    ("tokens", "revoke"): _tokens_revoke,
    ("channels", "list"): _channels_list,
    ("channels", "create"): _channels_create,
    ("channels", "show"): _channels_show,
    ("channels", "add"): _channels_members,
    ("channels", "remove"): _channels_members,
    ("message", ""): _message,
}


def run(args: argparse.Namespace, out: TextIO | None = None) -> None:
    """Run one ``magpie admin`` command (raises :class:`CommandError` with the fix)."""
    out = sys.stdout if out is None else out
    settings = load_settings(args.config)
    url = _url(settings, args.url)
    key = _key(settings, args.api_key_file)
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=url, headers=headers, timeout=_TIMEOUT) as http:
        command = _COMMANDS[(args.area, getattr(args, "action", ""))]
        answer = command(_Node(url, http), args, out)
    if args.json:
        out.write(json.dumps(answer, indent=2, ensure_ascii=False) + "\n")
