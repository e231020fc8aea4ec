"""Elasticsearch (and Kibana) connection settings: URLs, TLS and credentials, resolved once, safely.

Why in the bottom package: the collector's Elasticsearch sink and the Kibana importer connect to the same stack
with the same rules, and neither may import the other.

Secrets never come from the command line (they would show in `ps` and shell history): an API key or a
user/password come from an explicit Python argument, the environment, or a file named in the environment
(`*_FILE`, the Docker/systemd-credentials convention). A URL carrying `user:password@` is refused for the
same reason. TLS certificates are always verified; a private CA is given as a file (`PINNPROV_ES_CA_CERTS`)
or pinned by fingerprint (`PINNPROV_ES_CA_FINGERPRINT`, what Elasticsearch 8+ prints at first start).
"""

from __future__ import annotations

import ipaddress
import logging
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

log = logging.getLogger(__name__)

SCHEMES = {
    "http": "http",
    "https": "https",
    "elasticsearch": "http",
    "elasticsearch+http": "http",
    "elasticsearch+https": "https",
    "es": "http",
    "es+http": "http",
    "es+https": "https",
}
"""Accepted URL schemes; `elasticsearch[+https]://` is the store-URL spelling (`pinnprov collector --store`)."""
DEFAULT_PORT = 9200


@dataclass(frozen=True)
class Credentials:
    """One of: an API key (encoded, or id:key), a user/password pair, or nothing. Repr never shows secrets."""

    api_key: str | tuple[str, str] | None = field(default=None, repr=False)
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    @property
    def kind(self) -> str:
        return "api_key" if self.api_key else "basic" if self.username else "none"

    def authorization_header(self) -> str | None:
        """The HTTP Authorization value (Kibana accepts the same credentials as Elasticsearch)."""
        import base64

        if self.api_key:
            key = self.api_key
            if isinstance(key, tuple):
                key = base64.b64encode(f"{key[0]}:{key[1]}".encode()).decode()
            return f"ApiKey {key}"
        if self.username:
            token = base64.b64encode(f"{self.username}:{self.password or ''}".encode()).decode()
            return f"Basic {token}"
        return None


@dataclass(frozen=True)
class Connection:
    """Everything needed to build a client; `hosts` are normalised http(s) URLs."""

    hosts: tuple[str, ...]
    credentials: Credentials = Credentials()
    ca_certs: str | None = None
    ca_fingerprint: str | None = None
    request_timeout: float = 10.0


def _read_secret(path: str, variable: str) -> str:
    file = Path(path).expanduser()
    try:
        mode = file.stat().st_mode
        text = file.read_text(encoding="utf-8").strip()
    except OSError as error:
        raise ValueError(f"{variable}: cannot read {str(file)!r} ({error.strerror})") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning("%s: %s is readable by other users; chmod 600 it", variable, file)
    if not text:
        raise ValueError(f"{variable}: {str(file)!r} is empty")
    return text


def _secret(explicit: str | None, explicit_file: str | None, env_var: str, env: Mapping[str, str]) -> str | None:
    """Explicit value, explicit file, env value, env file (`<VAR>_FILE`), in that order."""
    if explicit:
        return explicit
    if explicit_file:
        return _read_secret(explicit_file, f"{env_var}_FILE")
    if env.get(env_var):
        return env[env_var]
    if env.get(f"{env_var}_FILE"):
        return _read_secret(env[f"{env_var}_FILE"], f"{env_var}_FILE")
    return None


def resolve_credentials(
    env_prefix: str = "PINNPROV_ES_",
    *,
    api_key: str | None = None,
    api_key_file: str | None = None,
    username: str | None = None,
    password: str | None = None,
    password_file: str | None = None,
    fallback_prefix: str | None = None,
    env: Mapping[str, str] | None = None,
) -> Credentials:
    """Credentials from arguments, then `<prefix>API_KEY[_FILE]` / `<prefix>USERNAME` + `<prefix>PASSWORD[_FILE]`.

    `fallback_prefix` lets Kibana reuse the Elasticsearch credentials when it has none of its own.
    """
    env = os.environ if env is None else env
    key = _secret(api_key, api_key_file, f"{env_prefix}API_KEY", env)
    user = username or env.get(f"{env_prefix}USERNAME") or None
    secret = _secret(password, password_file, f"{env_prefix}PASSWORD", env)
    if key and (user or secret):
        raise ValueError(f"{env_prefix}API_KEY and {env_prefix}USERNAME/PASSWORD are both set; choose one")
    if secret and not user:
        raise ValueError(f"{env_prefix}PASSWORD is set but {env_prefix}USERNAME is not")
    if user and not secret:
        raise ValueError(f"{env_prefix}USERNAME is set but {env_prefix}PASSWORD (or {env_prefix}PASSWORD_FILE) is not")
    if not key and not user and fallback_prefix:
        return resolve_credentials(fallback_prefix, env=env)
    if key:
        # An encoded key is base64 (no colon); "id:key" is the raw pair the create-API-key call returns.
        key_id, colon, api_key = key.partition(":")
        api: str | tuple[str, str] = (key_id, api_key) if colon else key
        return Credentials(api_key=api)
    return Credentials(username=user, password=secret) if user else Credentials()


def normalise_url(url: str, *, default_port: int = DEFAULT_PORT, what: str = "Elasticsearch URL") -> str:
    """Check one URL and return it as http(s)://host:port[/path]; credentials in it are refused."""
    text = url.strip()
    parts = urlsplit(text if "://" in text else f"http://{text}")
    scheme = SCHEMES.get(parts.scheme.lower())
    if scheme is None:
        raise ValueError(f"{what} {url!r}: scheme must be one of {', '.join(sorted(SCHEMES))}")
    if parts.username or parts.password:
        raise ValueError(
            f"{what} {parts.hostname!r}: credentials in the URL are refused (they leak into logs and `ps`); "
            "use PINNPROV_ES_API_KEY or PINNPROV_ES_USERNAME/PINNPROV_ES_PASSWORD"
        )
    if not parts.hostname:
        raise ValueError(f"{what} {url!r}: no host")
    try:
        port = parts.port or default_port
    except ValueError:
        raise ValueError(f"{what} {url!r}: invalid port") from None
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return urlunsplit((scheme, f"{host}:{port}", parts.path.rstrip("/"), "", ""))


def split_options(url: str, allowed: tuple[str, ...]) -> tuple[str, dict[str, str]]:
    """`http://h:9200?index_prefix=x` -> ("http://h:9200", {"index_prefix": "x"}); unknown keys are refused.

    A store URL is the only thing some callers (the collector's --store) can pass, so options ride in it.
    """
    base, _, query = url.partition("?")
    options: dict[str, str] = {}
    for pair in filter(None, query.split("&")):
        key, _, value = pair.partition("=")
        if key not in allowed:
            raise ValueError(f"Elasticsearch URL option {key!r} is not known (choose from: {', '.join(allowed)})")
        options[key] = unquote(value)
    return base, options


def is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def resolve_connection(
    url: str,
    *,
    api_key: str | None = None,
    api_key_file: str | None = None,
    username: str | None = None,
    password: str | None = None,
    password_file: str | None = None,
    ca_certs: str | None = None,
    ca_fingerprint: str | None = None,
    request_timeout: float = 10.0,
    env: Mapping[str, str] | None = None,
) -> Connection:
    """Validate the URL(s) (comma-separated for several nodes) and gather TLS and credentials."""
    env = os.environ if env is None else env
    hosts = tuple(normalise_url(part) for part in url.split(",") if part.strip())
    if not hosts:
        raise ValueError("Elasticsearch URL: empty")
    credentials = resolve_credentials(
        api_key=api_key, api_key_file=api_key_file, username=username, password=password,
        password_file=password_file, env=env,
    )
    ca = ca_certs or env.get("PINNPROV_ES_CA_CERTS") or None
    if ca and not Path(ca).expanduser().is_file():
        raise ValueError(f"PINNPROV_ES_CA_CERTS: {ca!r} is not a file")
    fingerprint = ca_fingerprint or env.get("PINNPROV_ES_CA_FINGERPRINT") or None
    if (ca or fingerprint) and not all(h.startswith("https://") for h in hosts):
        raise ValueError("a CA certificate or fingerprint is set but the Elasticsearch URL is not https://")
    if not (request_timeout > 0):
        raise ValueError(f"request_timeout: must be > 0, got {request_timeout!r}")
    for host in hosts:
        if credentials.kind != "none" and host.startswith("http://") and not is_loopback(host):
            log.warning("sending Elasticsearch credentials over plain HTTP to %s; use https://", host)
    return Connection(hosts, credentials, str(Path(ca).expanduser()) if ca else None, fingerprint, request_timeout)
