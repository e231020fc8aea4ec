"""The collector's settings: one dataclass, read from flags, a config file (YAML or TOML) and the environment.

Precedence per key: a command-line flag, then the config file given with --config (both are explicit
choices of the user), then the `PINNPROV_COLLECTOR_*` environment variable, then the default. The token is
never a flag (command lines are visible to every user of a host): config file (`token` or `token_file`)
or PINNPROV_COLLECTOR_TOKEN. Every problem is a ValueError naming the file and key, which the CLI prints
as one line.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from pinnprov.core.settings import DEFAULT_STORE_URL, parse_bool, resolve

DEFAULT_GRPC_ENDPOINT = "127.0.0.1:4317"
DEFAULT_HTTP_ENDPOINT = "127.0.0.1:4318"
TOKEN_ENV = "PINNPROV_COLLECTOR_TOKEN"


def default_spool_dir() -> Path:
    """$XDG_STATE_HOME/pinnprov/collector-spool: survives reboots, unlike /tmp."""
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "pinnprov" / "collector-spool"


def default_store() -> str:
    """The store the collector writes when none is given: the same default the embedded mode uses."""
    return DEFAULT_STORE_URL


@dataclass(frozen=True)
class CollectorConfig:
    grpc_endpoint: str = DEFAULT_GRPC_ENDPOINT  # host:port; "" disables the gRPC receiver
    http_endpoint: str = DEFAULT_HTTP_ENDPOINT  # host:port; "" disables OTLP/HTTP (and /healthz)
    stores: tuple[str, ...] = ()  # sink URLs: sqlite:///path, monetdb://host:port/db, ...
    spool_dir: Path = field(default_factory=default_spool_dir)
    token: str = field(default="", repr=False)
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    max_request_bytes: int = 16 << 20  # one OTLP request, after decompression
    max_spool_bytes: int = 1 << 30  # bytes awaiting delivery before receivers answer "retry later"
    fsync: bool = True
    batch_max_requests: int = 64  # spooled requests merged into one sink batch
    batch_max_bytes: int = 8 << 20
    batch_linger_s: float = 0.02  # wait this long for more requests before writing a small batch
    retry_initial_s: float = 0.5
    retry_max_s: float = 30.0
    log_interval_s: float = 60.0  # self-metrics to the log; 0 disables
    workers: int = 8  # gRPC handler threads; OTLP/HTTP decodes up to twice as many requests at once
    http_max_connections: int = 256  # open OTLP/HTTP connections; more are answered 503 and closed
    http_idle_timeout_s: float = 15.0  # an idle keep-alive connection is closed after this long
    http_request_timeout_s: float = 30.0  # headers, and then the body, must each arrive within this
    rules: tuple[Any, ...] = ()  # alert rules (collector.alerts.Rule), from `rules:` or `rules_file:` in the file

    def validate(self) -> None:
        """Cross-field rules: exposure needs a token; TLS needs both files."""
        from pinnprov.collector.auth import (
            is_loopback,  # local: auth imports nothing heavy, but keeps this module plain
        )

        if not self.grpc_endpoint and not self.http_endpoint:
            raise ValueError("collector: both grpc_endpoint and http_endpoint are disabled; nothing would listen")
        for key in ("grpc_endpoint", "http_endpoint"):
            endpoint = getattr(self, key)
            if endpoint and not is_loopback(split_endpoint(endpoint, key)[0]) and not self.token:
                raise ValueError(
                    f"{key}: refusing to listen on non-loopback address {endpoint} without a bearer token "
                    f"(set {TOKEN_ENV} or token_file in the config file)"
                )
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("tls_cert_file and tls_key_file must be given together")
        for path in (self.tls_cert_file, self.tls_key_file):
            if path is not None and not path.is_file():
                raise ValueError(f"TLS file {path} does not exist")
        if self.max_request_bytes > self.max_spool_bytes:
            raise ValueError("max_request_bytes must not exceed max_spool_bytes")


def split_endpoint(endpoint: str, key: str = "endpoint") -> tuple[str, int]:
    """'host:port' or '[v6]:port' -> (host, port); ValueError naming `key` otherwise."""
    host, sep, port_text = endpoint.rpartition(":")
    if not sep or not host or not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ValueError(f"{key}: expected host:port, got {endpoint!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, int(port_text)


def _endpoint(value: object) -> str:
    text = str(value).strip()
    if text.lower() in ("", "off", "none", "disabled"):
        return ""
    split_endpoint(text)
    return text


def _positive_int(value: object) -> int:
    if isinstance(value, bool):
        raise ValueError("expected a positive integer")
    number = int(str(value).replace("_", ""))
    if number <= 0:
        raise ValueError("expected a positive integer")
    return number


def _non_negative_float(value: object) -> float:
    if isinstance(value, bool):
        raise ValueError("expected a number")
    number = float(str(value))  # like _positive_int: the text of a number from a flag, a file or the environment
    if not number >= 0:
        raise ValueError("expected a number >= 0")
    return number


def _positive_float(value: object) -> float:
    number = _non_negative_float(value)
    if number == 0:
        raise ValueError("expected a number > 0")
    return number


def _stores(value: object) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list | tuple) or not all(isinstance(item, str) and item for item in items):
        raise ValueError("expected a store URL or a list of them")
    urls = tuple(url for item in items for url in item.split(",") if url.strip())
    for url in urls:
        if "://" not in url:
            raise ValueError(f"{url!r} is not a URL (e.g. sqlite:///path/prov.sqlite or monetdb://host/db)")
    return tuple(url.strip() for url in urls)


def _path(value: object) -> Path:
    if not isinstance(value, str | Path) or not str(value):
        raise ValueError("expected a path")
    return Path(os.path.expanduser(str(value)))


def _string(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError("expected a string")
    return value


_PARSERS: dict[str, Callable[[Any], Any]] = {
    "grpc_endpoint": _endpoint,
    "http_endpoint": _endpoint,
    "stores": _stores,
    "spool_dir": _path,
    "token": _string,
    "tls_cert_file": _path,
    "tls_key_file": _path,
    "max_request_bytes": _positive_int,
    "max_spool_bytes": _positive_int,
    "fsync": parse_bool,
    "batch_max_requests": _positive_int,
    "batch_max_bytes": _positive_int,
    "batch_linger_s": _non_negative_float,
    "retry_initial_s": _non_negative_float,
    "retry_max_s": _non_negative_float,
    "log_interval_s": _non_negative_float,
    "workers": _positive_int,
    "http_max_connections": _positive_int,
    "http_idle_timeout_s": _positive_float,
    "http_request_timeout_s": _positive_float,
}
FILE_ONLY = frozenset({"token_file", "rules", "rules_file"})
ENV = {name: f"PINNPROV_COLLECTOR_{name.upper()}" for name in _PARSERS}
ENV["stores"] = "PINNPROV_STORE"  # the same variable `pinnprov query` reads


def read_config_file(path: Path) -> dict[str, Any]:
    """The file's mapping (YAML, or TOML for *.toml); ValueError with the file name on any problem."""
    try:
        text = path.read_text()
    except OSError as error:
        raise ValueError(f"config {path}: cannot read ({error.strerror or error})") from None
    try:
        data = tomllib.loads(text) if path.suffix == ".toml" else yaml.safe_load(text)
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as error:
        first = " ".join(str(error).split())
        raise ValueError(f"config {path}: not valid {'TOML' if path.suffix == '.toml' else 'YAML'}: {first}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValueError(f"config {path}: expected a mapping of settings at the top level")
    data = {str(k).replace("-", "_"): v for k, v in data.items()}
    if "store" in data and "stores" not in data:  # accept the singular, as on the command line
        data["stores"] = data.pop("store")
    unknown = sorted(set(data) - set(_PARSERS) - FILE_ONLY)
    if unknown:
        known = ", ".join(sorted(set(_PARSERS) | FILE_ONLY))
        raise ValueError(f"config {path}: unknown key {unknown[0]!r} (known: {known})")
    return data


def _rules(from_file: dict[str, Any], origin: str, rules_file: object) -> tuple[Any, ...]:
    """Alert rules: inline `rules:` in the config file, or a rules file (flag beats file); validated now."""
    rules_file = rules_file if rules_file is not None else from_file.get("rules_file")
    if rules_file is None and from_file.get("rules") is None:
        return ()
    from pinnprov.collector.alerts import load_rules, load_rules_file

    try:
        if rules_file is not None:
            return tuple(load_rules_file(_path(rules_file)))
        return tuple(load_rules(from_file["rules"]))
    except ValueError as error:
        raise ValueError(f"{origin}{error}") from None


def load_config(config_file: Path | None = None, overrides: Mapping[str, object] | None = None) -> CollectorConfig:
    """Settings by precedence (flag > file > environment > default), validated."""
    overrides = dict(overrides or {})
    if "token" in overrides:
        raise ValueError("the collector token is not accepted on the command line; use a config file or " + TOKEN_ENV)
    from_file = read_config_file(config_file) if config_file is not None else {}
    origin = f"config {config_file}: " if config_file is not None else ""
    if "token_file" in from_file:
        if "token" in from_file:
            raise ValueError(f"{origin}give either token or token_file, not both")
        token_path = _path(from_file.pop("token_file"))
        try:
            from_file["token"] = token_path.read_text().strip()
        except OSError as error:
            raise ValueError(f"{origin}token_file {token_path}: {error.strerror or error}") from None
    values: dict[str, Any] = {"rules": _rules(from_file, origin, overrides.pop("rules_file", None))}
    for item in fields(CollectorConfig):
        name = item.name
        if name == "rules":
            continue
        parse = _PARSERS[name]
        explicit = overrides.get(name)
        prefix = "" if explicit is not None else origin
        if explicit is None:
            explicit = from_file.get(name)
        try:
            value = resolve(name, explicit, ENV[name], None, parse)
            if value is not None and explicit is not None and not isinstance(explicit, str):
                value = parse(value)  # typed values from the file are checked as strictly as strings
        except (TypeError, ValueError) as error:
            message = str(error)
            if message.startswith((ENV[name], f"{name}:")):
                raise ValueError(f"{prefix if message.startswith(name) else ''}{message}") from None
            raise ValueError(f"{prefix}{name}: invalid value {explicit!r} ({message})") from None
        if value is not None:
            values[name] = value
    if not values.get("stores"):
        values["stores"] = (default_store(),)
    config = CollectorConfig(**values)
    config.validate()
    return config
