"""Schema migrations: bring an older store (SQLite or MonetDB) up to this code's schema version, step by step.

One step per version N-1 -> N (`steps()`), declared as data derived from the schema itself
(pinnprov/store/schema.py): the tables whose `since` is N are created, the columns whose `since` is N are added to
the tables that already existed (`ALTER TABLE ... ADD COLUMN`, nullable, so every existing row keeps its values and
gets NULL), the indexes whose `since` is N are created, and the PROV views (pinnprov/store/prov_views.py) are
rebuilt. A step is rendered per dialect against the store's catalog, so it only adds what is missing: a table an
older version created on its own (the alert engine's tables before version 2) or a table created at its current
definition by an earlier step is not touched again. Each applied step leaves a row in `schema_version`.

Who migrates: the first writer. Writers (the sinks, `open_store(read_only=False)`) call `upgrade_sqlite` /
`upgrade_monetdb` when they connect:
- SQLite: `BEGIN IMMEDIATE` takes the write lock, the version is read again under it (a writer that waited finds
  the store already upgraded and does nothing), then every step, the views and the version rows commit together.
- MonetDB (optimistic concurrency, no locks): one transaction; when two writers race, the loser's conflicting
  statement or commit fails; it rolls back, reads the version again and finds nothing left to do.
A store newer than this code is refused with one line (`newer_store_message`), by writers and readers alike.

Readers (read-only opens) never migrate. They read an older store as it is: what it has answers, a query that needs
a newer table or column fails with an SQL error followed by `older_store_hint` (open it once for writing, e.g. let
the collector write to it, to upgrade). A fresh store (no `schema_version` table) is created whole at the current
version and stamped with it.
"""

from __future__ import annotations

import itertools
import logging
import sqlite3
import time
from dataclasses import dataclass, field
from typing import Any

from pinnprov.store import schema
from pinnprov.store.dialects import MONETDB, SQLITE, Dialect
from pinnprov.store.prov_views import VIEWS, create_view_sql
from pinnprov.store.schema import (
    SchemaVersionError,
    add_column_sql,
    create_index_sql,
    create_table_sql,
    newer_store_message,
)

log = logging.getLogger(__name__)

MONETDB_ATTEMPTS = 5
"""How often a MonetDB writer tries the upgrade transaction when concurrent writers make it fail."""


@dataclass(frozen=True)
class Migration:
    """The step from schema version `version - 1` to `version`, as data (names; the definitions are the schema's)."""

    version: int
    note: str
    create_tables: tuple[str, ...] = ()
    add_columns: tuple[tuple[str, str], ...] = ()  # (table, column)
    create_indexes: tuple[tuple[str, str], ...] = ()  # (table, index) on tables that already existed
    rebuild_views: bool = True  # the views are always rebuilt at their current definition after the last step


def steps() -> tuple[Migration, ...]:
    """One step for each version 2..SCHEMA_VERSION, in order, derived from the `since` marks of the schema."""
    validate_schema()
    result = []
    for version in range(2, schema.SCHEMA_VERSION + 1):
        result.append(
            Migration(
                version,
                schema.SCHEMA_VERSIONS[version],
                create_tables=tuple(table.name for table in schema.TABLES if table.since == version),
                add_columns=tuple(
                    (table.name, column.name)
                    for table in schema.TABLES
                    if table.since < version
                    for column in table.columns
                    if column.since == version
                ),
                create_indexes=tuple(
                    (table.name, index.name)
                    for table in schema.TABLES
                    if table.since < version
                    for index in table.indexes
                    if index.since == version
                ),
            )
        )
    return tuple(result)


def validate_schema() -> None:
    """The schema's version marks must describe steps that can run: else ValueError (a programming error)."""
    target = schema.SCHEMA_VERSION
    if sorted(schema.SCHEMA_VERSIONS) != list(range(1, target + 1)):
        raise ValueError(f"SCHEMA_VERSIONS must name every version 1..{target}: {sorted(schema.SCHEMA_VERSIONS)}")
    for table in schema.TABLES:
        if not 1 <= table.since <= target:
            raise ValueError(f"table {table.name}: since={table.since} is not a version 1..{target}")
        for column in table.columns:
            if not 1 <= column.since <= target:
                raise ValueError(f"column {table.name}.{column.name}: since={column.since} is not a version")
            if column.since > table.since and (not column.nullable or column.name in table.primary_key):
                raise ValueError(
                    f"column {table.name}.{column.name} is added by version {column.since}: it must be nullable and "
                    "outside the primary key (ALTER TABLE ADD COLUMN gives existing rows NULL)"
                )
            unique = {name for key in table.unique for name in key}
            if column.since > table.since and column.name in unique:
                raise ValueError(f"column {table.name}.{column.name}: a column added later cannot be UNIQUE")
        for index in table.indexes:
            if not 1 <= index.since <= target:
                raise ValueError(f"index {index.name}: since={index.since} is not a version 1..{target}")
            if any(table.column(name).since > max(index.since, table.since) for name in index.columns):
                raise ValueError(f"index {index.name} is older than a column it covers")


def older_store_hint(version: int) -> str:
    """Appended to a reader's SQL error on a store older than this code."""
    return (
        f" (the store is at schema version {version}, this pinnprov's is {schema.SCHEMA_VERSION}: open it once for "
        "writing, e.g. let the collector write to it, to upgrade it)"
    )


def refuse_newer(version: int | None) -> None:
    if version is not None and version > schema.SCHEMA_VERSION:
        raise SchemaVersionError(newer_store_message(version))


# --- the store's catalog, rendered steps ---------------------------------------------------------------------


@dataclass
class Catalog:
    """What a store has: its tables with their columns, its index and view names."""

    tables: dict[str, set[str]] = field(default_factory=dict)
    indexes: set[str] = field(default_factory=set)
    views: set[str] = field(default_factory=set)


def plan(catalog: Catalog, version: int | None, dialect: Dialect) -> list[str]:
    """The statements that bring a store at `version` (None: a new store) to SCHEMA_VERSION, views included.

    Only what the catalog lacks is created or added; `catalog` is updated as if they had run.
    """
    tables = {table.name: table for table in schema.TABLES}
    statements: list[str] = []
    q = dialect.quote

    def create_table(name: str) -> None:
        if name in catalog.tables:
            return
        table = tables[name]
        statements.append(create_table_sql(table, dialect))
        catalog.tables[name] = {column.name for column in table.columns}
        for index in table.indexes:
            create_index(name, index.name)

    def create_index(table_name: str, index_name: str) -> None:
        if index_name in catalog.indexes:
            return
        table = tables[table_name]
        index = next(index for index in table.indexes if index.name == index_name)
        statements.append(create_index_sql(table, index, dialect))
        catalog.indexes.add(index_name)

    # The views go first and come back last: they read the tables that change (MonetDB refuses to alter a table
    # a view depends on), and only their current definition exists.
    for view in VIEWS:
        if view.name in catalog.views:
            statements.append(f"DROP VIEW {q(view.name)}")
    if version is None:
        for table in schema.TABLES:
            create_table(table.name)
    else:
        for step in steps():
            if step.version <= version:
                continue
            for name in step.create_tables:
                create_table(name)
            for table_name, column_name in step.add_columns:
                table = tables[table_name]
                if column_name not in catalog.tables[table_name]:
                    statements.append(add_column_sql(table, table.column(column_name), dialect))
                    catalog.tables[table_name].add(column_name)
            for table_name, index_name in step.create_indexes:
                create_index(table_name, index_name)
    statements.extend(create_view_sql(view, dialect) for view in VIEWS)
    catalog.views = {view.name for view in VIEWS}
    return statements


def _stamps(version: int | None) -> list[int]:
    """The schema_version rows an upgrade from `version` adds: one per step (a new store: the current version)."""
    if version is None:
        return [schema.SCHEMA_VERSION]
    return list(range(version + 1, schema.SCHEMA_VERSION + 1))


_STAMP = (
    "INSERT INTO schema_version (version, applied_at) SELECT :version, :at "
    "WHERE NOT EXISTS (SELECT 1 FROM schema_version WHERE version = :version)"
)


# --- SQLite ---------------------------------------------------------------------------------------------------


def sqlite_version(conn: sqlite3.Connection) -> int | None:
    """The store's schema version; None for a new store (no schema_version table, or no row in it)."""
    exists = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'").fetchone()
    if not exists:
        return None
    row = conn.execute("SELECT MAX(version) FROM schema_version").fetchone()
    return None if row is None or row[0] is None else int(row[0])


def sqlite_catalog(conn: sqlite3.Connection) -> Catalog:
    catalog = Catalog()
    for name, kind in conn.execute("SELECT name, type FROM sqlite_master WHERE type IN ('table', 'index', 'view')"):
        if kind == "table":
            columns = conn.execute(f'PRAGMA table_info("{name}")').fetchall()
            catalog.tables[name] = {column[1] for column in columns}
        elif kind == "index":
            catalog.indexes.add(name)
        else:
            catalog.views.add(name)
    return catalog


def upgrade_sqlite(conn: sqlite3.Connection) -> None:
    """Create the schema in a new SQLite store, or upgrade an older one; refuse a newer one.

    `conn` must be in autocommit mode (isolation_level=None). Idempotent; at the current version it only reads.
    """
    version = sqlite_version(conn)
    refuse_newer(version)
    if version == schema.SCHEMA_VERSION:
        return
    conn.execute("BEGIN IMMEDIATE")  # the write lock: one writer upgrades, the others wait and then find it done
    try:
        version = sqlite_version(conn)
        refuse_newer(version)
        if version != schema.SCHEMA_VERSION:
            for statement in plan(sqlite_catalog(conn), version, SQLITE):
                conn.execute(statement)
            now = time.time()
            for stamp in _stamps(version):
                conn.execute(_STAMP, {"version": stamp, "at": now})
            log.info("schema of the SQLite store upgraded from version %s to %d", version, schema.SCHEMA_VERSION)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


# --- MonetDB --------------------------------------------------------------------------------------------------

_IN_SCHEMA = "JOIN sys.schemas s ON t.schema_id = s.id WHERE s.name = CURRENT_SCHEMA"


def monetdb_catalog(cursor: Any) -> Catalog:
    """The catalog of the connection's current schema (sys.tables type 0: table, 1: view)."""
    catalog = Catalog()
    cursor.execute(f"SELECT t.name, t.type FROM sys.tables t {_IN_SCHEMA} AND t.type IN (0, 1)")
    for name, kind in cursor.fetchall():
        if int(kind) == 1:
            catalog.views.add(name)
        else:
            catalog.tables[name] = set()
    cursor.execute(f"SELECT t.name, c.name FROM sys.columns c JOIN sys.tables t ON c.table_id = t.id {_IN_SCHEMA}")
    for table_name, column_name in cursor.fetchall():
        if table_name in catalog.tables:
            catalog.tables[table_name].add(column_name)
    cursor.execute(f"SELECT i.name FROM sys.idxs i JOIN sys.tables t ON i.table_id = t.id {_IN_SCHEMA}")
    catalog.indexes = {row[0] for row in cursor.fetchall()}
    return catalog


def monetdb_version(cursor: Any, catalog: Catalog | None = None) -> int | None:
    """The schema version of the connection's current schema; None for a new store."""
    if catalog is None:
        cursor.execute(f"SELECT COUNT(*) FROM sys.tables t {_IN_SCHEMA} AND t.name = 'schema_version'")
        if cursor.fetchone()[0] == 0:
            return None
    elif "schema_version" not in catalog.tables:
        return None
    cursor.execute("SELECT MAX(version) FROM schema_version")
    row = cursor.fetchone()
    return None if row is None or row[0] is None else int(row[0])


def upgrade_monetdb(conn: Any, *, attempts: int = MONETDB_ATTEMPTS) -> None:
    """Create the schema in a new MonetDB store (the connection's current schema), or upgrade an older one.

    `conn` is a pymonetdb connection with autocommit off; the upgrade commits (or, with nothing to do, rolls back
    its reads). A store newer than this code is refused (SchemaVersionError).
    """
    import pymonetdb

    for attempt in itertools.count(1):
        cursor = conn.cursor()
        try:
            version = monetdb_version(cursor)
            refuse_newer(version)
            if version == schema.SCHEMA_VERSION:
                conn.rollback()  # end the read transaction: the next one sees what others commit
                return
            for statement in plan(monetdb_catalog(cursor), version, MONETDB):
                cursor.execute(statement)
            now = time.time()
            for stamp in _stamps(version):
                cursor.execute(MONETDB.sql(_STAMP), {"version": stamp, "at": now})
            conn.commit()
            log.info("schema of the MonetDB store upgraded from version %s to %d", version, schema.SCHEMA_VERSION)
            return
        except pymonetdb.Error as error:
            conn.rollback()
            if attempt >= attempts:
                raise
            # Most likely a concurrent writer upgraded (or created) the store first: read the version again.
            log.info("schema upgrade attempt %d failed (%s); reading the version again", attempt, error)
            time.sleep(0.05 * attempt)
        except BaseException:
            conn.rollback()
            raise
    raise AssertionError("unreachable")  # pragma: no cover

