"""Settings: file, environment, validation naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from magpie.config import load_settings
from magpie.errors import ConfigError


def test_defaults_are_valid() -> None:
    s = load_settings(environ={})
    assert s.ws_port == 5200 and s.api_port == 5001 and s.sqlite_synchronous == "FULL"


def test_environment_overrides_file(tmp_path: Path) -> None:
    cfg = tmp_path / "m.toml"
    cfg.write_text("[magpie]\nws_port = 6200\napi_port = 6001\ntoken_auth = false\n")
    s = load_settings(cfg, environ={"MAGPIE_WS_PORT": "7200", "OTHER": "x"})
    assert s.ws_port == 7200 and s.api_port == 6001 and s.token_auth is False


@pytest.mark.parametrize(
    ("env", "key"),
    [
        ({"MAGPIE_WS_PORT": "70000"}, "ws_port"),
        ({"MAGPIE_WS_PORT": "abc"}, "MAGPIE_WS_PORT"),
        ({"MAGPIE_TOKEN_AUTH": "maybe"}, "MAGPIE_TOKEN_AUTH"),
        ({"MAGPIE_SQLITE_SYNCHRONOUS": "FAST"}, "sqlite_synchronous"),
        ({"MAGPIE_IDLE_TIMEOUT": "0"}, "idle_timeout"),
        ({"MAGPIE_HOST": "not a host"}, "host"),
        ({"MAGPIE_WEBHOOK_URL": "ftp://x"}, "webhook_url"),
        ({"MAGPIE_WS_PORT": "5001"}, "api_port"),
        ({"MAGPIE_EXT_MAX_KEYS": "0"}, "ext_max_keys"),
        ({"MAGPIE_EXT_SYNC_MAX_LIMIT": "0"}, "ext_sync_max_limit"),
        ({"MAGPIE_EXT_COALESCE_MS": "-1"}, "ext_coalesce_ms"),
    ],
)
def test_bad_values_name_the_key(env: dict[str, str], key: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(environ=env)
    assert info.value.key == key


def test_unknown_key_in_file_is_refused(tmp_path: Path) -> None:
    cfg = tmp_path / "m.toml"
    cfg.write_text("[magpie]\nws_prot = 1\n")
    with pytest.raises(ConfigError) as info:
        load_settings(cfg, environ={})
    assert info.value.key == "ws_prot"


def test_bad_toml_and_missing_file(tmp_path: Path) -> None:
    cfg = tmp_path / "m.toml"
    cfg.write_text("[magpie\n")
    with pytest.raises(ConfigError):
        load_settings(cfg, environ={})
    with pytest.raises(ConfigError):
        load_settings(tmp_path / "missing.toml", environ={})
