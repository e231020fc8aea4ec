"""Sinks: where PROV records go (SQLite, MonetDB, Elasticsearch), chosen by URL scheme from `SINKS`.

Sink modules register themselves when imported; `open_sink` imports only the one a URL needs, so a SQLite-only
trainer never loads the MonetDB or Elasticsearch clients.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from pinnprov.core.urls import redact, url_scheme

if TYPE_CHECKING:
    from pinnprov.store.sink import Sink

_MODULES = {
    "sqlite": "pinnprov.store.sqlite_sink",
    "monetdb": "pinnprov.store.monetdb_sink",
    "monetdbs": "pinnprov.store.monetdb_sink",
    "elasticsearch": "pinnprov.collector.sinks.elasticsearch",
    "es": "pinnprov.collector.sinks.elasticsearch",
}


def open_sink(url: str) -> Sink:
    """A sink for a store URL: sqlite:///file.db, monetdb://user:pw@host:port/db, elasticsearch+http(s)://..."""
    from pinnprov.store.access import sqlite_path
    from pinnprov.store.sink import SINKS

    scheme = url_scheme(url)
    if scheme not in _MODULES:
        raise ValueError(f"store URL {redact(url)!r}: unsupported scheme {scheme!r} "
                         "(use sqlite://, monetdb:// or elasticsearch+http(s)://)")
    importlib.import_module(_MODULES[scheme])
    if scheme == "sqlite":
        path = sqlite_path(url)
        if path is None:
            raise ValueError(f"store URL {url!r}: not a SQLite file path")
        return SINKS.get("sqlite")(path)
    if scheme in ("monetdb", "monetdbs"):
        return SINKS.get("monetdb")(url)
    # elasticsearch+https://host -> https://host; elasticsearch://host and es://host are understood by the sink.
    head, rest = url.split("://", 1)
    return SINKS.get("elasticsearch")(f"{head.split('+', 1)[1]}://{rest}" if "+" in head else url)
