"""The PROV store schema, defined once as data; DDL for SQLite and MonetDB is generated from it.

Domain tables (run, epoch_metric, adaptation, alert, ...) hold the facts, keyed by telemetry ids so
writes are idempotent. The promoted hyperparameter columns of `run` and the measured columns of `epoch_metric`
come from the one schema of fields (pinnprov/core/fields.py). The W3C PROV core relations (agent, activity, entity,
used, was_generated_by, ...) are *views* derived from them (pinnprov/store/prov_views.py): they can never disagree
with the facts and cost nothing on the hot path (10M epochs do not become 30M rows).

Time: every time column is Unix seconds (UTC) as a DOUBLE. One representation in both dialects, exact
for sub-millisecond epoch timing, cheap to subtract ("elapsed" is `ended_at - started_at`), and rendered
as ISO-8601 by the CLI (pinnprov/store/output.py). Non-finite measurements are stored as NULL and named in
`epoch_metric.nonfinite` (SQL has no portable NaN; SQLite itself turns NaN into NULL).

`run` also keeps two summaries the writer maintains in the same transaction as the epochs: `last_epoch`
(Table 2 joins on it instead of scanning for MAX per run) and `lr_min` (Table 3's lowest learning rate).

Versions: every table, column and index says `since` which schema version it exists; SCHEMA_VERSIONS says what
each version changed. pinnprov/store/migrations.py derives one upgrade step per version from that (tables to
create, columns to add, views to rebuild) and applies them to older stores. To change the schema: add the column
(nullable, `since=N+1`; a column derived from core/fields.py: in FIELD_COLUMNS_SINCE) or table (`since=N+1`), add
version N+1 to SCHEMA_VERSIONS, and write the new version's
DDL fixtures (`python tests/store/fixtures/make_fixture.py`). A change of a PROV view is a version too (an entry in
SCHEMA_VERSIONS and no table change): stores rebuild their views only when their version changes.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from pinnprov.core.fields import MEASURED_EPOCH_FIELDS, PROMOTED_HYPERPARAMETERS, SQL_TYPES, Hyperparameter
from pinnprov.store.dialects import Dialect, get_dialect

SCHEMA_VERSIONS: dict[int, str] = {
    1: "the PROV tables and views (first release)",
    2: "+ tables alert_engine_run, alert_engine_fired (the alert engine's memory, before that its own DDL)",
    3: "+ table run_relation (a sweep's retry of a failed run, PROV wasInformedBy)",
    4: "views know ensembles (relation member_of: wasInformedBy(ensemble, member), the ensemble's run typed "
    "pinnprov:Ensemble); no table change",
    5: "+ tables metric_resource, metric_point (OTLP metrics: gauges, sums, histograms, exponential histograms)",
}
"""What each schema version changed. An older store is upgraded step by step on its first write
(pinnprov/store/migrations.py); a store newer than this code is refused."""

SCHEMA_VERSION = max(SCHEMA_VERSIONS)

FIELD_COLUMNS_SINCE: dict[str, int] = {}
"""Columns derived from pinnprov/core/fields.py (promoted hyperparameters of `run`, measured fields of
`epoch_metric`) that a later schema version added: column name -> that version (absent: version 1). A new field
there is a new column here: give it its version in this map (tests/store/test_migrations.py fails until then)."""


@dataclass(frozen=True)
class Column:
    name: str
    type: str  # logical: string | clob | integer | bigint | double | time
    length: int = 0  # for string
    nullable: bool = True
    doc: str = ""
    since: int = 1  # the schema version that added it (a column added later must be nullable)


@dataclass(frozen=True)
class Index:
    name: str
    columns: tuple[str, ...]
    since: int = 1


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...]
    unique: tuple[tuple[str, ...], ...] = ()
    indexes: tuple[Index, ...] = ()
    clustered: bool = False  # SQLite: WITHOUT ROWID, rows stored in primary-key order (range scans per run)
    doc: str = ""
    since: int = 1  # the schema version that added it

    def column(self, name: str) -> Column:
        return next(column for column in self.columns if column.name == name)

    def at(self, version: int) -> Table:
        """This table as schema version `version` had it (its columns and indexes of that version)."""
        return Table(
            self.name,
            tuple(column for column in self.columns if column.since <= version),
            self.primary_key,
            self.unique,
            tuple(index for index in self.indexes if index.since <= version),
            self.clustered,
            self.doc,
            self.since,
        )


def _id(name: str, doc: str = "", nullable: bool = True) -> Column:
    return Column(name, "string", 64, nullable, doc)


def _name(name: str, doc: str = "") -> Column:
    return Column(name, "string", 256, True, doc)


def _num(name: str, doc: str = "") -> Column:
    return Column(name, "double", doc=doc)


def _time(name: str, doc: str = "") -> Column:
    return Column(name, "time", doc=doc)


def _text(name: str, doc: str = "") -> Column:
    return Column(name, "clob", doc=doc)


def _int(name: str, doc: str = "", nullable: bool = True) -> Column:
    return Column(name, "integer", nullable=nullable, doc=doc)


def _big(name: str, doc: str = "") -> Column:
    return Column(name, "bigint", doc=doc)


def _promoted(hp: Hyperparameter) -> Column:
    """A hyperparameter's typed `run` column (names get the name length, numbers their SQL type)."""
    kind = SQL_TYPES[hp.kind]
    length = 256 if kind == "string" else 0
    return Column(hp.column, kind, length, doc=hp.doc, since=FIELD_COLUMNS_SINCE.get(hp.column, 1))


RUN_ID = _id("run_id", "trace id, 32 hex digits", nullable=False)

METRIC_TABLES: tuple[Table, ...] = (
    Table(
        "metric_resource",
        (
            _id("resource_id", "hash of the resource's attributes", nullable=False),
            _id("run_id", "the run of the resource (pinn.run.id), NULL if it names none"),
            _name("service"),
            _name("host"),
            _text("attributes", "every resource attribute (JSON object)"),
            _time("first_seen"),
        ),
        ("resource_id",),
        doc="The OpenTelemetry resources metric points came from (a process; a run's trainer).",
        since=5,
    ),
    Table(
        "metric_point",
        (
            Column("point_id", "string", 64, False, "hash of resource, metric, kind, attributes and time"),
            _id("resource_id", "metric_resource of the point", nullable=False),
            _id("run_id", "pinn.run.id of the point or of its resource; NULL: kept under its resource"),
            Column("name", "string", 256, False),
            Column("unit", "string", 64),
            Column("kind", "string", 32, doc="gauge | sum | histogram | exponential_histogram"),
            Column("temporality", "string", 16, doc="delta | cumulative (sums, histograms); NULL for gauges"),
            _int("monotonic", "sums: 1 monotonic, 0 not"),
            _name("scope", "instrumentation scope name"),
            _time("started_at", "start of the point's interval (start_time_unix_nano)"),
            _time("at", "time of the point (time_unix_nano)"),
            _text("attributes", "the point's attributes (JSON object)"),
            _num("value", "gauge and sum points"),
            _big("hist_count", "histograms: number of values"),
            _num("hist_sum"),
            _num("hist_min"),
            _num("hist_max"),
            _text("bounds", "histogram: explicit bucket bounds (JSON list)"),
            _text("bucket_counts", "histogram: counts per bucket (JSON list, one more than bounds)"),
            _int("scale", "exponential histogram: scale"),
            _big("zero_count"),
            _int("positive_offset"),
            _text("positive_counts", "JSON list"),
            _int("negative_offset"),
            _text("negative_counts", "JSON list"),
        ),
        ("point_id",),
        indexes=(Index("metric_point_run_idx", ("run_id", "name", "at")),
                 Index("metric_point_resource_idx", ("resource_id", "name"))),
        doc="One row per OTLP metric data point; re-delivery of the same point is a no-op.",
        since=5,
    ),
)

TABLES: tuple[Table, ...] = (
    Table(
        "schema_version",
        (_int("version", nullable=False), _time("applied_at")),
        ("version",),
        doc="Applied schema versions; a store newer than the code is refused.",
    ),
    Table(
        "run",
        (
            RUN_ID,
            _name("run_name", "unique per store; NULL until the run-start span arrives"),
            _name("experiment"),
            Column("status", "string", 16, doc="running | completed | stopped | failed"),
            _time("started_at"),
            _time("ended_at"),
            _int("epochs", "epochs completed (from the run end)"),
            _text("error"),
            _name("host"),
            _name("service"),
            _big("process_pid"),
            _name("user_name", "OS user that owns the training process (resource process.owner)"),
            _text("device", "devices TensorFlow saw, comma separated"),
            Column("tensorflow_version", "string", 64),
            *(_promoted(hp) for hp in PROMOTED_HYPERPARAMETERS),
            _name("dataset_name"),
            Column("dataset_sha256", "string", 64),
            _big("dataset_picks"),
            _text("dataset_source"),
            _id("start_span_id"),
            _id("end_span_id"),
            _int("last_epoch", "highest epoch stored (maintained by the writer)"),
            _num("lr_min", "lowest finite learning rate stored (maintained by the writer)"),
        ),
        ("run_id",),
        unique=(("run_name",),),
        indexes=(Index("run_experiment_idx", ("experiment",)), Index("run_started_idx", ("started_at",))),
        doc="One row per training run: identity, environment, hyperparameters the queries use, status.",
    ),
    Table(
        "run_hyperparameter",
        (RUN_ID, Column("name", "string", 256, False), _text("value"), Column("value_type", "string", 8)),
        ("run_id", "name"),
        doc="Every pinn.hp.* attribute as text with its type (str, int, float, bool).",
    ),
    Table(
        "run_resource",
        (RUN_ID, Column("name", "string", 256, False), _text("value")),
        ("run_id", "name"),
        doc="OpenTelemetry resource attributes of the training process.",
    ),
    Table(
        "run_summary",
        (RUN_ID, Column("name", "string", 256, False), _num("value")),
        ("run_id", "name"),
        doc="Final metrics (pinn.summary.*) from the run end, e.g. r2, rmse_m_s.",
    ),
    Table(
        "epoch_metric",
        (
            RUN_ID,
            _int("epoch", nullable=False),
            _id("span_id"),
            _time("started_at"),
            _time("ended_at"),
            *(replace(_num(field.name, field.doc), since=FIELD_COLUMNS_SINCE.get(field.name, 1))
              for field in MEASURED_EPOCH_FIELDS),
            Column("nonfinite", "string", 256, doc="columns logged as NaN/inf (stored NULL), e.g. loss=nan"),
        ),
        ("run_id", "epoch"),
        clustered=True,
        doc="One row per captured epoch (Table 1).",
    ),
    Table(
        "epoch_extra",
        (RUN_ID, _int("epoch", nullable=False), Column("name", "string", 256, False), _num("value")),
        ("run_id", "epoch", "name"),
        clustered=True,
        doc="Further per-epoch scalars (pinn.epoch.extra.*).",
    ),
    Table(
        "adaptation",
        (
            _id("adaptation_id", "span id", nullable=False),
            RUN_ID,
            _int("epoch"),
            _time("at"),
            _name("parameter"),
            _text("old_value"),
            _text("new_value"),
            _name("agent", "user:<name> | schedule | rule:<name> | trainer"),
            _text("reason"),
            _id("command_id"),
        ),
        ("adaptation_id",),
        indexes=(Index("adaptation_run_idx", ("run_id", "epoch")),),
        doc="Changes to a running configuration, with the agent that decided them.",
    ),
    Table(
        "alert",
        (
            Column("alert_id", "string", 512, False),
            _name("rule"),
            RUN_ID,
            _int("epoch"),
            _time("at"),
            _name("metric"),
            _num("value"),
            _num("threshold"),
            _text("message"),
            _text("actions"),
        ),
        ("alert_id",),
        indexes=(Index("alert_run_idx", ("run_id", "epoch")),),
        doc="Alert rules that fired.",
    ),
    Table(
        "alert_engine_run",
        (RUN_ID, _int("last_epoch", "last epoch the alert rules evaluated", nullable=False),
         Column("states", "clob", nullable=False, doc="per rule: firing, streak start, best value (JSON)")),
        ("run_id",),
        doc="The alert engine's memory per run, so a collector restart does not notify a firing twice.",
        since=2,
    ),
    Table(
        "alert_engine_fired",
        (Column("alert_id", "string", 512, False), RUN_ID, _int("epoch", nullable=False),
         Column("record", "clob", nullable=False, doc="the AlertRecord as JSON, returned again on replays")),
        ("alert_id",),
        doc="Every firing, claimed before its actions run: a claimed firing is never notified again.",
        since=2,
    ),
    Table(
        "steering_command",
        (
            _id("command_id", nullable=False),
            RUN_ID,
            _time("created_at"),
            Column("kind", "string", 32),
            _name("parameter"),
            _num("value"),
            _name("agent"),
            _text("reason"),
            Column("state", "string", 16, False, "pending | applied | refused"),
            _time("acked_at"),
            _text("detail"),
        ),
        ("command_id",),
        indexes=(Index("steering_run_state_idx", ("run_id", "state")),),
        doc="Steering commands for running trainers (written through pinnprov.store.access).",
    ),
    Table(
        "run_relation",
        (
            RUN_ID,
            _id("related_run_id", "the run this one is related to", nullable=False),
            Column("relation", "string", 32, False, "retry_of: this run re-trains the failed related run; "
                   "member_of: this run is a member of the related ensemble"),
            _time("at"),
            _name("agent", "who decided it, e.g. sweep:<user>"),
            _text("reason"),
        ),
        ("run_id", "related_run_id", "relation"),
        indexes=(Index("run_relation_related_idx", ("related_run_id",)),),
        doc="Relations between runs that no single run's telemetry carries (written by the sweep/ensemble drivers).",
        since=3,
    ),
    *METRIC_TABLES,
)

TABLES_BY_NAME = {table.name: table for table in TABLES}


def create_table_sql(table: Table, dialect: Dialect) -> str:
    q = dialect.quote
    lines = []
    for column in table.columns:
        null = "" if column.nullable else " NOT NULL"
        lines.append(f"    {q(column.name)} {dialect.type_of(column.type, column.length)}{null}")
    lines.append(f"    PRIMARY KEY ({', '.join(q(name) for name in table.primary_key)})")
    lines.extend(f"    UNIQUE ({', '.join(q(name) for name in unique)})" for unique in table.unique)
    exists = "IF NOT EXISTS " if dialect.if_not_exists else ""
    options = ""
    if dialect.name == "sqlite":
        # STRICT makes SQLite refuse a string in a REAL column (the poison-record path), like MonetDB would.
        options = " STRICT" + (", WITHOUT ROWID" if table.clustered else "")
    return f"CREATE TABLE {exists}{q(table.name)} (\n" + ",\n".join(lines) + f"\n){options}"


def add_column_sql(table: Table, column: Column, dialect: Dialect) -> str:
    """ALTER TABLE ... ADD COLUMN for a column added after its table (nullable: existing rows get NULL)."""
    q = dialect.quote
    return f"ALTER TABLE {q(table.name)} ADD COLUMN {q(column.name)} {dialect.type_of(column.type, column.length)}"


def create_index_sql(table: Table, index: Index, dialect: Dialect) -> str:
    q = dialect.quote
    exists = "IF NOT EXISTS " if dialect.if_not_exists else ""
    return f"CREATE INDEX {exists}{q(index.name)} ON {q(table.name)} ({', '.join(q(c) for c in index.columns)})"


def tables_at(version: int) -> tuple[Table, ...]:
    """The tables of schema version `version` (1..SCHEMA_VERSION) as that version had them."""
    return tuple(table.at(version) for table in TABLES if table.since <= version)


def ddl(dialect_name: str) -> list[str]:
    """Every statement that creates the schema (tables, indexes, PROV views) in `dialect_name`."""
    from pinnprov.store.prov_views import VIEWS, create_view_sql

    dialect = get_dialect(dialect_name)
    statements = [create_table_sql(table, dialect) for table in TABLES]
    statements += [create_index_sql(table, index, dialect) for table in TABLES for index in table.indexes]
    statements += [create_view_sql(view, dialect) for view in VIEWS]
    return statements


def ddl_script(dialect_name: str) -> str:
    """The DDL as one script (for `psql`-style tools, docs and review)."""
    return ";\n\n".join(ddl(dialect_name)) + ";\n"


class SchemaVersionError(ValueError):
    """The store was written by a newer pinnprov (or is not a pinnprov store)."""


def newer_store_message(version: int) -> str:
    """The one-line refusal of a store newer than this code."""
    return f"store schema version {version} is newer than this pinnprov supports ({SCHEMA_VERSION}); upgrade pinnprov"
