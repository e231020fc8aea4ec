"""What every store shares, whatever the database: result types, the Store protocol, the read-only SQL check.

Both store implementations (pinnprov/store/access.py: SqliteStore; pinnprov/store/monetdb_store.py: MonetdbStore)
import these from here, so neither imports the other; `pinnprov.store.access` re-exports the names for callers.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, Self

from pinnprov.store.dialects import Dialect


@dataclass(frozen=True)
class QueryResult:
    columns: list[str]
    rows: list[tuple[Any, ...]]


@dataclass(frozen=True)
class CommandRow:
    """One row of `steering_command`."""

    command_id: str
    run_id: str
    created_at: float
    kind: str
    parameter: str
    value: float | None
    agent: str
    reason: str
    state: str
    acked_at: float | None
    detail: str


class ReadOnlyViolation(ValueError):
    """User SQL tried to change the store."""


class Store(Protocol):
    """What callers may use of an opened store, whatever the database (SqliteStore, MonetdbStore).

    SQL is portable (pinnprov.store.dialects): `:name` parameters, double-quoted keywords. A store is a context
    manager that closes itself. The attributes are read-only properties here so that a plain attribute, a class
    attribute or a property all satisfy the Protocol.
    """

    @property
    def url(self) -> str:
        """The store's URL, credentials redacted (safe to print)."""

    @property
    def dialect(self) -> Dialect: ...

    @property
    def read_only(self) -> bool: ...

    def execute(
        self, sql: str, params: Mapping[str, object] | None = None, *, user_sql: bool = False
    ) -> QueryResult:
        """Run one statement and fetch its rows; `user_sql` checks (and the database enforces) read-only."""

    def executemany_write(self, sql: str, rows: Sequence[Mapping[str, object]]) -> int:
        """Run one write statement per row in one transaction; the number of rows changed."""

    def close(self) -> None: ...

    def __enter__(self) -> Self: ...

    def __exit__(self, *_: object) -> None: ...


_READ_KEYWORDS = ("SELECT", "WITH", "VALUES", "EXPLAIN")
_COMMENT = re.compile(r"(--[^\n]*|/\*.*?\*/)", re.DOTALL)


def check_read_only_sql(sql: str) -> str:
    """The statement without trailing semicolons if it looks like one read-only query; else ReadOnlyViolation.

    Friendly first line of defence with a clear message; the databases enforce it anyway.
    """
    text = _COMMENT.sub(" ", sql).strip().rstrip(";").strip()
    if not text:
        raise ValueError("empty SQL")
    first = text.split(None, 1)[0].upper()
    if first not in _READ_KEYWORDS:
        raise ReadOnlyViolation(
            f"the store is read-only here: only SELECT/WITH/VALUES/EXPLAIN queries run (got {first})"
        )
    return text
