"""The Elasticsearch client of the collector's sink: built from resolved connection settings, and its errors
explained in one line.

Connection settings (URLs, TLS, credentials) are resolved in pinnprov/core/elastic_connection.py, shared with the
Kibana importer.

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

import logging
import re
from typing import TYPE_CHECKING, Any

from pinnprov.core.elastic_connection import Connection

if TYPE_CHECKING:
    from elasticsearch import Elasticsearch

log = logging.getLogger(__name__)

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


def check_server_version(client: Elasticsearch) -> str:
    """The server's version; logs a warning when the client is older than the server (works, but only
    through REST compatibility, which a server two majors ahead drops)."""
    number = str(client.info()["version"]["number"])
    server, ours = int(number.split(".")[0]), client_major()
    if server > ours:
        log.warning("Elasticsearch %s is talking to the %d.x client through REST compatibility; install the "
                    "matching one: %s", number, ours, install_advice(server))
    return number


def build_client(connection: Connection) -> Elasticsearch:
    """An `elasticsearch.Elasticsearch` with no transport-level retries (the sink retries, with backoff)."""
    client_class = require_client().Elasticsearch  # the installed client's (8.x or 9.x)

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
    client: Elasticsearch = client_class(list(connection.hosts), **options)
    return client


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
