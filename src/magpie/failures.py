"""Why a command failed, in one line an operator can act on.

The ``magpie`` commands catch what stops them and print one line naming the cause and the fix
(:func:`explain`), instead of a traceback; ``--debug`` prints the traceback as well. The
helpers here turn the operating-system errors of start-up into a
:class:`~magpie.errors.StartupError` that says which setting to change.
"""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path

from magpie.errors import (
    CommandError,
    ConfigError,
    MagpieError,
    MigrationError,
    StartupError,
    StoreError,
    StoreUnavailable,
)

__all__ = [
    "EXIT_CONFIG",
    "EXIT_FAILURE",
    "EXIT_INTERNAL",
    "check_writable_dir",
    "explain",
    "listen_error",
]

#: Exit status of a bad setting (as ``magpie serve`` always used).
EXIT_CONFIG = 2
#: Exit status of any other explained failure.
EXIT_FAILURE = 1
#: Exit status of an unexpected error (a bug): ``EX_SOFTWARE`` of sysexits.h.
EXIT_INTERNAL = 70


def _env_name(key: str) -> str:
    return "MAGPIE_" + key.upper()


def listen_error(exc: OSError, host: str, port: int, key: str) -> StartupError:
    """The :class:`StartupError` for a listener on ``host:port`` (setting ``key``) that
    could not bind."""
    where = f"{host}:{port}"
    change = f"set {key} (or {_env_name(key)}) to a free port"
    if exc.errno == errno.EADDRINUSE:
        return StartupError(
            f"port {port} ({key}) is already in use on {host}",
            f"stop the other process or {change}",
        )
    if exc.errno in (errno.EACCES, errno.EPERM):
        return StartupError(
            f"not allowed to listen on {where} ({key})",
            f"use a port above 1023 or grant the capability to bind low ports; {change}",
        )
    if exc.errno == errno.EADDRNOTAVAIL:
        return StartupError(
            f"{host} is not an address of this machine",
            "set host (or MAGPIE_HOST) to one of its addresses, 0.0.0.0 or 127.0.0.1",
        )
    return StartupError(f"cannot listen on {where} ({key}): {exc.strerror or exc}", change)


def check_writable_dir(path: Path, key: str = "data_dir") -> None:
    """Create ``path`` if needed and prove a file can be written in it; a
    :class:`StartupError` naming the setting otherwise."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as exc:
        reason = exc.strerror or str(exc)
        if exc.errno in (errno.ENOTDIR, errno.EEXIST) or (path.exists() and not path.is_dir()):
            reason = "it is not a directory"
        raise StartupError(
            f"the data directory {path} is not writable ({reason})",
            f"set {key} (or {_env_name(key)}) to a writable directory, or give the user "
            f"running Magpie (uid {os.getuid()}) write access to it",
        ) from exc


def _cause(exc: BaseException) -> str:
    cause = exc.__cause__
    return f" ({cause})" if cause is not None and str(cause) else ""


def explain(exc: BaseException) -> tuple[str, int]:
    """One line (without the ``magpie:`` prefix) and the exit status for ``exc``."""
    if isinstance(exc, StartupError | CommandError):
        return (f"{exc.message}; {exc.fix}" if exc.fix else exc.message), EXIT_FAILURE
    if isinstance(exc, ConfigError):
        return (
            f"bad setting {exc.message}; correct it in the config file or the environment",
            EXIT_CONFIG,
        )
    if isinstance(exc, MigrationError):
        fix = "" if ";" in exc.message else "; restore a backup or run the matching Magpie"
        return f"cannot use the database: {exc.message}{_cause(exc)}{fix}", EXIT_FAILURE
    if isinstance(exc, StoreUnavailable):
        return (
            f"the database cannot be reached: {exc.message}{_cause(exc)}; check that it runs "
            "and that store_url (MAGPIE_STORE_URL) points at it",
            EXIT_FAILURE,
        )
    if isinstance(exc, StoreError):
        return (
            f"cannot open the store: {exc.message}{_cause(exc)}; check that store_url (or "
            "db_file) names a Magpie database and that data_dir is writable",
            EXIT_FAILURE,
        )
    if isinstance(exc, MagpieError):
        return exc.message, EXIT_FAILURE
    if isinstance(exc, OSError):
        target = f": {exc.filename}" if exc.filename else ""
        return (
            f"{exc.strerror or exc}{target}; check the path and its permissions",
            EXIT_FAILURE,
        )
    return (
        f"internal error ({type(exc).__name__}: {exc}); run again with --debug for the "
        "traceback and please report it",
        EXIT_INTERNAL,
    )
