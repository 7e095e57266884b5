"""Magpie's PEP 517 build backend: setuptools, plus the browser demo's page bundle.

Before setuptools builds an sdist or a wheel, :func:`webbundle.ensure` makes sure
``src/magpie/web/static/app.js`` is current (built from this tree's ``web/`` sources), running
``npm ci`` and ``npm run build`` when it is missing or stale and failing with a clear message
when Node.js is not installed. So every sdist and wheel carries the page. An sdist carries the
sources and the bundle built from them: a wheel built from it needs no Node.js.

Editable installs (``pip install -e .``, what ``make install`` does) are left to setuptools:
a working tree's bundle is built by ``make web``.
"""

from __future__ import annotations

from pathlib import Path

import webbundle
from setuptools import build_meta as _setuptools

# The other PEP 517/660 hooks are setuptools' own.
build_editable = _setuptools.build_editable
get_requires_for_build_editable = _setuptools.get_requires_for_build_editable
get_requires_for_build_sdist = _setuptools.get_requires_for_build_sdist
get_requires_for_build_wheel = _setuptools.get_requires_for_build_wheel
prepare_metadata_for_build_editable = _setuptools.prepare_metadata_for_build_editable
prepare_metadata_for_build_wheel = _setuptools.prepare_metadata_for_build_wheel

__all__ = [
    "build_editable",
    "build_sdist",
    "build_wheel",
    "get_requires_for_build_editable",
    "get_requires_for_build_sdist",
    "get_requires_for_build_wheel",
    "prepare_metadata_for_build_editable",
    "prepare_metadata_for_build_wheel",
]


def _bundle() -> None:
    try:
        webbundle.ensure(Path.cwd())
    except webbundle.BundleError as exc:
        raise SystemExit(f"magpie build: {exc}") from None


def build_wheel(
    wheel_directory: str,
    config_settings: dict[str, str | list[str]] | None = None,
    metadata_directory: str | None = None,
) -> str:
    """Build the page bundle if needed, then the wheel."""
    _bundle()
    return str(_setuptools.build_wheel(wheel_directory, config_settings, metadata_directory))


def build_sdist(
    sdist_directory: str, config_settings: dict[str, str | list[str]] | None = None
) -> str:
    """Build the page bundle if needed, then the sdist (sources and bundle)."""
    _bundle()
    return str(_setuptools.build_sdist(sdist_directory, config_settings))
