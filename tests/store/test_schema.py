"""The schema definition and its DDL for SQLite and MonetDB (MonetDB live: tests/monetdb_server.py)."""

from __future__ import annotations

import re
import sqlite3

import pytest
from prov_builders import request_for, sample_run, write_store

from pinnprov.store.dialects import MONETDB, MONETDB_KEYWORDS, SQLITE, get_dialect
from pinnprov.store.migrations import upgrade_sqlite as apply_sqlite
from pinnprov.store.prov_views import VIEWS
from pinnprov.store.queries import QUERIES, QueryOptions
from pinnprov.store.schema import SCHEMA_VERSION, TABLES, TABLES_BY_NAME, ddl, ddl_script

PROV_CORE = {
    "agent",
    "activity",
    "entity",
    "used",
    "was_generated_by",
    "was_associated_with",
    "was_informed_by",
    "was_derived_from",
    "was_attributed_to",
}
DOMAIN = {
    "run",
    "run_hyperparameter",
    "epoch_metric",
    "epoch_extra",
    "adaptation",
    "alert",
    "steering_command",
    "schema_version",
}


def test_the_schema_has_every_required_relation() -> None:
    assert set(TABLES_BY_NAME) >= DOMAIN
    assert {view.name for view in VIEWS} == PROV_CORE
    epoch = TABLES_BY_NAME["epoch_metric"]
    assert epoch.primary_key == ("run_id", "epoch")
    assert [c.name for c in epoch.columns][:11] == [
        "run_id",
        "epoch",
        "span_id",
        "started_at",
        "ended_at",
        "elapsed_s",
        "loss",
        "loss_bc",
        "loss_residual",
        "loss_data",
        "learning_rate",
    ]
    assert TABLES_BY_NAME["run"].unique == (("run_name",),)
    assert {c.name for c in TABLES_BY_NAME["steering_command"].columns} >= {"command_id", "state", "acked_at"}
    # one time representation everywhere: Unix seconds
    times = [c for t in TABLES for c in t.columns if c.name.endswith("_at") or c.name == "at"]
    assert times and all(c.type == "time" for c in times)
    # never call the residual loss "lr"
    assert not any(c.name == "lr" for t in TABLES for c in t.columns)


def test_sqlite_ddl_applies_idempotently(tmp_path) -> None:
    conn = sqlite3.connect(tmp_path / "x.db", isolation_level=None)
    apply_sqlite(conn)
    apply_sqlite(conn)
    names = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type IN ('table', 'view')")}
    assert names >= DOMAIN | PROV_CORE
    assert conn.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]
    # every generated statement also runs on a fresh database as a script
    fresh = sqlite3.connect(":memory:")
    fresh.executescript(ddl_script("sqlite"))
    assert fresh.execute("SELECT COUNT(*) FROM entity").fetchone() == (0,)


def test_sqlite_tables_are_strict() -> None:
    conn = sqlite3.connect(":memory:", isolation_level=None)
    apply_sqlite(conn)
    with pytest.raises(sqlite3.IntegrityError):
        conn.execute("INSERT INTO epoch_metric (run_id, \"epoch\", loss) VALUES ('r', 0, 'high')")


def _strip_literals(sql: str) -> str:
    return re.sub(r"'(?:[^']|'')*'", "''", sql)


def _bare_keywords(sql: str) -> set[str]:
    """Identifiers of our schema that MonetDB has as keywords and that appear unquoted in `sql`."""
    names = {c.name for t in TABLES for c in t.columns} | {t.name for t in TABLES}
    names |= {column for view in VIEWS for column in view.columns}
    risky = {name for name in names if name.upper() in MONETDB_KEYWORDS}
    found = set()
    for name in risky:
        if re.search(rf'(?<!["\w.]){name}(?!["\w])', _strip_literals(sql), re.IGNORECASE):
            found.add(name)
    return found


def test_monetdb_ddl_quotes_keywords_and_uses_monetdb_types() -> None:
    statements = ddl("monetdb")
    script = "\n".join(statements)
    assert {"EPOCH", "NAME", "VALUE", "SEED"} <= MONETDB_KEYWORDS
    assert _bare_keywords("SELECT epoch, \"name\", 'value' FROM run") == {"epoch"}  # the detector works
    for statement in statements:
        assert _bare_keywords(re.sub(r"^CREATE (OR REPLACE VIEW|TABLE|INDEX) \S+", "", statement)) == set(), statement
    assert '"epoch" INTEGER NOT NULL' in script and "run_id VARCHAR(64) NOT NULL" in script
    assert "loss DOUBLE" in script and "error CLOB" in script and "process_pid BIGINT" in script
    assert "REAL" not in script and "TEXT" not in script and "STRICT" not in script
    assert "IF NOT EXISTS" not in script  # MonetDB: the catalog is checked instead
    assert script.count("CREATE OR REPLACE VIEW") == len(VIEWS)


def test_portable_queries_quote_monetdb_keywords() -> None:
    for view in VIEWS:
        assert _bare_keywords(view.select) == set(), view.name
    options = QueryOptions(run_id="r", every=10, last=5, from_epoch=1, to_epoch=9, experiment="e", status="s", limit=3)
    for name in QUERIES:
        sql, _ = QUERIES.get(name).build(options)
        assert _bare_keywords(sql) == set(), name


def test_parameter_style_translation() -> None:
    sql = "SELECT * FROM t WHERE a = :run_id AND \"epoch\" % :every = 0 AND b LIKE 'x:y%'"
    assert SQLITE.sql(sql) == sql
    assert MONETDB.sql(sql) == "SELECT * FROM t WHERE a = %(run_id)s AND \"epoch\" %% %(every)s = 0 AND b LIKE 'x:y%%'"
    with pytest.raises(ValueError, match="unknown SQL dialect"):
        get_dialect("oracle")


def test_views_describe_the_provenance_of_a_run(tmp_path) -> None:
    db = tmp_path / "v.db"
    write_store(db, request_for(sample_run(1, epochs=3)))
    conn = sqlite3.connect(db)

    def rows(sql: str) -> list:
        return sorted(conn.execute(sql).fetchall())

    rid = sample_run(1).run_id
    assert rows("SELECT entity_id FROM was_generated_by") == [(f"epoch/{rid}/{e}",) for e in range(3)]
    assert ("agent/user:alice", "prov:Person", "user:alice") in rows("SELECT * FROM agent")
    assert rows("SELECT prov_role, COUNT(*) FROM used GROUP BY prov_role") == [("data", 1), ("hyperparameter", 10)]
    (adaptation_id,) = conn.execute("SELECT adaptation_id FROM adaptation").fetchone()
    assert rows("SELECT * FROM was_informed_by") == [(f"adaptation/{adaptation_id}", f"run/{rid}", rid)]
    assert (f"adaptation/{adaptation_id}", "agent/user:alice", rid, "decider") in rows(
        "SELECT * FROM was_associated_with"
    )


@pytest.mark.live
def test_monetdb_schema_and_queries_live(monetdb_url: str) -> None:
    from pinnprov.store.access import insert_command, open_store, pending_commands
    from pinnprov.store.queries import run_query

    url = monetdb_url
    with open_store(url, read_only=False) as store:  # creates the schema (idempotent)
        pass
    with open_store(url, read_only=False) as store:
        insert_command(store, command_id="live-test", run_id="0" * 32, kind="stop")
        assert any(c.command_id == "live-test" for c in pending_commands(store, "0" * 32))
        for name in QUERIES:
            run_query(store, name, QueryOptions(run_id="0" * 32, every=2, last=3))
        for view in VIEWS:
            store.execute(f"SELECT COUNT(*) FROM {view.name}")
