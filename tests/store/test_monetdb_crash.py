"""The statement pattern that kills MonetDB 11.45.17 (Sep2022-SP3), kept as a minimal reproducer on a server of
the test's own, and the control that shows what the trigger is.

What crashes (SIGSEGV in the relational optimizer, while the statement is compiled; the old sink's replay hit it
with its second MERGE INTO run): in one transaction, a join-driven UPDATE (UPDATE ... FROM, or MERGE ... WHEN
MATCHED UPDATE) changes a VARCHAR column of a table whose strings were bulk loaded (COPY, or INSERT ... SELECT
from a COPY-loaded table), and a later statement of the same transaction reads that column. A COMMIT in
between, an INT column, a constant or correlated-subquery UPDATE, or rows from INSERT ... VALUES: no crash.
The sink therefore writes every table with one statement per transaction and reads nothing after it
(pinnprov/store/monetdb_copy.py; tests/test_monetdb_sink.py checks its plans, tests/test_monetdb_replay.py runs
random replays against the live server).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pymonetdb
import pytest
from monetdb_server import MonetdbServer

from pinnprov.store.monetdb_store import parse_monetdb_url

KNOWN_AFFECTED = {"11.45.17"}
"""MonetDB releases on which the reproducer was seen to kill the server (the bundled Sep2022-SP3)."""

SETUP = (
    "CREATE TABLE t (k VARCHAR(64), st VARCHAR(16))",
    "CREATE TABLE s (k VARCHAR(64), st VARCHAR(16))",
    "COPY 2 RECORDS INTO t FROM STDIN USING DELIMITERS ',', E'\\n', '\"';\n\"1\",\"running\"\n\"2\",\"running\"\n",
    "INSERT INTO s VALUES ('1', 'done'), ('2', 'done')",
)
REPRODUCER = (*SETUP, "START TRANSACTION", "UPDATE t SET st = s.st FROM s WHERE t.k = s.k", "SELECT st FROM t")
CONTROL = (*SETUP, "START TRANSACTION", "UPDATE t SET st = s.st FROM s WHERE t.k = s.k", "COMMIT",
           "SELECT st FROM t")


def _connect(server: MonetdbServer) -> pymonetdb.Connection:
    return pymonetdb.connect(autocommit=True, connect_timeout=30, **parse_monetdb_url(server.url))


def _version(server: MonetdbServer) -> str:
    conn = _connect(server)
    try:
        cursor = conn.cursor()
        cursor.execute("SELECT value FROM sys.environment WHERE name = 'monet_version'")
        return str(cursor.fetchone()[0])
    finally:
        conn.close()


def _run(server: MonetdbServer, statements: tuple[str, ...]) -> list[tuple[str, ...]]:
    """The last statement's rows; raises what pymonetdb raises when the server dies under it."""
    conn = _connect(server)
    try:
        cursor = conn.cursor()
        for statement in statements:
            cursor.execute(statement)
        return [tuple(row) for row in cursor.fetchall()]
    finally:
        conn.close()


def test_a_read_after_a_join_update_in_the_same_transaction_kills_11_45(
        monetdb_launch: Callable[[], MonetdbServer]) -> None:
    server = monetdb_launch()
    version = _version(server)
    try:
        rows = _run(server, REPRODUCER)
    except (OSError, pymonetdb.Error) as error:  # BrokenPipeError: "Server closed connection"
        assert "closed" in str(error).lower() or isinstance(error, OSError), error
        deadline = time.monotonic() + 30  # it takes a second or two to go down
        while server.alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not server.alive()
        with pytest.raises(OSError):  # nothing listens any more: a collector retrying this would find no server
            _connect(server)
        assert version in KNOWN_AFFECTED, f"MonetDB {version} is affected too: add it to KNOWN_AFFECTED"
        return
    assert sorted(rows) == [("done",), ("done",)]  # a fixed release answers correctly
    assert version not in KNOWN_AFFECTED, f"MonetDB {version} survived the reproducer: update KNOWN_AFFECTED"


def test_the_same_statements_with_a_commit_before_the_read_are_fine(
        monetdb_launch: Callable[[], MonetdbServer]) -> None:
    server = monetdb_launch()
    assert sorted(_run(server, CONTROL)) == [("done",), ("done",)]
    assert server.alive() and _version(server)
