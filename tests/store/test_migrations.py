"""Schema migrations (pinnprov/store/migrations.py) on real SQLite files and the real MonetDB (tests/support/
monetdb_server.py gives each test a schema of its own).

Every earlier schema version is kept as the exact DDL its release generated (tests/store/fixtures/schema_v<N>_<dialect>
.sql, made once from git history; the header of each file names its commit). A store built from that DDL, with rows
in every table, is opened by the current code as a writer: it must reach the current version, keep every row, and
take new writes. A column added to the schema must reach an existing store through ALTER TABLE in both dialects.
When you bump SCHEMA_VERSION, add the fixtures of the new version: `python tests/store/fixtures/make_fixture.py`.
"""

from __future__ import annotations

import re
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from prov_builders import request_for, sample_run

from pinnprov.collector.translate import translate_traces
from pinnprov.store import migrations, schema
from pinnprov.store.access import open_store
from pinnprov.store.prov_views import VIEWS
from pinnprov.store.schema import SCHEMA_VERSION, Column, Index, SchemaVersionError, Table, create_table_sql

FIXTURES = Path(__file__).parent / "fixtures"
EARLIER = list(range(1, SCHEMA_VERSION + 1))
NEWER_MESSAGE = f"store schema version 99 is newer than this pinnprov supports ({SCHEMA_VERSION}); upgrade pinnprov"


def fixture_sql(version: int, dialect: str) -> str:
    path = FIXTURES / f"schema_v{version}_{dialect}.sql"
    assert path.exists(), f"missing {path}: run python tests/store/fixtures/make_fixture.py after a version bump"
    return path.read_text()


def statements(script: str) -> list[str]:
    """The statements of a fixture file (no statement of ours has a ';' at the end of an inner line)."""
    text = "\n".join(line for line in script.splitlines() if not line.startswith("--"))
    return [part.strip() for part in re.split(r";\s*\n", text) if part.strip()]


# --- one interface over both databases, for the tests -----------------------------------------------------------


class Db:
    """A test's view of one store: raw SQL, the catalog, generic rows."""

    dialect: str
    url: str

    def run(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        raise NotImplementedError

    def columns(self, table: str) -> dict[str, tuple[str, int]]:
        """column -> (logical kind: text | int | real, max length or 0)."""
        raise NotImplementedError

    def catalog(self) -> migrations.Catalog:
        raise NotImplementedError

    def placeholder(self) -> str:
        return "?" if self.dialect == "sqlite" else "%s"

    def script(self, sql: str) -> None:
        for statement in statements(sql):
            self.run(statement)

    def version(self) -> int:
        return int(self.run("SELECT MAX(version) FROM schema_version")[0][0])

    def insert(self, table: str, rows: list[dict[str, Any]]) -> None:
        names = list(rows[0])
        marks = ", ".join(self.placeholder() for _ in names)
        sql = f'INSERT INTO "{table}" ({", ".join(f"{chr(34)}{n}{chr(34)}" for n in names)}) VALUES ({marks})'
        for row in rows:
            self.run(sql, tuple(row.values()))

    def select(self, table: str, names: list[str]) -> set[tuple[Any, ...]]:
        return set(self.run(f'SELECT {", ".join(f"{chr(34)}{n}{chr(34)}" for n in names)} FROM "{table}"'))


class SqliteDb(Db):
    dialect = "sqlite"

    def __init__(self, path: Path) -> None:
        self.path = path
        self.url = str(path)

    def run(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        conn = sqlite3.connect(self.path, isolation_level=None)
        try:
            return conn.execute(sql, params).fetchall()
        finally:
            conn.close()

    def script(self, sql: str) -> None:
        conn = sqlite3.connect(self.path, isolation_level=None)
        try:
            conn.executescript(sql)
        finally:
            conn.close()

    def columns(self, table: str) -> dict[str, tuple[str, int]]:
        def kind(declared: str) -> str:  # SQLite's type affinity rules, for the alert engine's own old tables too
            declared = declared.upper()
            return "int" if "INT" in declared else "text" if re.search("CHAR|CLOB|TEXT", declared) else "real"

        return {row[1]: (kind(row[2]), 0) for row in self.run(f'PRAGMA table_info("{table}")')}

    def catalog(self) -> migrations.Catalog:
        conn = sqlite3.connect(self.path)
        try:
            return migrations.sqlite_catalog(conn)
        finally:
            conn.close()


class MonetDb(Db):
    dialect = "monetdb"

    def __init__(self, url: str) -> None:
        self.url = url

    def _connect(self) -> Any:
        import pymonetdb

        from pinnprov.store.monetdb_store import parse_monetdb_url

        return pymonetdb.connect(autocommit=True, **parse_monetdb_url(self.url))

    def run(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        conn = self._connect()
        try:
            cursor = conn.cursor()
            cursor.execute(sql, params or None)
            return [tuple(row) for row in cursor.fetchall()] if cursor.description else []
        finally:
            conn.close()

    def columns(self, table: str) -> dict[str, tuple[str, int]]:
        kinds = {"varchar": "text", "clob": "text", "int": "int", "bigint": "int", "double": "real"}
        rows = self.run(
            "SELECT c.name, c.type, c.type_digits FROM sys.columns c JOIN sys.tables t ON c.table_id = t.id "
            "JOIN sys.schemas s ON t.schema_id = s.id WHERE s.name = CURRENT_SCHEMA AND t.name = %s",
            (table,),
        )
        return {name: (kinds[kind], int(digits) if kind == "varchar" else 0) for name, kind, digits in rows}

    def catalog(self) -> migrations.Catalog:
        conn = self._connect()
        try:
            return migrations.monetdb_catalog(conn.cursor())
        finally:
            conn.close()


@pytest.fixture(params=["sqlite", "monetdb"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Db]:
    if request.param == "sqlite":
        yield SqliteDb(tmp_path / "store.db")
    else:
        yield MonetDb(request.getfixturevalue("monetdb_url"))


def generic_rows(db: Db, table: str, n: int = 3) -> list[dict[str, Any]]:
    """`n` rows with a distinct value in every column (strings fit the column, keys are unique)."""
    rows = []
    for i in range(n):
        row: dict[str, Any] = {}
        for name, (kind, length) in db.columns(table).items():
            if kind == "text":
                value: Any = f"{i}{name}"[: length or None]
            elif kind == "int":
                value = 10 * i + 1
            else:
                value = 10 * i + 0.25
            row[name] = value
        rows.append(row)
    return rows


def fill(db: Db) -> dict[str, list[dict[str, Any]]]:
    """Rows in every table of the store's version (schema_version aside); returns them by table."""
    written = {}
    for name in db.catalog().tables:
        if name == "schema_version":
            continue
        rows = generic_rows(db, name)
        db.insert(name, rows)
        written[name] = rows
    return written


def assert_kept(db: Db, written: dict[str, list[dict[str, Any]]]) -> None:
    """Every row written is still there, value for value (rows written since may be there too)."""
    for table, rows in written.items():
        names = list(rows[0])
        assert db.select(table, names) >= {tuple(row.values()) for row in rows}, table


def assert_current_catalog(db: Db) -> None:
    """Every table, column, index and view of the current schema is in the store."""
    catalog = db.catalog()
    for table in schema.TABLES:
        assert table.name in catalog.tables, table.name
        assert catalog.tables[table.name] >= {column.name for column in table.columns}, table.name
        assert {index.name for index in table.indexes} <= catalog.indexes
    assert catalog.views >= {view.name for view in VIEWS}
    for view in VIEWS:
        db.run(f'SELECT COUNT(*) FROM "{view.name}"')


def write_new_run(db: Db, n: int = 7) -> None:
    """A real write through the collector's sink for `db`'s dialect, then read back."""
    records = translate_traces(request_for(sample_run(n, epochs=3))).records
    if db.dialect == "sqlite":
        from pinnprov.store.sqlite_sink import SqliteSink

        sink: Any = SqliteSink(Path(db.url))
    else:
        from pinnprov.store.monetdb_sink import MonetdbSink

        sink = MonetdbSink(db.url)
    try:
        assert sink.export(records).ok
    finally:
        sink.shutdown()
    assert db.run(f"SELECT run_name, last_epoch FROM run WHERE run_id = '{n:032x}'") == [(f"run-{n:03d}", 2)]


# --- the steps as data ----------------------------------------------------------------------------------------


def test_one_step_per_version_in_order() -> None:
    steps = migrations.steps()
    assert [step.version for step in steps] == list(range(2, SCHEMA_VERSION + 1))
    by_version = {step.version: step for step in steps}
    assert by_version[2].create_tables == ("alert_engine_run", "alert_engine_fired")
    assert by_version[3].create_tables == ("run_relation",)
    assert by_version[4].create_tables == () and by_version[4].add_columns == () and by_version[4].rebuild_views
    assert all(step.note for step in steps)


@pytest.mark.parametrize("version", EARLIER)
def test_the_schema_as_of_each_version_is_that_release_s_ddl(version: int) -> None:
    """The `since` marks describe history: the schema at version N has exactly the tables and columns (names, types,
    NOT NULL, keys) that version N's release created. At the current version this also catches a schema change
    made without a version bump."""

    def shape(conn: sqlite3.Connection) -> dict[str, list[tuple[Any, ...]]]:
        names = [row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY 1")]
        return {name: sorted(conn.execute(f'PRAGMA table_info("{name}")').fetchall()) for name in names}

    released = sqlite3.connect(":memory:")
    released.executescript(fixture_sql(version, "sqlite"))
    derived = sqlite3.connect(":memory:")
    for table in schema.tables_at(version):
        derived.execute(create_table_sql(table, schema.get_dialect("sqlite")))
    assert shape(derived) == shape(released), (
        f"the schema as of version {version} differs from that release's DDL: a table or column changed without a "
        "version bump, or a `since` mark (FIELD_COLUMNS_SINCE for the columns of core/fields.py) is wrong"
    )


def test_a_column_added_later_must_be_nullable(monkeypatch: pytest.MonkeyPatch) -> None:
    run = schema.TABLES_BY_NAME["run"]
    bad = replace(run, columns=(*run.columns, Column("x", "double", nullable=False, since=SCHEMA_VERSION + 1)))
    monkeypatch.setattr(schema, "TABLES", tuple(bad if t.name == "run" else t for t in schema.TABLES))
    monkeypatch.setattr(schema, "SCHEMA_VERSIONS", {**schema.SCHEMA_VERSIONS, SCHEMA_VERSION + 1: "x"})
    monkeypatch.setattr(schema, "SCHEMA_VERSION", SCHEMA_VERSION + 1)
    with pytest.raises(ValueError, match="must be nullable"):
        migrations.steps()


# --- upgrades from every earlier version, both dialects ------------------------------------------------------


@pytest.mark.parametrize("version", EARLIER)
def test_a_store_of_each_earlier_version_upgrades_and_keeps_every_row(db: Db, version: int) -> None:
    db.script(fixture_sql(version, db.dialect))
    assert db.version() == version
    written = fill(db)
    assert set(written) == {t.name for t in schema.tables_at(version)} - {"schema_version"}

    with open_store(db.url, read_only=False):  # the first writer upgrades
        pass

    assert db.version() == SCHEMA_VERSION
    assert sorted(row[0] for row in db.run("SELECT version FROM schema_version")) == EARLIER[version - 1 :]
    assert_kept(db, written)
    assert_current_catalog(db)
    # the views are the current ones (version 3's first release cast the epoch's loss into the entity's value)
    epochs = db.run("SELECT value FROM entity WHERE prov_type = 'pinnprov:EpochMetrics'")
    assert epochs and {row[0] for row in epochs} == {""}
    write_new_run(db)
    with open_store(db.url, read_only=False):  # the next writer finds nothing to do
        pass
    assert sorted(row[0] for row in db.run("SELECT version FROM schema_version")) == EARLIER[version - 1 :]
    assert_kept(db, written)


def test_the_alert_engine_s_own_tables_of_version_1_are_kept(db: Db) -> None:
    """Before version 2 the alert engine created its two tables itself (other types); step 2 must keep them."""
    db.script(fixture_sql(1, db.dialect))
    db.run("CREATE TABLE alert_engine_run (run_id VARCHAR(64) NOT NULL PRIMARY KEY, last_epoch BIGINT NOT NULL, "
           "states TEXT NOT NULL)")
    db.run('CREATE TABLE alert_engine_fired (alert_id VARCHAR(64) NOT NULL PRIMARY KEY, run_id VARCHAR(64) NOT NULL, '
           '"epoch" BIGINT NOT NULL, record TEXT NOT NULL)')
    written = fill(db)
    open_store(db.url, read_only=False).close()
    assert db.version() == SCHEMA_VERSION
    assert_kept(db, written)
    assert_current_catalog(db)


# --- a column added to the schema ----------------------------------------------------------------------------


def add_to_schema(monkeypatch: pytest.MonkeyPatch) -> int:
    """Version N+1 of the schema: a column in `epoch_metric` (clustered in SQLite) and `run`, an index on an old
    table, and a new table with an index. Returns N+1."""
    new = SCHEMA_VERSION + 1
    extra = {
        "epoch_metric": (Column("grad_norm", "double", doc="test", since=new),),
        "run": (Column("scheduler_host", "string", 128, since=new),),
    }
    tables = [
        replace(
            table,
            columns=table.columns + extra.get(table.name, ()),
            indexes=table.indexes + ((Index("run_scheduler_idx", ("scheduler_host",), since=new),)
                                     if table.name == "run" else ()),
        )
        for table in schema.TABLES
    ]
    tables.append(Table("run_note", (Column("run_id", "string", 64, False), Column("note", "clob")), ("run_id",),
                        indexes=(Index("run_note_idx", ("note",)),), since=new))
    monkeypatch.setattr(schema, "TABLES", tuple(tables))
    monkeypatch.setattr(schema, "TABLES_BY_NAME", {table.name: table for table in tables})
    monkeypatch.setattr(schema, "SCHEMA_VERSIONS", {**schema.SCHEMA_VERSIONS, new: "test: grad_norm, scheduler_host"})
    monkeypatch.setattr(schema, "SCHEMA_VERSION", new)
    return new


def test_a_column_added_to_the_schema_reaches_an_existing_store(db: Db, monkeypatch: pytest.MonkeyPatch) -> None:
    open_store(db.url, read_only=False).close()
    write_new_run(db)
    written = fill(db)
    before = {
        table: db.select(table, list(db.columns(table))) for table in db.catalog().tables if table != "schema_version"
    }

    new = add_to_schema(monkeypatch)
    step = migrations.steps()[-1]
    assert (step.version, step.add_columns, step.create_tables) == (
        new, (("run", "scheduler_host"), ("epoch_metric", "grad_norm")), ("run_note",))
    assert step.create_indexes == (("run", "run_scheduler_idx"),)
    open_store(db.url, read_only=False).close()

    assert db.version() == new
    assert_current_catalog(db)
    assert db.columns("epoch_metric")["grad_norm"][0] == "real"
    assert db.columns("run")["scheduler_host"] == ("text", 128 if db.dialect == "monetdb" else 0)
    assert_kept(db, written)
    for table, rows in before.items():  # the old rows, with NULL in the new columns
        old = list(db.columns(table))[: len(next(iter(rows))) if rows else 0]
        assert db.select(table, old) == rows, table
    assert {row[0] for row in db.run("SELECT grad_norm FROM epoch_metric")} == {None}
    with open_store(db.url, read_only=False) as store:
        changed = store.executemany_write(
            "UPDATE epoch_metric SET grad_norm = :g WHERE run_id = :r", [{"g": 0.5, "r": f"{7:032x}"}])
        store.executemany_write("INSERT INTO run_note (run_id, note) VALUES (:r, :n)", [{"r": "x", "n": "hello"}])
    assert changed == 3
    assert db.run("SELECT note FROM run_note") == [("hello",)]


# --- who migrates: one writer; readers never -------------------------------------------------------------------


def test_concurrent_writers_upgrade_once(db: Db) -> None:
    db.script(fixture_sql(1, db.dialect))
    written = fill(db)
    barrier = threading.Barrier(3)
    errors: list[BaseException] = []

    def writer() -> None:
        try:
            barrier.wait()
            open_store(db.url, read_only=False).close()
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=writer) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors
    assert sorted(row[0] for row in db.run("SELECT version FROM schema_version")) == EARLIER
    assert_kept(db, written)
    assert_current_catalog(db)


def test_a_reader_never_migrates_and_says_why_a_newer_table_is_missing(db: Db) -> None:
    db.script(fixture_sql(1, db.dialect))
    written = fill(db)
    with open_store(db.url) as store:
        assert store.execute("SELECT COUNT(*) FROM run").rows == [(3,)]
        with pytest.raises(ValueError, match=f"schema version 1, this pinnprov's is {SCHEMA_VERSION}: open it once"):
            store.execute("SELECT COUNT(*) FROM run_relation")
    assert db.version() == 1
    assert "run_relation" not in db.catalog().tables
    assert_kept(db, written)


# --- a newer store is refused in one line ------------------------------------------------------------------------


def test_a_newer_store_is_refused_with_one_line(db: Db) -> None:
    open_store(db.url, read_only=False).close()
    db.run("INSERT INTO schema_version (version, applied_at) VALUES (99, 0)")
    for read_only in (False, True):
        with pytest.raises(SchemaVersionError) as refused:
            open_store(db.url, read_only=read_only)
        assert str(refused.value) == NEWER_MESSAGE
    if db.dialect == "sqlite":
        from pinnprov.store.sqlite_sink import SqliteSink

        with pytest.raises(SchemaVersionError, match="newer"):
            SqliteSink(Path(db.url))


def test_the_cli_refuses_a_newer_store_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "x.db"
    open_store(str(path), read_only=False).close()
    conn = sqlite3.connect(path)
    conn.execute("INSERT INTO schema_version (version, applied_at) VALUES (99, 0)")
    conn.commit()
    conn.close()
    done = subprocess.run([sys.executable, "-m", "pinnprov", "query", "latest", "--store", f"sqlite:///{path}"],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode != 0
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("pinnprov query: ") and lines[0].endswith(NEWER_MESSAGE), lines
