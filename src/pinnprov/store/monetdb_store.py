"""MonetDB access for the store: connect from a URL, create the schema, run portable SQL.

Kept apart so SQLite users never import pymonetdb. The schema is created by checking the catalog
(`sys.tables`, `sys.idxs`) because MonetDB has no CREATE INDEX IF NOT EXISTS. Every read runs in a transaction of
its own that is rolled back: user SQL that slips past the keyword check cannot change anything, and the next
read sees what other connections committed since (writes go through executemany_write, which commits).
"""

from __future__ import annotations

import time
import urllib.parse
from collections.abc import Mapping, Sequence
from typing import Any

from pinnprov.core.urls import redact
from pinnprov.store.access import QueryResult, ReadOnlyViolation, check_read_only_sql
from pinnprov.store.dialects import MONETDB
from pinnprov.store.prov_views import VIEWS, create_view_sql
from pinnprov.store.schema import SCHEMA_VERSION, TABLES, SchemaVersionError, create_index_sql, create_table_sql

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
    """Create missing tables, indexes and views in the connection's current schema; commit."""
    cursor = conn.cursor()
    cursor.execute(
        "SELECT t.name FROM sys.tables t JOIN sys.schemas s ON t.schema_id = s.id WHERE s.name = CURRENT_SCHEMA"
    )
    existing = {row[0] for row in cursor.fetchall()}
    if "schema_version" in existing:
        cursor.execute("SELECT MAX(version) FROM schema_version")
        version = cursor.fetchone()[0]
        if version is not None and int(version) > SCHEMA_VERSION:
            raise SchemaVersionError(f"store schema version {version} is newer than this pinnprov ({SCHEMA_VERSION})")
    for table in TABLES:
        if table.name not in existing:
            cursor.execute(create_table_sql(table, MONETDB))
    cursor.execute(
        "SELECT i.name FROM sys.idxs i JOIN sys.tables t ON i.table_id = t.id "
        "JOIN sys.schemas s ON t.schema_id = s.id WHERE s.name = CURRENT_SCHEMA"
    )
    indexes = {row[0] for row in cursor.fetchall()}
    for table in TABLES:
        for index in table.indexes:
            if index.name not in indexes:
                cursor.execute(create_index_sql(table, index, MONETDB))
    for view in VIEWS:
        cursor.execute(create_view_sql(view, MONETDB))
    cursor.execute("SELECT COUNT(*) FROM schema_version WHERE version = %(v)s", {"v": SCHEMA_VERSION})
    if cursor.fetchone()[0] == 0:
        cursor.execute(
            "INSERT INTO schema_version (version, applied_at) VALUES (%(v)s, %(at)s)",
            {"v": SCHEMA_VERSION, "at": time.time()},
        )
    conn.commit()


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
        if not read_only:
            apply_monetdb(self._conn)

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
