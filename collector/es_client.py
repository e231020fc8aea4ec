"""The Elasticsearch client of the collector's sink: built from resolved connection settings, and its errors
explained in one line.

Connection settings (URLs, TLS, credentials) are resolved in contract/elastic_connection.py, shared with the
Kibana importer. Client major N talks to server major N: the 9.x client sends `compatible-with=9` headers that
an 8.x server refuses. Only APIs common to the 8.x and 9.x clients are used, so `pip install 'elasticsearch>=8,<9'`
is enough for 8.x clusters; `describe_error` turns the version mismatch into that advice.
"""

from __future__ import annotations

import re
from typing import Any

from contract.elastic_connection import Connection


def build_client(connection: Connection) -> Any:
    """An `elasticsearch.Elasticsearch` with no transport-level retries (the sink retries, with backoff)."""
    from elasticsearch import Elasticsearch

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
        import elasticsearch

        client = elasticsearch.__versionstr__
        found = re.search(r"either version (\d+)", f"{text} {getattr(error, 'body', '')}")
        major = int(found.group(1)) if found else None
        wanted = f"'elasticsearch>={major},<{major + 1}'" if major else "the client of the server's major version"
        return (
            f"Elasticsearch refused client {client}'s version header: the server is another major version"
            f"{f' ({major}.x)' if major else ''}; install the matching client: pip install {wanted}"
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
