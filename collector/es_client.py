"""Elasticsearch (and Kibana) connection settings: URLs, TLS and credentials, resolved once, safely.

Secrets never come from the command line (they would show in `ps` and shell history): an API key or a
user/password come from an explicit Python argument, the environment, or a file named in the environment
(`*_FILE`, the Docker/systemd-credentials convention). A URL carrying `user:password@` is refused for the
same reason. TLS certificates are always verified; a private CA is given as a file (`PINNPROV_ES_CA_CERTS`)
or pinned by fingerprint (`PINNPROV_ES_CA_FINGERPRINT`, what Elasticsearch 8+ prints at first start).

The client is not part of the base install: its major must follow the server's. A 9.x client sends
`Accept: application/vnd.elasticsearch+json; compatible-with=9`, which an 8.x server refuses (400
media_type_header_exception: "Accept version must be either version 8 or 7, but found 9", see
RestCompatibleVersionHelper.getCompatibleVersion in elastic/elasticsearch), while a 9.x server still
accepts an 8.x client through REST compatibility (N-1). So `pip install 'pinnprov[es9]'` for 9.x clusters,
`'pinnprov[es8]'` for 8.x; only APIs common to both clients are used. `require_client` says which extra
to install when none is there, `describe_error` when the installed one is refused, and
`check_server_version` warns when an older client only works through compatibility.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import re
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
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
        api: str | tuple[str, str] = tuple(key.split(":", 1)) if ":" in key else key  # type: ignore[assignment]
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


EXTRAS = {8: "es8", 9: "es9"}
"""Server major -> the pinnprov extra that installs the matching client."""


def install_advice(major: int | None) -> str:
    """What to pip install for a server of `major` (None: unknown)."""
    if major in EXTRAS:
        return f"pip install 'pinnprov[{EXTRAS[major]}]' (or pip install 'elasticsearch>={major},<{major + 1}')"
    if major is not None:
        return (f"pip install 'elasticsearch>={major},<{major + 1}' (pinnprov supports and tests Elasticsearch 8.x "
                "and 9.x only)")
    return "pip install 'pinnprov[es9]' for Elasticsearch 9.x or 'pinnprov[es8]' for 8.x"


def require_client() -> Any:
    """The `elasticsearch` module; ValueError naming the extra to install when it is missing."""
    try:
        import elasticsearch
    except ImportError:
        raise ValueError("the Elasticsearch sink needs the Python client of your cluster's major version, which "
                         f"is not installed: {install_advice(None)}") from None
    return elasticsearch


def client_major() -> int:
    return int(str(require_client().__versionstr__).split(".")[0])


def check_server_version(client: Any) -> str:
    """The server's version; logs a warning when the client is older than the server (works, but only
    through REST compatibility, which a server two majors ahead drops)."""
    number = str(client.info()["version"]["number"])
    server, ours = int(number.split(".")[0]), client_major()
    if server > ours:
        log.warning("Elasticsearch %s is talking to the %d.x client through REST compatibility; install the "
                    "matching one: %s", number, ours, install_advice(server))
    return number


def build_client(connection: Connection) -> Any:
    """An `elasticsearch.Elasticsearch` with no transport-level retries (the sink retries, with backoff)."""
    Elasticsearch = require_client().Elasticsearch  # noqa: N806 - the class

    options: dict[str, Any] = {
        "request_timeout": connection.request_timeout,
        "max_retries": 0,
        "retry_on_timeout": False,
    }
    credentials = connection.credentials
    if credentials.api_key:
        options["api_key"] = credentials.api_key
    elif credentials.username:
        options["basic_auth"] = (credentials.username, credentials.password or "")
    if connection.ca_certs:
        options["ca_certs"] = connection.ca_certs
    if connection.ca_fingerprint:
        options["ssl_assert_fingerprint"] = connection.ca_fingerprint
    return Elasticsearch(list(connection.hosts), **options)


def error_status(error: BaseException) -> int | None:
    """HTTP status of an API error (None for connection errors and anything else)."""
    meta = getattr(error, "meta", None)
    status = getattr(meta, "status", None)
    return status if isinstance(status, int) else None


def is_retryable(error: BaseException) -> bool:
    """Busy (429), server-side (5xx), unreachable or timed out: worth trying again later."""
    from elasticsearch import ApiError, TransportError

    if _version_mismatch(error):
        return True  # a deployment problem, not the data's: keep the data until the right client is installed
    if isinstance(error, ApiError):
        status = error_status(error)
        return status is None or status == 429 or status >= 500 or status in (401, 403, 408)
    return isinstance(error, TransportError)


def _version_mismatch(error: BaseException) -> bool:
    text = str(error)
    return "media_type_header_exception" in text or "compatible-with" in text


def describe_error(error: BaseException) -> str:
    """One line a user can act on, including the client/server major-version mismatch."""
    text = str(error)
    status = error_status(error)
    if _version_mismatch(error):
        client = require_client().__versionstr__
        found = re.search(r"either version (\d+)", f"{text} {getattr(error, 'body', '')}")
        major = int(found.group(1)) if found else None
        return (
            f"Elasticsearch refused client {client}'s version header: the server is another major version"
            f"{f' ({major}.x)' if major else ''}; install the matching client: {install_advice(major)}"
        )
    if status == 401:
        return "Elasticsearch authentication failed (401): check PINNPROV_ES_API_KEY or PINNPROV_ES_USERNAME/PASSWORD"
    if status == 403:
        return f"Elasticsearch refused the request (403 forbidden): the credentials lack a privilege: {text[:200]}"
    if type(error).__name__ == "UnsupportedProductError":
        return "the server at that URL is not Elasticsearch (no X-Elastic-Product header)"
    cause = getattr(error, "message", None)
    if type(error).__name__ == "TlsError":
        return (
            f"TLS failure talking to Elasticsearch: {cause or text}; for a private CA set PINNPROV_ES_CA_CERTS "
            "(or PINNPROV_ES_CA_FINGERPRINT)"
        )
    if isinstance(cause, str | BaseException) and str(cause) and str(cause) != text:
        text = f"{text}: {cause}"  # transport errors keep the socket-level reason in .message
    return f"{type(error).__name__}: {text[:300]}"
