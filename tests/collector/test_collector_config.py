"""Collector settings: precedence, file formats, one clear error line for every bad setting, exposure rules."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pinnprov.collector.auth import BearerToken, is_loopback
from pinnprov.collector.config import load_config


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("PINNPROV_COLLECTOR_TOKEN", "PINNPROV_COLLECTOR_GRPC_ENDPOINT", "PINNPROV_COLLECTOR_HTTP_ENDPOINT",
                 "PINNPROV_STORE", "PINNPROV_COLLECTOR_MAX_REQUEST_BYTES", "PINNPROV_COLLECTOR_SPOOL_DIR"):
        monkeypatch.delenv(name, raising=False)


def test_flag_beats_file_beats_environment_beats_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("grpc_endpoint: 127.0.0.1:5000\nhttp_endpoint: 127.0.0.1:5001\n"
                      "store: [sqlite:///a.db, 'monetdb://u:p@db:50000/prov']\nmax_request_bytes: 1000\n")
    monkeypatch.setenv("PINNPROV_COLLECTOR_GRPC_ENDPOINT", "127.0.0.1:6000")
    monkeypatch.setenv("PINNPROV_COLLECTOR_MAX_REQUEST_BYTES", "2000")
    monkeypatch.setenv("PINNPROV_COLLECTOR_SPOOL_DIR", str(tmp_path / "env-spool"))
    settings = load_config(config, {"grpc_endpoint": "127.0.0.1:7000"})
    assert settings.grpc_endpoint == "127.0.0.1:7000"  # flag
    assert settings.http_endpoint == "127.0.0.1:5001"  # file
    assert settings.max_request_bytes == 1000  # file beats environment
    assert settings.spool_dir == tmp_path / "env-spool"  # environment beats default
    assert settings.stores == ("sqlite:///a.db", "monetdb://u:p@db:50000/prov")
    assert load_config(None).grpc_endpoint == "127.0.0.1:6000"
    assert load_config(None).stores == ("sqlite:///pinnprov.db",)


def test_toml_and_token_file(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("abc123\n")
    config = tmp_path / "c.toml"
    config.write_text(f'grpc_endpoint = "0.0.0.0:4317"\nhttp_endpoint = "off"\ntoken_file = "{token}"\nfsync = false\n')
    settings = load_config(config)
    assert settings.token == "abc123" and settings.http_endpoint == "" and settings.fsync is False
    assert "abc123" not in repr(settings)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("grpc_endpoint: [unclosed", "not valid YAML"),
        ("- a list\n- not a mapping\n", "expected a mapping"),
        ("grpc_endpiont: 127.0.0.1:1\n", "unknown key 'grpc_endpiont'"),
        ("max_request_bytes: lots\n", "max_request_bytes: invalid value 'lots'"),
        ("max_request_bytes: -5\n", "max_request_bytes"),
        ("http_endpoint: nohostport\n", "http_endpoint"),
        ("stores: [not-a-url]\n", "is not a URL"),
        ("fsync: maybe\n", "expected true or false"),
        ("grpc_endpoint: 0.0.0.0:4317\n", "without a bearer token"),
        ("tls_cert_file: /nonexistent/cert.pem\ntls_key_file: /nonexistent/key.pem\n", "does not exist"),
        ("tls_cert_file: /nonexistent/cert.pem\n", "given together"),
        ("token: a\ntoken_file: /x\n", "either token or token_file"),
    ],
)
def test_bad_settings_are_one_clear_value_error(tmp_path: Path, text: str, message: str) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text(text)
    with pytest.raises(ValueError, match=message) as error:
        load_config(config)
    assert "\n" not in str(error.value)


def test_token_is_never_a_flag_and_environment_token_allows_exposure(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="not accepted on the command line"):
        load_config(None, {"token": "x"})
    monkeypatch.setenv("PINNPROV_COLLECTOR_TOKEN", "from-env")
    settings = load_config(None, {"grpc_endpoint": "0.0.0.0:4317", "http_endpoint": "[::]:4318"})
    assert settings.token == "from-env"


def test_loopback_detection_and_token_check() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("127.9.9.9") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("::") and not is_loopback("192.0.2.1")
    token = BearerToken("t0k")
    assert token.allows("Bearer t0k") and token.allows("bearer t0k")
    assert not token.allows(None) and not token.allows("Bearer t0") and not token.allows("Basic t0k")
    assert BearerToken("").allows(None)


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pinnprov", "collector", *args], capture_output=True, text=True,
                          timeout=120, env=env)


def test_cli_bad_config_is_one_line_and_exit_2(tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("grpc_endpoint: 127.0.0.1:1\nbogus_key: 1\n")
    result = _cli("--config", str(config))
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert "unknown key 'bogus_key'" in result.stderr and "Traceback" not in result.stderr
    exposed = _cli("--grpc-endpoint", "0.0.0.0:4317", "--spool-dir", str(tmp_path / "s"))
    assert exposed.returncode == 2 and "without a bearer token" in exposed.stderr
    assert _cli("--config", str(tmp_path / "missing.yaml")).returncode == 2


def test_cli_check_config_prints_effective_settings_with_secrets_redacted(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("token: hunter2\nstores: ['monetdb://monetdb:pw@localhost:50000/prov']\n")
    result = _cli("--config", str(config), "--check-config")
    assert result.returncode == 0, result.stderr
    assert "hunter2" not in result.stdout and ":pw@" not in result.stdout and "***" in result.stdout
