"""Open a PROV store by URL, for reading (queries, export) or writing (steering commands).

URLs: `sqlite:///relative/path.db`, `sqlite:////absolute/path.db`, a plain file path, or
`monetdb://user:password@host:port/database`. Default: env `PINNPROV_STORE`, else `sqlite:///pinnprov.db`.

Read-only is enforced by the database, not just by us: SQLite opens `file:...?mode=ro` with
`PRAGMA query_only=ON` and, for user SQL, an authorizer that allows reading only; MonetDB runs every
read in a transaction that is rolled back. A read never creates a missing store file.

Schema versions (pinnprov/store/migrations.py): a writable open creates or upgrades the schema; a read-only open
never changes it: it refuses a store newer than this code with one line, and reads an older store as it is (an SQL
error there says that the store is older and how to upgrade it).

The shared types (QueryResult, CommandRow, ReadOnlyViolation, the Store protocol) live in pinnprov/store/base.py
and are importable from here too.
"""

from __future__ import annotations

import sqlite3
import time
import urllib.parse
from collections.abc import Mapping, Sequence
from pathlib import Path

from pinnprov.core.settings import STORE_ENV, resolve_store_url
from pinnprov.store import schema
from pinnprov.store.base import CommandRow, QueryResult, ReadOnlyViolation, Store, check_read_only_sql
from pinnprov.store.dialects import SQLITE
from pinnprov.store.migrations import older_store_hint, refuse_newer, sqlite_version

__all__ = [
    "COMMAND_STATES",
    "CommandRow",
    "QueryResult",
    "ReadOnlyViolation",
    "SqliteStore",
    "Store",
    "acknowledge_command",
    "check_read_only_sql",
    "insert_command",
    "list_commands",
    "open_store",
    "pending_commands",
    "sqlite_path",
]

COMMAND_STATES = ("pending", "applied", "refused")


def sqlite_path(url: str) -> Path | None:
    """The file of a SQLite URL or plain path; None for other schemes."""
    if url.startswith("sqlite://"):
        rest = url[len("sqlite://") :]
        if not rest.startswith("/") or rest == "/":
            raise ValueError(f"store URL {url!r}: use sqlite:///relative.db or sqlite:////absolute.db")
        return Path(urllib.parse.unquote(rest[1:]))
    if "://" in url:
        return None
    return Path(url)


# SQLite authorizer codes a read may need; everything else (writes, ATTACH, PRAGMA, DDL) is denied.
_ALLOWED_ACTIONS = {sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_FUNCTION, sqlite3.SQLITE_RECURSIVE}


def _read_only_authorizer(action: int, *_: object) -> int:
    return sqlite3.SQLITE_OK if action in _ALLOWED_ACTIONS else sqlite3.SQLITE_DENY


class SqliteStore:
    """A SQLite store; read-only unless asked otherwise."""

    dialect = SQLITE

    def __init__(self, url: str, path: Path, *, read_only: bool = True, busy_timeout_s: float = 30.0) -> None:
        self.url = url
        self.path = path
        self.read_only = read_only
        self.schema_version = schema.SCHEMA_VERSION
        if read_only:
            if not path.is_file():
                raise FileNotFoundError(f"store not found: {path} (give --store URL or set {STORE_ENV})")
            uri = "file:" + urllib.parse.quote(str(path.resolve())) + "?mode=ro"
            self._conn = sqlite3.connect(uri, uri=True, timeout=busy_timeout_s, isolation_level=None)
            self._conn.execute("PRAGMA query_only=ON")
            try:
                self._check_schema()
            except BaseException:
                self._conn.close()
                raise
        else:
            from pinnprov.store.sqlite_sink import connect_writer

            path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = connect_writer(path, busy_timeout_s=busy_timeout_s)

    def _check_schema(self) -> None:
        """Refuse a newer store (one line) or a file that is not a store; an older store is read as it is."""
        try:
            version = sqlite_version(self._conn)
        except sqlite3.DatabaseError as error:
            raise ValueError(f"{self.path} is not a pinnprov store ({error})") from None
        if version is None:
            raise ValueError(f"{self.path} is not a pinnprov store (no schema version)")
        refuse_newer(version)
        self.schema_version = version

    def execute(
        self, sql: str, params: Mapping[str, object] | None = None, *, user_sql: bool = False
    ) -> QueryResult:
        if user_sql:
            sql = check_read_only_sql(sql)
            self._conn.set_authorizer(_read_only_authorizer)
        try:
            cursor = self._conn.execute(sql, params or {})
            rows = cursor.fetchall()
        except sqlite3.DatabaseError as error:
            message = str(error)
            if user_sql and ("not authorized" in message or "readonly" in message):
                raise ReadOnlyViolation(f"the store is read-only here: {message}") from None
            if user_sql or isinstance(error, sqlite3.OperationalError):
                if self.schema_version < schema.SCHEMA_VERSION:
                    message += older_store_hint(self.schema_version)
                raise ValueError(f"SQL error: {message}") from None
            raise
        except sqlite3.Warning as error:  # e.g. "You can only execute one statement at a time."
            raise ValueError(f"SQL error: {error}") from None
        finally:
            if user_sql:
                self._conn.set_authorizer(None)
        columns = [item[0] for item in cursor.description or ()]
        return QueryResult(columns, rows)

    def executemany_write(self, sql: str, rows: Sequence[Mapping[str, object]]) -> int:
        """Run one write statement for each row in a single transaction; returns rows changed."""
        if self.read_only:
            raise ReadOnlyViolation("store opened read-only")
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            before = self._conn.total_changes
            self._conn.executemany(sql, rows)
            self._conn.execute("COMMIT")
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        return self._conn.total_changes - before

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> SqliteStore:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def open_store(url: str | None = None, *, read_only: bool = True) -> Store:
    """Open the store at `url` (None: $PINNPROV_STORE or the default). Returns a SqliteStore or MonetdbStore."""
    url = resolve_store_url(url)
    path = sqlite_path(url)
    if path is not None:
        return SqliteStore(url, path, read_only=read_only)
    if url.startswith("monetdb://"):
        from pinnprov.store.monetdb_store import MonetdbStore

        return MonetdbStore(url, read_only=read_only)
    scheme = url.split("://", 1)[0]
    raise ValueError(f"store URL {url!r}: unsupported scheme {scheme!r} (use sqlite:// or monetdb://)")


# --- steering commands (written by `pinnprov steer`, read and acknowledged by the trainer's poller) ---------


def insert_command(
    store: Store,
    *,
    command_id: str,
    run_id: str,
    kind: str,
    value: float | None = None,
    parameter: str = "",
    agent: str = "user",
    reason: str = "",
    created_at: float | None = None,
) -> bool:
    """Queue a command for a run as 'pending'; False if that command id already exists (idempotent)."""
    sql = (
        'INSERT INTO steering_command (command_id, run_id, created_at, kind, parameter, "value", agent, reason, '
        "state, acked_at, detail) SELECT :command_id, :run_id, :created_at, :kind, :parameter, :value, :agent, "
        ":reason, 'pending', NULL, '' WHERE NOT EXISTS "
        "(SELECT 1 FROM steering_command WHERE command_id = :command_id)"
    )
    row = {
        "command_id": command_id,
        "run_id": run_id,
        "created_at": time.time() if created_at is None else created_at,
        "kind": kind,
        "parameter": parameter,
        "value": value,
        "agent": agent,
        "reason": reason,
    }
    return store.executemany_write(sql, [row]) == 1


def pending_commands(store: Store, run_id: str) -> list[CommandRow]:
    """Commands for `run_id` still waiting, oldest first."""
    return list_commands(store, run_id, state="pending")


def list_commands(store: Store, run_id: str | None = None, *, state: str | None = None) -> list[CommandRow]:
    """Commands (optionally of one run and/or one state), oldest first."""
    where, params = [], {}
    if run_id is not None:
        where.append("run_id = :run_id")
        params["run_id"] = run_id
    if state is not None:
        where.append("state = :state")
        params["state"] = state
    sql = (
        'SELECT command_id, run_id, created_at, kind, parameter, "value", agent, reason, state, acked_at, detail '
        "FROM steering_command"
        + (" WHERE " + " AND ".join(where) if where else "")
        + " ORDER BY created_at, command_id"
    )
    result = store.execute(sql, params)
    return [
        CommandRow(r[0], r[1], r[2], r[3], r[4] or "", r[5], r[6] or "", r[7] or "", r[8], r[9], r[10] or "")
        for r in result.rows
    ]


def acknowledge_command(
    store: Store, command_id: str, *, applied: bool, detail: str = "", at: float | None = None
) -> bool:
    """Mark a pending command applied or refused; False if it was not pending (already acknowledged/unknown)."""
    sql = (
        "UPDATE steering_command SET state = :state, acked_at = :at, detail = :detail "
        "WHERE command_id = :command_id AND state = 'pending'"
    )
    row = {
        "state": "applied" if applied else "refused",
        "at": time.time() if at is None else at,
        "detail": detail,
        "command_id": command_id,
    }
    return store.executemany_write(sql, [row]) == 1
