"""The browser demo's page bundle: is it current, and build it when it is not.

``src/magpie/web/static/app.js`` is the esbuild bundle of ``web/src`` on the official JS SDK.
It is not committed; every sdist and wheel carries it, because the build backend
(``magpie_build``) calls :func:`ensure` before building either. Its first line records a
SHA-256 digest of everything it is built from (``web/package.json``, ``web/package-lock.json``
and every file under ``web/src``)::

    /* magpie-web-bundle sources-sha256=<hex> */

so "current" means "that line names the digest of the sources in this tree" — not file
times, which a fresh clone or an unpacked sdist does not keep. An sdist carries the sources
and the bundle built from them, so a wheel built from an sdist needs no Node.js.

Command line (``make web``)::

    python build_backend/webbundle.py          # build if missing or stale
    python build_backend/webbundle.py --check  # exit 1 if missing or stale
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

__all__ = [
    "BUNDLE",
    "BundleError",
    "bundle_digest",
    "ensure",
    "is_current",
    "source_digest",
    "status",
]

#: The bundle, relative to the project root.
BUNDLE = Path("src/magpie/web/static/app.js")
_WEB = Path("web")
_STAMP_PREFIX = "/* magpie-web-bundle sources-sha256="
_NPM_STAMP = _WEB / "node_modules" / ".installed-stamp"


class BundleError(RuntimeError):
    """The bundle is missing or stale and cannot be built here (the message says why)."""


def _source_files(root: Path) -> list[Path]:
    web = root / _WEB
    files = [web / "package.json", web / "package-lock.json"]
    files += sorted(p for p in (web / "src").rglob("*") if p.is_file())
    return [p for p in files if p.is_file()]


def source_digest(root: Path) -> str | None:
    """SHA-256 over the bundle's sources (path and bytes of each), or ``None`` when the tree
    has no ``web/`` sources at all."""
    files = _source_files(root)
    if not files:
        return None
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


def bundle_digest(root: Path) -> str | None:
    """The source digest the bundle records on its first line (``None``: no bundle or no
    such line)."""
    path = root / BUNDLE
    if not path.is_file():
        return None
    with path.open("rb") as fh:
        first = fh.readline().decode("utf-8", "replace").strip()
    if not first.startswith(_STAMP_PREFIX) or not first.endswith("*/"):
        return None
    return first[len(_STAMP_PREFIX) : -2].strip()


def status(root: Path) -> str:
    """``"current"``, ``"missing"`` or ``"stale"``."""
    recorded = bundle_digest(root)
    if recorded is None:
        return "missing"
    sources = source_digest(root)
    return "current" if sources is None or sources == recorded else "stale"


def is_current(root: Path) -> bool:
    """Whether the bundle exists and was built from this tree's ``web/`` sources."""
    return status(root) == "current"


def _npm() -> str:
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        raise BundleError(
            f"the page bundle {BUNDLE} is missing or out of date and Node.js/npm is not on "
            "PATH to build it; install Node.js 20+ with npm and build again (or build from "
            "an sdist, which carries the bundle)"
        )
    return npm


def _run(cmd: list[str], cwd: Path) -> None:
    # stdout goes to stderr: a PEP 517 backend's stdout is not ours to fill.
    proc = subprocess.run(cmd, cwd=cwd, stdout=sys.stderr, check=False)  # noqa: S603
    if proc.returncode != 0:
        raise BundleError(f"`{' '.join(cmd[1:])}` in {cwd} failed (exit {proc.returncode})")


def _install(root: Path, npm: str) -> None:
    """``npm ci`` unless ``web/node_modules`` is newer than the lock file."""
    stamp = root / _NPM_STAMP
    lock = root / _WEB / "package-lock.json"
    if stamp.is_file() and stamp.stat().st_mtime >= lock.stat().st_mtime:
        return
    quiet = ["--prefer-offline", "--no-audit", "--no-fund", "--loglevel=error"]
    _run([npm, "ci", *quiet], root / _WEB)
    stamp.touch()


def ensure(root: Path) -> bool:
    """Build the bundle unless it is current; ``True`` when it was built. Raises
    :class:`BundleError` when it cannot be (no sources, no Node.js, a failing build)."""
    state = status(root)
    if state == "current":
        return False
    digest = source_digest(root)
    if digest is None:
        raise BundleError(f"the page bundle {BUNDLE} is {state} and this tree has no web/ sources")
    npm = _npm()
    _install(root, npm)
    banner = f"--banner:js={_STAMP_PREFIX}{digest} */"
    _run([npm, "run", "build", "--silent", "--", banner], root / _WEB)
    if not is_current(root):
        raise BundleError(f"`npm run build` did not produce a current {BUNDLE}")
    return True


def main(argv: list[str]) -> int:
    """``webbundle.py [--check] [ROOT]``."""
    check = "--check" in argv
    rest = [a for a in argv if a != "--check"]
    root = Path(rest[0]) if rest else Path(__file__).resolve().parents[1]
    try:
        if check:
            state = status(root)
            if state != "current":
                print(f"{BUNDLE} is {state}; run `make web`", file=sys.stderr)
                return 1
            return 0
        if ensure(root):
            print(f"built {BUNDLE}", file=sys.stderr)
    except BundleError as exc:
        print(f"webbundle: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
