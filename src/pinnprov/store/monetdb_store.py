"""MonetDB access for the store: connect from a URL, create or upgrade the schema, run portable SQL.

Kept apart so SQLite users never import pymonetdb. A writable open creates or upgrades the schema
(pinnprov/store/migrations.py checks the catalog, `sys.tables`, `sys.columns`, `sys.idxs`, because MonetDB has no
CREATE INDEX IF NOT EXISTS); a read-only open only reads the version: a newer store is refused, an older one is read
as it is. Every read runs in a transaction of its own that is rolled back: user SQL that slips past the keyword check
cannot change anything, and the next read sees what other connections committed since (writes go through
executemany_write, which commits).
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Mapping, Sequence
from typing import Any

from pinnprov.core.urls import redact
from pinnprov.store import schema
from pinnprov.store.base import QueryResult, ReadOnlyViolation, check_read_only_sql
from pinnprov.store.dialects import MONETDB
from pinnprov.store.migrations import monetdb_version, older_store_hint, refuse_newer, upgrade_monetdb

DEFAULT_PORT = 50000


def parse_monetdb_url(url: str) -> dict[str, Any]:
    """monetdb://user:password@host:port/database -> pymonetdb.connect keyword arguments."""
    parts = urllib.parse.urlsplit(url)
    database = parts.path.lstrip("/")
    if parts.scheme != "monetdb" or not parts.hostname or not database:
        raise ValueError(f"store URL {redact(url)!r}: expected monetdb://user:password@host:port/database")
    try:
        port = parts.port or DEFAULT_PORT
    except ValueError:
        raise ValueError(f"store URL {redact(url)!r}: bad port") from None
    return {
        "hostname": parts.hostname,
        "port": port,
        "database": database,
        "username": urllib.parse.unquote(parts.username or "monetdb"),
        "password": urllib.parse.unquote(parts.password or "monetdb"),
    }


def apply_monetdb(conn: Any) -> None:
    """Create the schema in the connection's current schema, or upgrade an older store; commit.

    The steps and the concurrency rules are pinnprov/store/migrations.py's (`upgrade_monetdb`).
    """
    upgrade_monetdb(conn)


class MonetdbStore:
    """A MonetDB store reached over the MAPI protocol with pymonetdb."""

    dialect = MONETDB

    def __init__(self, url: str, *, read_only: bool = True, connect_timeout_s: int = 10) -> None:
        import pymonetdb

        self.url = redact(url)
        self.read_only = read_only
        try:
            self._conn = pymonetdb.connect(
                autocommit=False, connect_timeout=connect_timeout_s, **parse_monetdb_url(url)
            )
        except (OSError, pymonetdb.Error) as error:
            raise ValueError(f"cannot connect to {self.url}: {error}") from None
        self.schema_version: int | None = None  # None: no schema_version table (nothing written yet)
        try:
            if read_only:
                try:
                    self.schema_version = monetdb_version(self._conn.cursor())
                finally:
                    self._conn.rollback()
                refuse_newer(self.schema_version)
            else:
                apply_monetdb(self._conn)
                self.schema_version = schema.SCHEMA_VERSION
        except BaseException:
            self._conn.close()
            raise

    def execute(self, sql: str, params: Mapping[str, object] | None = None, *, user_sql: bool = False) -> QueryResult:
        import pymonetdb

        if user_sql:
            sql = check_read_only_sql(sql)
        # pymonetdb only %-formats when parameters are given, so only then translate :name -> %(name)s.
        query = MONETDB.sql(sql) if params else sql
        cursor = self._conn.cursor()
        try:
            cursor.execute(query, params or None)
            rows = [tuple(row) for row in cursor.fetchall()] if cursor.description else []
            columns = [item[0] for item in cursor.description or ()]
        except pymonetdb.Error as error:
            message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            if self.schema_version is not None and self.schema_version < schema.SCHEMA_VERSION:
                message += older_store_hint(self.schema_version)
            raise (ReadOnlyViolation if user_sql else ValueError)(f"SQL error: {message}") from None
        finally:
            # Always end the read's transaction, writable stores too: MonetDB reads a snapshot taken when the
            # transaction began, so a steering poller whose connection stayed inside one never saw new commands.
            self._conn.rollback()
        return QueryResult(columns, rows)

    def executemany_write(self, sql: str, rows: Sequence[Mapping[str, object]]) -> int:
        if self.read_only:
            raise ReadOnlyViolation("store opened read-only")
        cursor = self._conn.cursor()
        changed = 0
        try:
            for row in rows:
                changed += cursor.execute(MONETDB.sql(sql), row) or 0
            self._conn.commit()
        except BaseException:
            self._conn.rollback()
            raise
        return changed

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> MonetdbStore:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
