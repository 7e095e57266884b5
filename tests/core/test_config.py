"""Settings: file, environment, validation naming the key."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from magpie.config import Settings, load_settings
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
        ({"MAGPIE_TCP_PORT": "65536"}, "tcp_port"),
        ({"MAGPIE_TCP_PORT": "-1"}, "tcp_port"),
        ({"MAGPIE_TCP_PORT": "5200"}, "tcp_port"),
        ({"MAGPIE_TCP_PORT": "5001"}, "tcp_port"),
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


@pytest.mark.parametrize(
    ("env", "key", "value"),
    [
        ({"MAGPIE_LOG_LEVEL": "info"}, "log_level", "INFO"),
        ({"MAGPIE_LOG_LEVEL": " Warning "}, "log_level", "WARNING"),
        ({"MAGPIE_SQLITE_SYNCHRONOUS": "full"}, "sqlite_synchronous", "FULL"),
        ({"MAGPIE_SQLITE_SYNCHRONOUS": "Normal"}, "sqlite_synchronous", "NORMAL"),
        ({"MAGPIE_TOKEN_AUTH": "FALSE"}, "token_auth", False),
        ({"MAGPIE_OPS_PUBLIC": "Yes"}, "ops_public", True),
    ],
)
def test_words_are_case_insensitive(env: dict[str, str], key: str, value: object) -> None:
    assert getattr(load_settings(environ=env), key) == value


def test_case_is_normalised_for_direct_construction_too() -> None:
    assert Settings(log_level="debug").log_level == "DEBUG"
    with pytest.raises(ConfigError) as info:
        Settings(log_level="loud")
    assert info.value.key == "log_level" and "loud" in info.value.message


def test_secrets_are_read_from_files(tmp_path: Path) -> None:
    key, secret = tmp_path / "key", tmp_path / "secret"
    key.write_text("k-123\n")
    secret.write_text("  s-456  \n")
    env = {"MAGPIE_API_KEY_FILE": str(key), "MAGPIE_WEBHOOK_SECRET_FILE": str(secret)}
    s = load_settings(environ=env)
    assert (s.api_key, s.webhook_secret) == ("k-123", "s-456")
    cfg = tmp_path / "m.toml"
    cfg.write_text(f'[magpie]\napi_key_file = "{key}"\n')
    assert load_settings(cfg, environ={}).api_key == "k-123"


@pytest.mark.parametrize("content", [None, "", "\n  \n"])
def test_missing_or_empty_secret_file_names_the_variable(
    tmp_path: Path, content: str | None
) -> None:
    path = tmp_path / "key"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ConfigError) as info:
        load_settings(environ={"MAGPIE_API_KEY_FILE": str(path)})
    assert info.value.key == "MAGPIE_API_KEY_FILE" and str(path) in info.value.message


def test_secret_given_twice_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "key"
    path.write_text("from-file")
    env = {"MAGPIE_API_KEY": "direct", "MAGPIE_API_KEY_FILE": str(path)}
    with pytest.raises(ConfigError) as info:
        load_settings(environ=env)
    assert info.value.key == "MAGPIE_API_KEY_FILE"
    assert "from-file" not in info.value.message and "direct" not in info.value.message


def test_only_secrets_come_from_files(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "port"
    path.write_text("6000")
    with caplog.at_level(logging.WARNING, logger="magpie.config"):
        s = load_settings(environ={"MAGPIE_WS_PORT_FILE": str(path)})
    assert s.ws_port == 5200
    assert "MAGPIE_WS_PORT_FILE" in caplog.text


def test_unknown_variable_is_a_warning_naming_it(caplog: pytest.LogCaptureFixture) -> None:
    env = {
        "MAGPIE_API_KYE": "x",
        "MAGPIE_TIME_SCALE": "3",
        "MAGPIE_BENCH_CONNECTIONS": "10",
        "MAGPIE_WS_PORT": "6200",
        "OTHER_THING": "y",
    }
    with caplog.at_level(logging.WARNING, logger="magpie.config"):
        s = load_settings(environ=env)
    assert s.ws_port == 6200
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1, warnings
    assert "MAGPIE_API_KYE" in warnings[0] and "did you mean MAGPIE_API_KEY?" in warnings[0]


def test_store_url_defaults_to_the_sqlite_file_of_data_dir() -> None:
    s = load_settings(environ={}, data_dir="/srv/magpie", db_file="m.db")
    assert s.resolved_store_url == "sqlite:////srv/magpie/m.db"
    assert s.sqlite_path == Path("/srv/magpie/m.db")
    relative = load_settings(environ={"MAGPIE_STORE_URL": "sqlite:///var/x.db"})
    assert relative.sqlite_path == Path("var/x.db")


def test_a_postgresql_store_url_is_shown_without_credentials() -> None:
    url = "postgresql://magpie:s3cret@db.example:6543/im"
    s = load_settings(environ={"MAGPIE_STORE_URL": url})
    assert s.sqlite_path is None and s.resolved_store_url == url
    assert s.store_display == "postgresql://db.example:6543/im"


@pytest.mark.parametrize(
    "url",
    [
        "mysql://u:s3cret@h/db",
        "postgresql://u:s3cret@h:99999/db",
        "postgresql://u:s3cret@h:5432/",
        "postgresql:///db",
        "sqlite:///",
        "sqlite://relative.db",
        "/var/magpie.db",
    ],
)
def test_a_bad_store_url_names_the_setting_and_hides_the_value(url: str) -> None:
    with pytest.raises(ConfigError, match="store_url") as info:
        load_settings(environ={"MAGPIE_STORE_URL": url})
    assert "s3cret" not in str(info.value)


@pytest.mark.parametrize("size", [1, 0])
def test_store_pool_size_needs_two(size: int) -> None:
    with pytest.raises(ConfigError, match="store_pool_size"):
        Settings(store_pool_size=size)
    assert Settings(store_pool_size=2).store_pool_size == 2


@pytest.mark.parametrize(
    ("value", "origins"),
    [
        ("", ()),
        ("*", ("*",)),
        (" https://app.example.com , http://127.0.0.1:8080 ", ("https://app.example.com", "http://127.0.0.1:8080")),
    ],
)  # fmt: skip
def test_cors_origins_are_a_list(value: str, origins: tuple[str, ...]) -> None:
    assert load_settings(environ={"MAGPIE_CORS_ORIGINS": value}).cors_origin_list == origins


@pytest.mark.parametrize(
    "bad", ["https://app.example.com/", "app.example.com", "ftp://x.example", "https://a b"]
)
def test_a_cors_origin_with_a_path_or_no_scheme_is_refused(bad: str) -> None:
    with pytest.raises(ConfigError, match="cors_origins"):
        load_settings(environ={"MAGPIE_CORS_ORIGINS": f"https://ok.example,{bad}"})


@pytest.mark.parametrize("value", ["text", "JSON", " Json "])
def test_log_format_is_a_word_in_any_case(value: str) -> None:
    assert load_settings(environ={"MAGPIE_LOG_FORMAT": value}).log_format in ("text", "json")


def test_an_unknown_log_format_is_refused() -> None:
    with pytest.raises(ConfigError, match="log_format"):
        load_settings(environ={"MAGPIE_LOG_FORMAT": "xml"})


def test_tcp_gateway_settings() -> None:
    s = load_settings(environ={})
    assert (s.tcp_port, s.tcp_enabled, s.tcp_public_addr) == (5100, True, "")
    assert load_settings(environ={"MAGPIE_TCP_PORT": "65535"}).tcp_port == 65535
    assert load_settings(environ={"MAGPIE_TCP_PORT": "0"}).tcp_port == 0
    # Off, its port may be anything valid, even another listener's.
    off = load_settings(environ={"MAGPIE_TCP_ENABLED": "false", "MAGPIE_TCP_PORT": "5200"})
    assert off.tcp_enabled is False


def test_list_settings_parse_and_validate(tmp_path: Path) -> None:
    s = load_settings(
        environ={
            "MAGPIE_TRUSTED_PROXIES": "10.0.0.0/8, 192.168.1.7,::1",
            "MAGPIE_WS_ALLOWED_ORIGINS": "https://Chat.Example.com/, http://localhost:8080",
        }
    )
    assert [str(n) for n in s.trusted_networks] == ["10.0.0.0/8", "192.168.1.7/32", "::1/128"]
    assert s.allowed_origins == ("https://chat.example.com", "http://localhost:8080")
    cfg = tmp_path / "m.toml"
    cfg.write_text('[magpie]\ntrusted_proxies = ["127.0.0.1", "10.1.0.0/16"]\n')
    assert len(load_settings(cfg, environ={}).trusted_networks) == 2
    assert load_settings(environ={}).trusted_networks == ()


@pytest.mark.parametrize(
    ("env", "key"),
    [
        ({"MAGPIE_TRUSTED_PROXIES": "10.0.0.0/8,proxy.local"}, "trusted_proxies"),
        ({"MAGPIE_WS_ALLOWED_ORIGINS": "chat.example.com"}, "ws_allowed_origins"),
        ({"MAGPIE_WS_ALLOWED_ORIGINS": "https://a.example/path"}, "ws_allowed_origins"),
        ({"MAGPIE_OPS_LISTEN": "127.0.0.1"}, "ops_listen"),
        ({"MAGPIE_OPS_LISTEN": "nowhere:9100"}, "ops_listen"),
        ({"MAGPIE_OPS_LISTEN": "127.0.0.1:70000"}, "ops_listen"),
        ({"MAGPIE_HTTP_HEADER_TIMEOUT": "0"}, "http_header_timeout"),
        ({"MAGPIE_WS_MAX_CONNECTIONS_PER_UID": "-1"}, "ws_max_connections_per_uid"),
        ({"MAGPIE_SEND_RATE": "-1"}, "send_rate"),
        ({"MAGPIE_SEND_BURST": "0"}, "send_burst"),
        ({"MAGPIE_RATE_LIMIT_KEYS": "0"}, "rate_limit_keys"),
    ],
)
def test_bad_defence_settings_name_the_key(env: dict[str, str], key: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(environ=env)
    assert info.value.key == key


def test_zero_turns_caps_and_rates_off_and_burst_may_be_zero_then() -> None:
    s = load_settings(
        environ={
            "MAGPIE_SEND_RATE": "0",
            "MAGPIE_SEND_BURST": "0",
            "MAGPIE_WS_MAX_CONNECTIONS": "0",
        }
    )
    assert (s.send_rate, s.send_burst, s.ws_max_connections) == (0, 0, 0)
    assert load_settings(environ={"MAGPIE_SEND_BURST": "1"}).send_burst == 1


def test_ops_listen_is_parsed() -> None:
    assert load_settings(environ={}).ops_address is None
    s = load_settings(environ={"MAGPIE_OPS_LISTEN": "127.0.0.1:9100"})
    assert s.ops_address == ("127.0.0.1", 9100)
    assert load_settings(environ={"MAGPIE_OPS_LISTEN": "[::1]:0"}).ops_address == ("::1", 0)
