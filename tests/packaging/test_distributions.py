"""Every sdist and wheel carries the page: built from a clean tree, installed elsewhere, served.

One module-scoped build (about a minute on a warm pip/npm cache): the files of a fresh clone of
this working tree are copied to a temporary directory; ``pip wheel`` builds a wheel there (the
build backend runs ``npm ci`` and esbuild, as no bundle exists yet); ``python -m build
--sdist`` packs the sdist; a second wheel is built from the unpacked sdist with **no Node.js on
PATH** (the C toolchain of the optional native extension stays reachable). The tree's wheel
is installed into a fresh virtual environment, and ``magpie demo`` runs from a directory
outside the repository; the page, its script, and the page running in Chromium are checked.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import venv
import zipfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from playwright.async_api import async_playwright, expect

from tests.packaging.support import clean_tree, in_ci, load_webbundle
from tests.support.nodes import time_scale

wb = load_webbundle()

BUNDLE = "magpie/web/static/app.js"
CHROMIUM = Path(os.environ.get("MAGPIE_CHROMIUM", "/usr/bin/chromium"))
#: What building the optional C extension (``magpie.protocol._cbc``) runs, linked into the
#: otherwise empty PATH of the sdist build.
_C_TOOLCHAIN = ("cc", "gcc", "x86_64-linux-gnu-gcc", "as", "ld")
#: Output lines of pip's own configuration (missing local index folders), not of our build.
_PIP_NOISE = re.compile(r"WARNING: Location '.*' is ignored")


@dataclass(frozen=True)
class Dists:
    tree: Path
    wheel: Path
    sdist: Path
    sdist_wheel: Path
    logs: dict[str, str]


def _build_env(**extra: str) -> dict[str, str]:
    # Byte-compiling on: with PYTHONDONTWRITEBYTECODE setuptools prints a warning of its own.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env.update(extra)
    return env


def _run(cmd: list[str], cwd: Path, env: dict[str, str], what: str) -> str:
    proc = subprocess.run(
        cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600 * time_scale()
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"{what} failed:\n{output[-4000:]}"
    return output


def _only(folder: Path, pattern: str) -> Path:
    found = sorted(folder.glob(pattern))
    assert len(found) == 1, f"expected one {pattern} in {folder}: {found}"
    return found[0]


@pytest.fixture(scope="module")
def dists(tmp_path_factory: pytest.TempPathFactory) -> Dists:
    base = tmp_path_factory.mktemp("dists")
    tree = clean_tree(base / "tree")
    assert not (tree / wb.BUNDLE).exists(), "a fresh clone has no bundle"
    logs: dict[str, str] = {}
    pip = [sys.executable, "-m", "pip"]
    logs["pip wheel"] = _run(
        [*pip, "wheel", "-v", "--no-deps", "-w", str(base / "wheels"), "."],
        tree,
        _build_env(),
        "pip wheel of the clean tree",
    )
    logs["build --sdist"] = _run(
        [sys.executable, "-m", "build", "--sdist", "--outdir", str(base / "sdist"), "."],
        tree,
        _build_env(),
        "python -m build --sdist",
    )
    sdist = _only(base / "sdist", "*.tar.gz")
    with tarfile.open(sdist) as tar:
        tar.extractall(base / "unpacked", filter="data")
    unpacked = _only(base / "unpacked", "magpie_im-*")
    no_node = base / "no-node-bin"
    no_node.mkdir()
    for tool in _C_TOOLCHAIN:  # the optional C extension is still built; Node.js is gone
        found = shutil.which(tool)
        if found is not None:
            (no_node / tool).symlink_to(found)
    logs["pip wheel (sdist)"] = _run(
        [*pip, "wheel", "-v", "--no-deps", "-w", str(base / "sdist-wheels"), "."],
        unpacked,
        _build_env(PATH=str(no_node)),
        "pip wheel of the unpacked sdist without Node.js",
    )
    return Dists(
        tree,
        _only(base / "wheels", "magpie_im-*.whl"),
        sdist,
        _only(base / "sdist-wheels", "magpie_im-*.whl"),
        logs,
    )


def _wheel_files(wheel: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(wheel) as zf:
        return {name: zf.read(name) for name in zf.namelist() if not name.endswith("RECORD")}


def test_the_wheel_carries_the_page_built_from_the_tree(dists: Dists) -> None:
    files = _wheel_files(dists.wheel)
    for name in ("magpie/web/static/index.html", "magpie/web/static/app.css", BUNDLE):
        assert name in files, f"{name} is missing from the wheel"
    first_line = files[BUNDLE].split(b"\n", 1)[0].decode()
    assert wb.source_digest(dists.tree) in first_line, "bundle not built from these sources"
    assert len(files[BUNDLE]) > 100_000, "the bundle holds the JS SDK"
    assert any(n.endswith("licenses/LICENSE") for n in files)


def test_the_sdist_carries_the_bundle_its_sources_and_the_backend(dists: Dists) -> None:
    with tarfile.open(dists.sdist) as tar:
        names = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
    for name in (
        "src/magpie/web/static/app.js",
        "web/src/main.js",
        "web/package.json",
        "web/package-lock.json",
        "build_backend/magpie_build.py",
        "build_backend/webbundle.py",
        "LICENSE",
    ):
        assert name in names, f"{name} is missing from the sdist"


def test_a_wheel_from_the_sdist_needs_no_node_and_equals_the_trees(dists: Dists) -> None:
    assert _wheel_files(dists.sdist_wheel) == _wheel_files(dists.wheel)
    assert "npm" not in dists.logs["pip wheel (sdist)"].lower().replace("npm_", "")


def test_both_wheels_carry_the_native_extension_where_it_builds(dists: Dists) -> None:
    if importlib.util.find_spec("magpie.protocol._cbc") is None:
        pytest.skip("the native extension does not build here (no compiler or OpenSSL headers)")
    for wheel in (dists.wheel, dists.sdist_wheel):
        names = _wheel_files(wheel)
        assert any(n.startswith("magpie/protocol/_cbc.") and n.endswith(".so") for n in names)


def test_the_builds_print_no_warnings(dists: Dists) -> None:
    for step, log in dists.logs.items():
        warnings = [
            line
            for line in log.splitlines()
            if "warn" in line.lower() and not _PIP_NOISE.search(line)
        ]
        assert not warnings, f"{step} warned:\n" + "\n".join(warnings)


@pytest.fixture(scope="module")
def installed(dists: Dists, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtual environment with the tree's wheel and its runtime dependencies."""
    env_dir = tmp_path_factory.mktemp("venv") / "v"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    _run(
        [str(python), "-m", "pip", "install", "-q", str(dists.wheel)],
        env_dir,
        _build_env(),
        "installing the wheel",
    )
    return env_dir


@pytest.fixture
async def demo(installed: Path, tmp_path: Path) -> AsyncIterator[str]:
    """``magpie demo`` of the installed wheel, run from outside the repository; its API URL."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAGPIE_")}
    env.update(MAGPIE_WS_PORT="0", MAGPIE_API_PORT="0", MAGPIE_TCP_PORT="0", PYTHONPATH="")
    proc = await asyncio.create_subprocess_exec(
        str(installed / "bin" / "magpie"),
        "demo",
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    assert proc.stdout is not None
    try:
        seen: list[str] = []
        while True:
            line = (await asyncio.wait_for(proc.stdout.readline(), 60 * time_scale())).decode()
            assert line, f"magpie demo exited: {seen}"
            seen.append(line)
            found = re.search(r"HTTP API on (http://[\d.]+:\d+)", line)
            if found:
                break
        yield found[1]
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), 20 * time_scale())
            except TimeoutError:
                proc.kill()
                await proc.wait()


def test_the_installed_package_is_the_wheel_not_the_repository(installed: Path) -> None:
    where = subprocess.run(
        [str(installed / "bin" / "python"), "-c", "import magpie; print(magpie.__file__)"],
        cwd=installed,
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert where.startswith(str(installed)), where


async def test_the_installed_wheel_serves_the_working_page(
    demo: str, dists: Dists, tmp_path: Path
) -> None:
    async with httpx.AsyncClient(base_url=demo, timeout=10 * time_scale()) as http:
        page = await http.get("/")
        assert page.status_code == 200 and '<script defer src="/static/app.js">' in page.text
        script = await http.get("/static/app.js")
        assert script.status_code == 200
        assert script.content == _wheel_files(dists.wheel)[BUNDLE]
    if not CHROMIUM.is_file():
        if in_ci():
            pytest.fail(f"{CHROMIUM} is missing (CI=true: the browser check is mandatory)")
        pytest.skip(f"{CHROMIUM} is missing; the HTTP checks above passed")
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=str(CHROMIUM), args=["--no-sandbox", "--disable-gpu"], headless=True
        )
        try:
            tab = await browser.new_page()
            errors: list[str] = []
            tab.on("pageerror", lambda exc: errors.append(str(exc)))
            await tab.goto(demo + "/")
            # The script replaced "Loading…" with the demo login: one button per demo user.
            await expect(tab.locator('.login-user[data-uid="alice"]')).to_be_visible(
                timeout=15_000 * time_scale()
            )
            assert not errors, errors
        finally:
            await browser.close()
