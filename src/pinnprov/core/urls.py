"""Store URLs as users write them: hiding their passwords, and picking the SQL store among several."""

from __future__ import annotations

import urllib.parse


def redact(url: str) -> str:
    """The URL without its password, for logs, health output and error messages."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    return urllib.parse.urlunsplit(parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@")))


def url_scheme(url: str) -> str:
    """`sqlite`, `monetdb`, `elasticsearch`, ... (`elasticsearch+https` -> `elasticsearch`; a bare path is SQLite)."""
    if "://" not in url:
        return "sqlite"
    return url.split("://", 1)[0].split("+", 1)[0].lower()


def sql_store_url(urls: list[str]) -> str | None:
    """The first SQL store (SQLite or MonetDB): where steering commands and alert actions are kept."""
    return next((u for u in urls if url_scheme(u) in ("sqlite", "monetdb", "monetdbs")), None)
