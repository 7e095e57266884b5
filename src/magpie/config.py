"""One frozen, validated settings object.

Settings come from defaults, then an optional TOML file (``magpie serve --config FILE``), then
``MAGPIE_<KEY>`` environment variables (highest priority). Nothing else in Magpie reads
``os.environ``. A bad value stops start-up with a :class:`~magpie.errors.ConfigError` naming the
key and the value.
"""

from __future__ import annotations

import dataclasses
import difflib
import ipaddress
import logging
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from magpie.errors import ConfigError

__all__ = [
    "SECRET_KEYS",
    "TOOL_VARIABLES",
    "IpNetwork",
    "Settings",
    "load_settings",
    "redact_url",
]

log = logging.getLogger(__name__)

_ENV_PREFIX = "MAGPIE_"

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class Settings:
    """Every tunable of a Magpie node, with safe defaults."""

    #: Directory for the SQLite file and the generated API key.
    data_dir: str = "var"
    #: SQLite file name inside ``data_dir`` (or an absolute path).
    db_file: str = "magpie.db"
    #: SQLite ``synchronous`` pragma: FULL (default, durable), NORMAL, or OFF (tests only).
    sqlite_synchronous: str = "FULL"
    #: Where messages live: ``sqlite:///path`` (relative to the working directory;
    #: ``sqlite:////abs/path``) or ``postgresql://user:password@host:port/database`` (shared
    #: by every node of a cluster). Empty = ``sqlite:///`` + ``data_dir``/``db_file``.
    store_url: str = ""
    #: Most connections one node opens to a PostgreSQL store.
    store_pool_size: int = 10
    #: Seconds a PostgreSQL store has to answer each call once the node stops; past it (or
    #: when the database cannot be reached then) the stop goes on without the database.
    store_stop_timeout: float = 5.0
    #: Address the WebSocket gateway and HTTP API bind to.
    host: str = "127.0.0.1"
    #: WebSocket gateway port (WuKongIM default 5200); 0 picks a free port.
    ws_port: int = 5200
    #: HTTP API port (WuKongIM default 5001); 0 picks a free port.
    api_port: int = 5001
    #: This node's WebSocket address as clients reach it (``ws://host:port`` or
    #: ``wss://host[:port][/path]``), handed out by ``/route`` (which spreads users over the
    #: live nodes of a cluster); empty = derived from host and ws_port.
    ws_public_url: str = ""
    #: Deprecated alias of ``ws_public_url`` (older versions' name).
    ws_public_addr: str = ""
    #: Plain TCP gateway port for native SDKs (WuKongIM default 5100); 0 picks a free port.
    tcp_port: int = 5100
    #: Listen on ``tcp_port`` at all (the same packets as WebSocket, length-prefixed).
    tcp_enabled: bool = True
    #: ``host:port`` given to clients by ``/route`` as ``tcp_addr``; empty = host and port.
    tcp_public_addr: str = ""
    #: Business API key; empty = generated once and kept in ``data_dir/api_key``.
    api_key: str = ""
    #: Check user tokens on CONNECT (off only for development).
    token_auth: bool = True
    #: Seconds a new socket has to send CONNECT.
    connect_timeout: float = 5.0
    #: Seconds without any inbound packet before the server closes a connection (SDK pings
    #: every 60 s).
    idle_timeout: float = 180.0
    #: Seconds between resends of an unacknowledged persisted RECV.
    retry_interval: float = 30.0
    #: Seconds a delivery above a channel's missing seq is held before the missing messages
    #: are read from the store (per-channel order across nodes; docs/architecture.md).
    order_hold: float = 0.05
    #: Resends of an unacknowledged RECV before giving up (the client resyncs later).
    retry_attempts: int = 5
    #: Unacknowledged RECVs tracked per connection; above it the connection is closed.
    max_inflight: int = 2048
    #: Outbound queue bound per connection, in frames and bytes (slow-consumer limit).
    outbound_max_frames: int = 4096
    outbound_max_bytes: int = 8 * 1024 * 1024
    #: Largest WuKongIM packet body accepted (remaining length).
    max_packet_bytes: int = 1024 * 1024
    #: Largest message payload accepted over the HTTP API or a SEND, after decryption.
    max_payload_bytes: int = 512 * 1024
    #: Snowflake node id (0–1023), unique among the running nodes of a cluster; unset = a
    #: free id is leased from the store at start. Leased either way: a second process
    #: starting with the id of a live node is refused.
    node_id: int | None = None
    #: Seconds a node's id lease lives without a renewal (renewed every third of it): how
    #: long a dead node's id stays taken, and how long a restarted node with the same
    #: explicit ``node_id`` may wait for it.
    node_lease: float = 15.0
    #: The bus between nodes: ``memory://`` (one process) or ``redis://[:password@]host:port/db``
    #: (``rediss://`` for TLS).
    bus_url: str = "memory://"
    #: Prefix of every Redis key and channel, so several clusters can share one Redis.
    cluster_name: str = "magpie"
    #: Seconds a node's presence lease lives without a heartbeat (heartbeats every third of
    #: it): how long a dead node's registrations can still attract events.
    bus_presence_ttl: float = 15.0
    #: Events waiting to be sent to other nodes at most; more are dropped (clients resync).
    bus_queue_max: int = 10_000
    #: Seconds for one bus command or connect; also the longest a CONNECT waits for its
    #: presence registration.
    bus_timeout: float = 2.0
    #: Webhook receiver URL (``POST url?event=…``); empty = webhooks off.
    webhook_url: str = ""
    #: Secret for the webhook HMAC-SHA256 signature; empty = derived from the API key.
    webhook_secret: str = ""
    #: Seconds between a node's claims of due webhook events: the ``msg.notify`` and
    #: ``user.onlinestatus`` entries of one claim go out as one array.
    webhook_batch_interval: float = 0.5
    #: Tries of a webhook request before its events are dead (kept in the store, listed by
    #: ``GET /jobs/dead``, sent again by ``POST /jobs/dead/retry``).
    webhook_attempts: int = 10
    #: Seconds before the first retry of a failed webhook request; doubles per try.
    webhook_backoff: float = 1.0
    #: Longest wait between two tries of a webhook request, in seconds.
    webhook_max_backoff: float = 300.0
    #: Seconds one webhook request may take (connect, send, answer) before it counts as
    #: failed.
    webhook_timeout: float = 5.0
    #: Seconds a node holds a claimed durable job (a webhook request, a card deadline): a
    #: node that dies mid-job delays it by at most this, then another node takes it over.
    #: At least twice ``webhook_timeout`` (a claim must outlast a request).
    job_lease: float = 30.0
    #: Seconds one business callback of a registered card type may take (connect, send,
    #: answer); tries of it (a transport error, a timeout or a 5xx is tried again); seconds
    #: before the first retry (doubling). The actor waits for all of it at worst.
    card_callback_timeout: float = 5.0
    card_callback_attempts: int = 3
    card_callback_backoff: float = 0.2
    #: Longest sleep of a node's deadline timer, in seconds: how late at worst it sees a
    #: deadline another node scheduled (its own it sees at once).
    job_poll: float = 1.0
    #: Serve the browser demo page (``GET /`` and ``/static/*``); ``magpie demo`` turns it on.
    demo_ui: bool = False
    #: Enable ``POST /demo/login`` and ``GET /demo/users``: anybody who can reach the API may
    #: log in as any demo user (the server issues a fresh token, acting as the business
    #: server). For ``magpie demo`` only; never turn it on for real users.
    demo_login: bool = False
    #: Logging level name.
    log_level: str = "INFO"
    #: Log line format: ``text`` (one readable line per record) or ``json`` (one JSON object
    #: per line with structured fields, for log shippers; the container image sets it).
    log_format: str = "text"
    #: One INFO line per HTTP request (method, route template, status, latency, caller,
    #: client address, request id) on the logger ``magpie.api.access``.
    access_log: bool = True
    #: Browser origins allowed to call the HTTP API from another site (CORS), comma-separated
    #: (``https://app.example.com,https://admin.example.com``); ``*`` allows every origin;
    #: empty (default) sends no CORS headers, so browsers keep other sites out.
    cors_origins: str = ""
    #: Device acknowledgements the node keeps in memory for ``magpie admin message`` (the
    #: delivery trace; oldest dropped first, about 100 bytes each; a tenth as many CMDs).
    trace_capacity: int = 100_000
    #: Message extensions (ARCHITECTURE I6): largest ``extra_patch`` (or ``content_edit``) in
    #: bytes of compact UTF-8 JSON.
    ext_max_patch_bytes: int = 16 * 1024
    #: Largest resulting ``extra`` document in bytes (bounds every sync row).
    ext_max_extra_bytes: int = 64 * 1024
    #: Most keys in a resulting ``extra``, counted over every nested object.
    ext_max_keys: int = 256
    #: Deepest nesting of objects/arrays in a patch or ``extra`` (``{}`` is depth 1).
    ext_max_depth: int = 8
    #: Most rows one ``/message/extra/sync`` returns (larger ``limit`` values are capped).
    ext_sync_max_limit: int = 1000
    #: Milliseconds changes of one channel are coalesced into one ``syncMessageExtra`` CMD
    #: (0 = one CMD per change).
    ext_coalesce_ms: int = 50
    #: How far (ms) a caller-supplied last-writer-wins ``updated_at`` may be ahead of the
    #: server clock; a value further ahead would win every later write.
    ext_max_future_ms: int = 60_000
    #: Conversation features (``docs/conversation.md``): the shortest interval (ms) between
    #: two typing notices of one user in one channel; a faster one is refused (429).
    typing_min_interval_ms: int = 2000
    #: How long (ms) clients show a typing indicator after a notice (the CMD says so).
    typing_expire_ms: int = 5000
    #: Most distinct emoji reactions on one message; a new one beyond it is refused (400).
    reaction_max_emoji: int = 20
    #: Largest uploaded file in bytes (``/file/upload``; 413 above it). Files live in
    #: ``data_dir/files``.
    upload_max_bytes: int = 20 * 1024 * 1024
    #: Deprecated. The card service's own SQLite file of older versions (deadlines, its
    #: secret) inside ``data_dir`` (or an absolute path): both live in the store now, and a
    #: file found here is imported once at start, then renamed to ``*.imported``. Setting
    #: it to anything but the default only logs a deprecation warning.
    cards_db_file: str = "cards.db"
    #: History answers (``/channel/messagesync``, ``/message/sync``, ``/message/extra/sync``,
    #: ``/conversation/sync`` recents, operation logs): the most bytes of JSON one answer
    #: carries; a longer page stops early and says ``more`` (at least one item is always
    #: sent, so a single maximal message still gets through).
    history_max_bytes: int = 4 * 1024 * 1024
    #: History reads building an answer at once in this node; more wait for a slot.
    history_max_concurrent: int = 4
    #: History reads at once per user (token callers; the business key has only the node's
    #: bound); more wait for a slot.
    history_max_concurrent_per_user: int = 2
    #: Seconds a history read waits for a slot before it is refused (503 ``busy``).
    history_wait_timeout: float = 10.0
    # --- Defences (docs/security.md). A cap or rate of 0 turns that defence off. -----------
    #: Seconds a client has to send a complete HTTP request head, counted from the moment the
    #: server waits for one (connection opened, or previous response sent).
    http_header_timeout: float = 10.0
    #: Seconds a declared request body has to arrive in full after its head; also how long a
    #: response may wait for a client that reads nothing.
    http_body_timeout: float = 30.0
    #: Seconds an idle keep-alive HTTP connection is kept open.
    http_keepalive_timeout: float = 5.0
    #: Open HTTP connections in all, and from one client address.
    http_max_connections: int = 1024
    http_max_connections_per_ip: int = 256
    #: Requests of one user token being served at once (the business key is not capped).
    http_max_inflight_per_token: int = 32
    #: WebSocket connections in all (0: as many as the open-files limit allows), from one
    #: client address, and of one uid on this node.
    ws_max_connections: int = 0
    ws_max_connections_per_ip: int = 1000
    ws_max_connections_per_uid: int = 16
    #: Origins browsers may open a WebSocket from (comma-separated, e.g.
    #: ``https://chat.example.com``); empty = any. Clients that send no Origin (native apps,
    #: servers) are always admitted: the check defends against cross-site pages only.
    ws_allowed_origins: str = ""
    #: Reverse proxies (IP addresses or CIDR networks, comma-separated) whose
    #: ``X-Forwarded-For`` names the real client; from anybody else the header is ignored.
    trusted_proxies: str = ""
    #: CONNECT attempts per second (and burst) from one client address, and of one uid.
    connect_ip_rate: float = 20.0
    connect_ip_burst: int = 200
    connect_uid_rate: float = 1.0
    connect_uid_burst: int = 20
    #: Failed credentials (a wrong CONNECT token, a wrong API key or user token over HTTP)
    #: allowed per second (and burst) from one client address, and against one uid; past
    #: them further attempts are refused until the budget refills.
    auth_fail_ip_rate: float = 0.2
    auth_fail_ip_burst: int = 20
    auth_fail_uid_rate: float = 0.05
    auth_fail_uid_burst: int = 20
    #: SENDs per second (and burst) of one uid over all its connections to this node; over
    #: it SENDACK carries reason 22 (rate limit).
    send_rate: float = 50.0
    send_burst: int = 200
    #: Rate-limited SENDs in a row after which the connection is closed (policy, 1008).
    send_refusals_close: int = 100
    #: HTTP requests per second (and burst) from one client address (requests with the
    #: business API key are not counted here), of one user token, and of the business key.
    http_ip_rate: float = 200.0
    http_ip_burst: int = 1000
    http_token_rate: float = 50.0
    http_token_burst: int = 200
    http_key_rate: float = 0.0
    http_key_burst: int = 1000
    #: Most addresses, uids or tokens each rate limit remembers (the oldest are forgotten).
    rate_limit_keys: int = 100_000
    #: File descriptors kept free for the store, webhooks and logs; the connection caps are
    #: lowered at start when the process's descriptor limit cannot hold them.
    fd_reserve: int = 256
    #: ``host:port`` of a separate listener for ``/metrics``, ``/openapi.json``, ``/health``
    #: and ``/ready`` (then ``/metrics`` and ``/openapi.json`` leave the API port); empty =
    #: on the API port.
    ops_listen: str = ""
    #: Serve ``/metrics`` and ``/openapi.json`` without the business API key.
    ops_public: bool = False

    def __post_init__(self) -> None:
        for key, choices in _CHOICES.items():
            object.__setattr__(self, key, _choice(key, getattr(self, key), choices))
        if self.ws_public_addr:
            if self.ws_public_url and self.ws_public_url != self.ws_public_addr:
                raise ConfigError(
                    "ws_public_addr",
                    "is the deprecated name of ws_public_url; set only ws_public_url",
                )
            object.__setattr__(self, "ws_public_url", self.ws_public_addr)
        _validate(self)

    @property
    def db_path(self) -> Path:
        """Absolute or data-dir-relative path of the SQLite file."""
        path = Path(self.db_file)
        return path if path.is_absolute() else Path(self.data_dir) / path

    @property
    def resolved_store_url(self) -> str:
        """``store_url``, or the SQLite URL of ``db_path`` when it is empty."""
        return self.store_url or f"{_SQLITE_PREFIX}{self.db_path}"

    @property
    def sqlite_path(self) -> Path | None:
        """The SQLite file of the store; ``None`` for a PostgreSQL store."""
        url = self.resolved_store_url
        return Path(url[len(_SQLITE_PREFIX) :]) if url.startswith(_SQLITE_PREFIX) else None

    @property
    def store_display(self) -> str:
        """Where the store is, for messages: a path, or a PostgreSQL URL without credentials."""
        path = self.sqlite_path
        if path is not None:
            return str(path)
        parts = urlsplit(self.store_url)
        host = parts.hostname or "localhost"
        return f"{parts.scheme}://{host}:{parts.port or 5432}{parts.path}"

    @property
    def cards_db_path(self) -> Path:
        """Absolute or data-dir-relative path of the card service's SQLite file."""
        path = Path(self.cards_db_file)
        return path if path.is_absolute() else Path(self.data_dir) / path

    @property
    def cors_origin_list(self) -> tuple[str, ...]:
        """``cors_origins`` as a tuple (empty: CORS off)."""
        return tuple(o.strip() for o in self.cors_origins.split(",") if o.strip())

    @property
    def trusted_networks(self) -> tuple[IpNetwork, ...]:
        """``trusted_proxies`` parsed."""
        return tuple(ipaddress.ip_network(p, strict=False) for p in _items(self.trusted_proxies))

    @property
    def allowed_origins(self) -> tuple[str, ...]:
        """``ws_allowed_origins`` parsed (lower case); empty = any origin."""
        return tuple(o.lower().rstrip("/") for o in _items(self.ws_allowed_origins))

    @property
    def ops_address(self) -> tuple[str, int] | None:
        """``ops_listen`` parsed into ``(host, port)``; ``None`` when empty."""
        if not self.ops_listen:
            return None
        host, _, port = self.ops_listen.rpartition(":")
        return host.strip("[]"), int(port)

    def replace(self, **changes: Any) -> Settings:
        """A copy with ``changes`` applied (validated again)."""
        return dataclasses.replace(self, **changes)


_SQLITE_PREFIX = "sqlite:///"


def _validate_store_url(url: str) -> None:
    """Empty, ``sqlite:///<path>`` or ``postgresql://[user[:password]@]host[:port]/database``;
    the error never repeats the value (it may hold a password)."""
    if not url or (url.startswith(_SQLITE_PREFIX) and len(url) > len(_SQLITE_PREFIX)):
        return
    why = "must be sqlite:///<path> or postgresql://user@host:port/database"
    try:
        parts = urlsplit(url)
        _ = parts.port  # ValueError for a port that is not a number 0-65535
    except ValueError:
        raise ConfigError("store_url", why) from None
    if parts.scheme not in ("postgresql", "postgres"):
        raise ConfigError("store_url", why)
    if not parts.hostname or parts.path.strip("/") == "":
        raise ConfigError("store_url", f"{why}: the host and the database name are required")


def _check(cond: bool, key: str, value: object, why: str) -> None:
    if not cond:
        raise ConfigError(key, f"{why} (got {value!r})")


#: Settings whose value is one of a few words, matched without regard to case.
_CHOICES: dict[str, tuple[str, ...]] = {
    "sqlite_synchronous": ("FULL", "EXTRA", "NORMAL", "OFF"),
    "log_level": ("DEBUG", "INFO", "WARNING", "ERROR"),
    "log_format": ("text", "json"),
}


def _choice(key: str, value: object, choices: tuple[str, ...]) -> object:
    """The canonical spelling of ``value`` among ``choices`` (``info`` -> ``INFO``,
    ``JSON`` -> ``json``)."""
    if isinstance(value, str):
        for choice in choices:
            if value.strip().upper() == choice.upper():
                return choice
    raise ConfigError(key, f"must be {', '.join(choices[:-1])} or {choices[-1]} (got {value!r})")


def _items(text: str) -> list[str]:
    """The entries of a comma-separated list setting."""
    return [item.strip() for item in text.split(",") if item.strip()]


def _validate_ports(s: Settings) -> None:
    for key in ("ws_port", "api_port", "tcp_port"):
        value = getattr(s, key)
        _check(0 <= value <= 65535, key, value, "must be a port number 0–65535")
    if s.ws_port and s.ws_port == s.api_port:
        raise ConfigError("api_port", f"must differ from ws_port (both {s.ws_port})")
    if s.tcp_enabled and s.tcp_port and s.tcp_port in (s.ws_port, s.api_port):
        raise ConfigError("tcp_port", f"must differ from ws_port and api_port ({s.tcp_port})")


_POSITIVE = (
    "trace_capacity",
    "connect_timeout",
    "idle_timeout",
    "retry_interval",
    "order_hold",
    "webhook_batch_interval",
    "max_inflight",
    "outbound_max_frames",
    "outbound_max_bytes",
    "max_packet_bytes",
    "max_payload_bytes",
    "webhook_attempts",
    "webhook_backoff",
    "webhook_max_backoff",
    "webhook_timeout",
    "card_callback_timeout",
    "card_callback_attempts",
    "card_callback_backoff",
    "job_lease",
    "job_poll",
    "store_stop_timeout",
    "ext_max_patch_bytes",
    "ext_max_extra_bytes",
    "ext_max_keys",
    "ext_max_depth",
    "ext_sync_max_limit",
    "bus_presence_ttl",
    "node_lease",
    "bus_queue_max",
    "bus_timeout",
    "history_max_bytes",
    "history_max_concurrent",
    "history_max_concurrent_per_user",
    "history_wait_timeout",
    "typing_min_interval_ms",
    "typing_expire_ms",
    "reaction_max_emoji",
    "http_header_timeout",
    "http_body_timeout",
    "http_keepalive_timeout",
    "rate_limit_keys",
)
#: Caps and rates, where 0 turns the defence off.
_NOT_NEGATIVE = (
    "retry_attempts",
    "ext_coalesce_ms",
    "ext_max_future_ms",
    "http_max_connections",
    "http_max_connections_per_ip",
    "http_max_inflight_per_token",
    "ws_max_connections",
    "ws_max_connections_per_ip",
    "ws_max_connections_per_uid",
    "send_refusals_close",
    "fd_reserve",
)
#: Token buckets: (rate setting, burst setting); a burst is at least 1 when the rate is on.
_RATES = (
    ("connect_ip_rate", "connect_ip_burst"),
    ("connect_uid_rate", "connect_uid_burst"),
    ("auth_fail_ip_rate", "auth_fail_ip_burst"),
    ("auth_fail_uid_rate", "auth_fail_uid_burst"),
    ("send_rate", "send_burst"),
    ("http_ip_rate", "http_ip_burst"),
    ("http_token_rate", "http_token_burst"),
    ("http_key_rate", "http_key_burst"),
)


def _validate_numbers(s: Settings) -> None:
    for key in _POSITIVE:
        value = getattr(s, key)
        _check(value > 0, key, value, "must be greater than 0")
    for key in _NOT_NEGATIVE:
        value = getattr(s, key)
        _check(value >= 0, key, value, "must be 0 or more")
    for rate_key, burst_key in _RATES:
        rate, burst = getattr(s, rate_key), getattr(s, burst_key)
        _check(rate >= 0, rate_key, rate, "must be 0 (off) or more")
        _check(burst >= 1 or rate == 0, burst_key, burst, "must be 1 or more")


def _validate_host(key: str, host: str) -> None:
    _check(bool(host), key, host, "must not be empty")
    if host not in ("localhost", "0.0.0.0", "::"):  # noqa: S104 - a bind address, checked
        try:
            ipaddress.ip_address(host)
        except ValueError:
            _check(False, key, host, "must be an IP address or localhost")


_BUS_SCHEMES = ("memory", "redis", "rediss")
_CLUSTER_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


def redact_url(url: str) -> str:
    """``url`` with its password replaced by ``***`` (for messages and logs)."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return "<unparsable URL>"
    if password is None:
        return url
    netloc = parts.netloc.replace(f":{password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()


def _validate_bus(s: Settings) -> None:
    shown = redact_url(s.bus_url)
    try:
        parts = urlsplit(s.bus_url)
        port = parts.port
    except ValueError:
        raise ConfigError("bus_url", f"is not a valid URL (got {shown!r})") from None
    _check(
        parts.scheme in _BUS_SCHEMES,
        "bus_url",
        shown,
        "must start with memory://, redis:// or rediss://",
    )
    if parts.scheme != "memory":
        _check(bool(parts.hostname), "bus_url", shown, "must name a host")
        _check(port is None or port > 0, "bus_url", shown, "must have a port 1–65535")
        db = parts.path.lstrip("/")
        _check(db == "" or db.isdigit(), "bus_url", shown, "must end in a database number")
    _check(
        bool(_CLUSTER_NAME.match(s.cluster_name)),
        "cluster_name",
        s.cluster_name,
        "must be 1–64 letters, digits, '_', '.' or '-'",
    )


_ORIGIN = re.compile(r"https?://[^/?#\s]+")


def _validate_public(s: Settings) -> None:
    key = "ws_public_addr" if s.ws_public_addr else "ws_public_url"
    if s.ws_public_url:
        try:
            parts = urlsplit(s.ws_public_url)
            port = parts.port
        except ValueError:
            port, parts = -1, urlsplit("")
        _check(
            parts.scheme in ("ws", "wss")
            and bool(parts.hostname)
            and port != 0
            and port != -1
            and not parts.query
            and not parts.fragment,
            key,
            s.ws_public_url,
            "must be ws://host:port or wss://host[:port][/path]",
        )
    if s.tcp_public_addr:
        host, sep, port_text = s.tcp_public_addr.rpartition(":")
        _check(
            bool(sep)
            and bool(host.strip("[]"))
            and port_text.isdigit()
            and 0 < int(port_text) <= 65535,
            "tcp_public_addr",
            s.tcp_public_addr,
            "must be host:port",
        )


def _validate_origins(s: Settings) -> None:
    for origin in s.cors_origin_list:
        _check(
            origin == "*" or _ORIGIN.fullmatch(origin) is not None,
            "cors_origins",
            origin,
            "must list origins like https://app.example.com (scheme and host, no path) or *",
        )


def _validate_lists(s: Settings) -> None:
    for item in _items(s.trusted_proxies):
        try:
            ipaddress.ip_network(item, strict=False)
        except ValueError:
            _check(False, "trusted_proxies", item, "must list IP addresses or CIDR networks")
    for item in _items(s.ws_allowed_origins):
        _check(
            _ORIGIN.fullmatch(item.rstrip("/")) is not None,
            "ws_allowed_origins",
            item,
            "must list origins like https://chat.example.com (scheme and host, no path)",
        )
    if s.ops_listen:
        host, sep, port = s.ops_listen.rpartition(":")
        _check(
            bool(sep) and port.isdigit() and int(port) <= 65535,
            "ops_listen",
            s.ops_listen,
            "must be host:port",
        )
        _validate_host("ops_listen", host.strip("[]"))


def _validate(s: Settings) -> None:
    _validate_origins(s)
    _validate_ports(s)
    _validate_numbers(s)
    _validate_bus(s)
    _validate_lists(s)
    _check(
        s.node_id is None or 0 <= s.node_id <= 1023,
        "node_id",
        s.node_id,
        "must be 0–1023, or unset to lease a free one",
    )
    _validate_public(s)
    _check(
        s.max_payload_bytes <= s.max_packet_bytes,
        "max_payload_bytes",
        s.max_payload_bytes,
        "must not exceed max_packet_bytes",
    )
    _validate_host("host", s.host)
    _check(bool(s.cards_db_file), "cards_db_file", s.cards_db_file, "must not be empty")
    _validate_store_url(s.store_url)
    _check(
        s.job_lease >= 2 * s.webhook_timeout,
        "job_lease",
        s.job_lease,
        f"must be at least twice webhook_timeout ({s.webhook_timeout} s): a claim must "
        "outlast a webhook request",
    )
    _check(s.store_pool_size >= 2, "store_pool_size", s.store_pool_size, "must be 2 or more")
    if s.webhook_url:
        parts = urlsplit(s.webhook_url)
        _check(
            parts.scheme in ("http", "https") and bool(parts.netloc),
            "webhook_url",
            s.webhook_url,
            "must be an http(s) URL",
        )


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _coerce(key: str, kind: type, raw: object) -> object:
    """Convert a value from TOML or the environment to the field's type."""
    if kind is bool:
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip().lower()
        if text in _TRUE | _FALSE:
            return text in _TRUE
        raise ConfigError(key, f"must be true or false (got {raw!r})")
    if kind is _OptionalInt:
        if raw is None or (isinstance(raw, str) and not raw.strip()):
            return None
        kind = int
    if kind is int or kind is float:
        if isinstance(raw, bool) or not isinstance(raw, str | int | float):
            raise ConfigError(key, f"must be a number (got {raw!r})")
        try:
            return int(raw) if kind is int else float(raw)
        except ValueError:
            raise ConfigError(key, f"must be a number (got {raw!r})") from None
    if isinstance(raw, list) and all(isinstance(item, str) for item in raw):
        return ",".join(raw)  # a TOML array for a comma-separated list setting
    if not isinstance(raw, str | int | float):
        raise ConfigError(key, f"must be a string (got {raw!r})")
    return str(raw)


class _OptionalInt:
    """The kind of an ``int | None`` setting: an empty value means unset."""


_KINDS: dict[str, type] = {
    "bool": bool,
    "int": int,
    "float": float,
    "str": str,
    "int | None": _OptionalInt,
}

#: Settings that may be read from a file named by ``<KEY>_FILE`` (the container-secrets
#: convention: ``MAGPIE_API_KEY_FILE=/run/secrets/magpie_api_key``).
SECRET_KEYS = ("api_key", "webhook_secret", "store_url", "bus_url")
_FILE_SUFFIX = "_file"

#: ``MAGPIE_*`` variables read by Magpie's test and benchmark tools, not by the server.
TOOL_VARIABLES = frozenset(
    {
        "MAGPIE_TIME_SCALE",
        "MAGPIE_NODE",
        "MAGPIE_CHROMIUM",
        "MAGPIE_SDK_CONFIG",
        "MAGPIE_TEST_POSTGRES_URL",
        "MAGPIE_TEST_REDIS_URL",
    }
)
_TOOL_PREFIXES = ("MAGPIE_BENCH_",)


def _field_kinds() -> dict[str, type]:
    return {f.name: _KINDS[str(f.type)] for f in fields(Settings)}


def _read_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError("config", f"file not found: {os.fspath(path)}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("config", f"{os.fspath(path)} is not valid TOML: {exc}") from None
    section = data.get("magpie", data)
    if not isinstance(section, dict):
        raise ConfigError("config", "[magpie] must be a table")
    return section


def _read_secret(name: str, raw: object) -> str:
    """The content of the secret file ``raw`` (surrounding white space removed); ``name`` is
    the variable or key that named it. Never puts the secret in an error."""
    if not isinstance(raw, str) or not raw:
        raise ConfigError(name, f"must be a file path (got {raw!r})")
    try:
        text = Path(raw).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise ConfigError(name, f"cannot read {raw}: {reason}") from None
    if not text:
        raise ConfigError(name, f"{raw} is empty")
    return text


def _source_values(
    items: Mapping[str, object], kinds: Mapping[str, type], name_of: Any
) -> tuple[dict[str, object], list[str]]:
    """Coerced settings from one source (file or environment) and the names it does not
    know. ``name_of(key)`` is how the source spells a key (for errors)."""
    values: dict[str, object] = {}
    unknown: list[str] = []
    for key, raw in items.items():
        if key in kinds:
            values[key] = _coerce(name_of(key), kinds[key], raw)
        elif key.endswith(_FILE_SUFFIX) and key[: -len(_FILE_SUFFIX)] in SECRET_KEYS:
            secret = key[: -len(_FILE_SUFFIX)]
            if secret in items:
                raise ConfigError(name_of(key), f"set {name_of(secret)} or this, not both")
            values[secret] = _read_secret(name_of(key), raw)
        else:
            unknown.append(key)
    return values, unknown


def _env_items(env: Mapping[str, str]) -> dict[str, str]:
    """``MAGPIE_*`` variables by lower-case key, without the tools' own variables."""
    out: dict[str, str] = {}
    for name, raw in env.items():
        if not name.startswith(_ENV_PREFIX) or name in TOOL_VARIABLES:
            continue
        if name.startswith(_TOOL_PREFIXES):
            continue
        out[name[len(_ENV_PREFIX) :].lower()] = raw
    return out


def _warn_unknown(names: list[str], kinds: Mapping[str, type]) -> None:
    known = [_ENV_PREFIX + key.upper() for key in kinds]
    known += [_ENV_PREFIX + (key + _FILE_SUFFIX).upper() for key in SECRET_KEYS]
    for name in names:
        close = difflib.get_close_matches(name, known, n=1)
        hint = f"; did you mean {close[0]}?" if close else ""
        log.warning("unknown environment variable %s is ignored%s", name, hint)


def load_settings(
    path: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
    **overrides: Any,
) -> Settings:
    """Build the :class:`Settings` from a TOML file, ``MAGPIE_*`` variables and overrides.

    ``api_key``, ``webhook_secret`` and ``bus_url`` (it may carry a password) may instead be
    read from a file: ``api_key_file`` in
    the TOML file, ``MAGPIE_API_KEY_FILE`` in the environment. An unknown ``MAGPIE_*``
    variable is logged as a warning naming it; an unknown key in the file is an error."""
    kinds = _field_kinds()
    values: dict[str, object] = {}
    if path is not None:
        from_file, unknown = _source_values(_read_file(path), kinds, lambda key: key)
        if unknown:
            raise ConfigError(unknown[0], "unknown setting in config file")
        values.update(from_file)
    env = os.environ if environ is None else environ
    from_env, unknown = _source_values(
        _env_items(env), kinds, lambda key: _ENV_PREFIX + key.upper()
    )
    _warn_unknown([_ENV_PREFIX + key.upper() for key in unknown], kinds)
    values.update(from_env)
    for key, raw in overrides.items():
        if key not in kinds:
            raise ConfigError(key, "unknown setting")
        values[key] = _coerce(key, kinds[key], raw)
    return Settings(**values)  # type: ignore[arg-type]
