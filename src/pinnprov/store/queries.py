"""Named queries: the paper's Tables 1-3 and friends, in portable SQL (SQLite and MonetDB).

Each query is chosen by name from `QUERIES` and builds its SQL from a few options. They are designed for
big stores (1,000 runs x 10,000 epochs): `epochs` is a primary-key range scan of one run, `latest` joins
each run to its last epoch through `run.last_epoch`, and `lr` reads `run.lr_min`, both summaries kept by
the writer in the same transaction as the epochs.

Naming: the paper's Table 1 column "LR" is the *residual loss*; here it is `loss_residual` and the learning
rate is `learning_rate`/`lr_*`. Never abbreviate either to "lr" alone.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from pinnprov.core.fields import LATEST_EPOCH_FIELDS, MEASURED_EPOCH_FIELDS
from pinnprov.core.registry import Registry

if TYPE_CHECKING:
    from pinnprov.store.access import QueryResult, Store

QueryParams = dict[str, object]
"""`:name` parameters of a query's SQL (values the store's driver binds)."""


@dataclass(frozen=True)
class QueryOptions:
    """Everything a named query may use; the CLI fills it from flags."""

    run_id: str | None = None
    every: int | None = None
    last: int | None = None
    from_epoch: int | None = None
    to_epoch: int | None = None
    experiment: str | None = None
    status: str | None = None
    limit: int | None = None
    buckets: int | None = None
    name: str | None = None  # a metric name, or a prefix ending in '.' (e.g. system.)


@dataclass(frozen=True)
class NamedQuery:
    name: str
    description: str
    build: Callable[[QueryOptions], tuple[str, QueryParams]]
    needs_run: bool = False
    options: tuple[str, ...] = field(default_factory=tuple)  # QueryOptions fields this query honours


QUERIES: Registry[NamedQuery] = Registry("named query")


SERIES_COLUMNS: tuple[str, ...] = tuple(field.name for field in MEASURED_EPOCH_FIELDS)
"""The measured columns of epoch_metric (pinnprov/core/fields.py), in Table 1's order: what a chart of one run draws."""
LATEST_COLUMNS: tuple[str, ...] = tuple(field.name for field in LATEST_EPOCH_FIELDS)
"""The last epoch's columns Table 2 (`latest`) shows for each run."""


def _positive(name: str, value: int | None) -> None:
    if value is not None and value < 1:
        raise ValueError(f"--{name} must be >= 1, got {value}")


def _epochs(options: QueryOptions) -> tuple[str, QueryParams]:
    _positive("every", options.every)
    _positive("last", options.last)
    where = ["run_id = :run_id"]
    params: QueryParams = {"run_id": options.run_id}
    if options.from_epoch is not None:
        where.append('"epoch" >= :from_epoch')
        params["from_epoch"] = options.from_epoch
    if options.to_epoch is not None:
        where.append('"epoch" <= :to_epoch')
        params["to_epoch"] = options.to_epoch
    if options.every is not None and options.every > 1:
        where.append('"epoch" % :every = 0')
        params["every"] = options.every
    columns = ", ".join(('"epoch"', *SERIES_COLUMNS, "ended_at"))
    base = f"SELECT {columns} FROM epoch_metric WHERE {' AND '.join(where)}"
    if options.last is not None:
        params["last"] = options.last
        sql = f'SELECT * FROM ({base} ORDER BY "epoch" DESC LIMIT :last) AS tail ORDER BY "epoch"'
    else:
        sql = f'{base} ORDER BY "epoch"'
    return sql, params


def _experiment_filter(options: QueryOptions, alias: str = "") -> tuple[str, QueryParams]:
    if options.experiment is None:
        return "", {}
    return f" WHERE {alias}experiment = :experiment", {"experiment": options.experiment}


def _latest(options: QueryOptions) -> tuple[str, QueryParams]:
    where, params = _experiment_filter(options, "r.")
    sql = f"""
SELECT r.run_name, r.experiment, e."epoch", {", ".join("e." + name for name in LATEST_COLUMNS)},
       r.optimizer, r.activation, r.status, e.ended_at
FROM run r LEFT JOIN (SELECT * FROM epoch_metric WHERE "epoch" IN (SELECT last_epoch FROM run)) e
  ON e.run_id = r.run_id AND e."epoch" = r.last_epoch{where}
ORDER BY r.started_at, r.run_id"""
    # The IN pre-filter lets columnar MonetDB select the few candidate epochs before the join instead of joining
    # all 10M rows (1,000 x 10,000 store: 127 -> 78 ms); SQLite still joins through the primary key (10 -> 7 ms).
    return sql, params


def _lr(options: QueryOptions) -> tuple[str, QueryParams]:
    where, params = _experiment_filter(options)
    sql = f"""
SELECT run_name, lr_schedule, lr_decay_rate, lr_decay_steps, lr_initial, lr_min AS lr_lowest, last_epoch, status
FROM run{where}
ORDER BY started_at, run_id"""
    return sql, params


def _adaptations(options: QueryOptions) -> tuple[str, QueryParams]:
    sql = """
SELECT "epoch", at, parameter, old_value, new_value, agent, reason, command_id
FROM adaptation WHERE run_id = :run_id
ORDER BY at, "epoch", adaptation_id"""
    return sql, {"run_id": options.run_id}


def _runs(options: QueryOptions) -> tuple[str, QueryParams]:
    _positive("limit", options.limit)
    where: list[str] = []
    params: QueryParams = {}
    if options.experiment is not None:
        where.append("experiment = :experiment")
        params["experiment"] = options.experiment
    if options.status is not None:
        where.append("status = :status")
        params["status"] = options.status
    sql = (
        "SELECT run_id, run_name, experiment, status, started_at, ended_at, last_epoch, optimizer, activation, host "
        "FROM run" + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY started_at, run_id"
    )
    if options.limit is not None:
        # the newest N, still listed oldest first
        sql = (
            f"SELECT * FROM ({sql.replace(' ORDER BY started_at, run_id', '')} "
            "ORDER BY started_at DESC, run_id DESC LIMIT :limit) AS newest ORDER BY started_at, run_id"
        )
        params["limit"] = options.limit
    return sql, params


def _run(options: QueryOptions) -> tuple[str, QueryParams]:
    columns = ", ".join(f'"{name}"' for name in RUN_COLUMNS)  # some are MonetDB keywords (seed)
    sql = f"SELECT {columns} FROM run WHERE run_id = :run_id"
    return sql, {"run_id": options.run_id}


RUN_COLUMNS = (
    "run_id", "run_name", "experiment", "status", "started_at", "ended_at", "epochs", "error", "last_epoch",
    "planned_epochs", "optimizer", "activation", "lr_schedule", "lr_initial", "lr_decay_rate", "lr_decay_steps",
    "lr_min", "seed", "host", "user_name", "device", "tensorflow_version", "dataset_name", "dataset_picks",
)


def _hyperparameters(options: QueryOptions) -> tuple[str, QueryParams]:
    sql = 'SELECT "name", "value", value_type FROM run_hyperparameter WHERE run_id = :run_id ORDER BY "name"'
    return sql, {"run_id": options.run_id}


def _summary(options: QueryOptions) -> tuple[str, QueryParams]:
    where, params = _experiment_filter(options, "r.")
    sql = (
        'SELECT r.run_id, r.run_name, s."name", s."value" '
        f"FROM run_summary s JOIN run r ON r.run_id = s.run_id{where} "
        'ORDER BY r.started_at, r.run_id, s."name"'
    )
    return sql, params


DEFAULT_BUCKETS = 1000
MAX_BUCKETS = 100_000
_LAST_INT = 2**31 - 1  # INTEGER is 32-bit in MonetDB


def _epoch_buckets(options: QueryOptions) -> tuple[str, QueryParams]:
    """Min and max of every series in equal epoch buckets, the first and last stored epochs in buckets of their own.

    Why in SQL: a chart needs ~1000 points, a run may have 10^6 epochs; one aggregate scan of the primary-key
    range costs a fraction of fetching the rows into Python. Shape-keeping: every bucket keeps each series'
    extremes (a spike of one epoch survives), and the run's first and last epochs keep their exact values.
    Bucket 0 is the first stored epoch in the range, bucket buckets+1 the last, 1..buckets the epochs between.
    """
    _positive("buckets", options.buckets)
    buckets = options.buckets or DEFAULT_BUCKETS
    if buckets > MAX_BUCKETS:
        raise ValueError(f"--buckets must be <= {MAX_BUCKETS}, got {buckets}")
    params: QueryParams = {
        "run_id": options.run_id,
        "lo": 0 if options.from_epoch is None else options.from_epoch,
        "hi": _LAST_INT if options.to_epoch is None else options.to_epoch,
        "buckets": buckets,
    }
    in_range = 'run_id = :run_id AND "epoch" >= :lo AND "epoch" <= :hi'
    extremes = ", ".join(f"MIN({name}) AS {name}_min, MAX({name}) AS {name}_max" for name in SERIES_COLUMNS)
    sql = f"""
WITH span AS (SELECT
  (SELECT MIN("epoch") FROM epoch_metric WHERE {in_range}) AS f,
  (SELECT MAX("epoch") FROM epoch_metric WHERE {in_range}) AS l)
SELECT bucket, MIN("epoch") AS first_epoch, MAX("epoch") AS last_epoch, COUNT(*) AS row_count, {extremes}
FROM (SELECT CASE WHEN e."epoch" = s.f THEN 0 WHEN e."epoch" = s.l THEN :buckets + 1
             ELSE 1 + CAST(e."epoch" - s.f - 1 AS BIGINT) * :buckets / NULLIF(s.l - s.f - 1, 0) END AS bucket,
             e."epoch", {", ".join("e." + name for name in SERIES_COLUMNS)}
      FROM epoch_metric e CROSS JOIN span s
      WHERE e.run_id = :run_id AND e."epoch" >= :lo AND e."epoch" <= :hi) AS b
GROUP BY bucket
ORDER BY bucket"""
    return sql, params


def _metric_name_filter(options: QueryOptions, where: list[str], params: QueryParams) -> None:
    """--name N: that metric; a name ending in '.' (system.) is a prefix."""
    if options.name is None:
        return
    if options.name.endswith("."):  # a range, not LIKE: no escaping of '_' and the index on the name is used
        where.append('p."name" >= :name AND p."name" < :name_end')
        params["name"], params["name_end"] = options.name, options.name[:-1] + "/"  # '/' follows '.'
    else:
        where.append('p."name" = :name')
        params["name"] = options.name


def _metrics(options: QueryOptions) -> tuple[str, QueryParams]:
    """OTLP metric points (table metric_point), oldest first; --run one run, --name a metric or a prefix."""
    _positive("limit", options.limit)
    where: list[str] = []
    params: QueryParams = {}
    if options.run_id is not None:
        where.append("p.run_id = :run_id")
        params["run_id"] = options.run_id
    _metric_name_filter(options, where, params)
    columns = ('p.at, p."name", p.kind, p.unit, p."value", p.hist_count, p.hist_sum, p.hist_min, p.hist_max, '
               "p.temporality, p.attributes, p.run_id, r.service, r.host")
    base = (f"SELECT {columns} FROM metric_point p JOIN metric_resource r ON r.resource_id = p.resource_id"
            + (" WHERE " + " AND ".join(where) if where else ""))
    if options.limit is not None:
        params["limit"] = options.limit
        return (f'SELECT * FROM ({base} ORDER BY p.at DESC, p."name" DESC LIMIT :limit) AS newest '
                'ORDER BY at, "name"'), params
    return f'{base} ORDER BY p.at, p."name", p.point_id', params


def _metric_epochs(options: QueryOptions) -> tuple[str, QueryParams]:
    """One run's metric points with where they fall on the epoch axis: `epoch` is the last stored epoch that had
    started by the point's time and `epoch_at` the point's place on the axis, epoch + the elapsed fraction of it
    (capped at the next epoch). What the UI draws under the loss. Histograms give their mean (sum / count); points
    before the first epoch have no epoch."""
    where = ["p.run_id = :run_id"]
    params: QueryParams = {"run_id": options.run_id}
    _metric_name_filter(options, where, params)
    sql = f"""
SELECT p.at, p."name", p.unit, p.attributes,
       CASE WHEN p.hist_count > 0 THEN p.hist_sum / p.hist_count ELSE p."value" END AS "value",
       e."epoch",
       e."epoch" + CASE WHEN e.ended_at > e.started_at AND p.at < e.ended_at
                        THEN (p.at - e.started_at) / (e.ended_at - e.started_at) ELSE 1.0 END AS epoch_at
FROM metric_point p LEFT JOIN epoch_metric e ON e.run_id = p.run_id AND e."epoch" = (
  SELECT MAX(f."epoch") FROM epoch_metric f WHERE f.run_id = p.run_id AND f.started_at <= p.at)
WHERE {" AND ".join(where)}
ORDER BY p."name", p.attributes, p.at"""
    return sql, params


QUERIES.add(
    "epochs",
    NamedQuery(
        "epochs",
        "Table 1: elapsed time and loss components of each epoch of one run",
        _epochs,
        needs_run=True,
        options=("run_id", "every", "last", "from_epoch", "to_epoch"),
    ),
)
QUERIES.add(
    "latest",
    NamedQuery(
        "latest",
        "Table 2: latest epoch of each run with its losses, optimizer, activation and status",
        _latest,
        options=("experiment",),
    ),
)
QUERIES.add(
    "lr",
    NamedQuery(
        "lr",
        "Table 3: learning-rate schedule, decay rate and steps, initial and lowest learning rate per run",
        _lr,
        options=("experiment",),
    ),
)
QUERIES.add(
    "adaptations",
    NamedQuery(
        "adaptations",
        "Changes applied to one run while it trained, with their agent and reason",
        _adaptations,
        needs_run=True,
        options=("run_id",),
    ),
)
QUERIES.add(
    "runs",
    NamedQuery(
        "runs",
        "Runs in the store, oldest first",
        _runs,
        options=("experiment", "status", "limit"),
    ),
)

QUERIES.add(
    "run",
    NamedQuery(
        "run",
        "One run: identity, status, optimiser and schedule, environment, data set",
        _run,
        needs_run=True,
        options=("run_id",),
    ),
)
QUERIES.add(
    "hyperparameters",
    NamedQuery(
        "hyperparameters",
        "Every hyperparameter of one run as recorded at its start (name, value, type)",
        _hyperparameters,
        needs_run=True,
        options=("run_id",),
    ),
)
QUERIES.add(
    "summary",
    NamedQuery(
        "summary",
        "Final metrics of each finished run (e.g. r2, rmse_m_s)",
        _summary,
        options=("experiment",),
    ),
)
QUERIES.add(
    "epoch_buckets",
    NamedQuery(
        "epoch_buckets",
        "Min and max of each loss, learning rate and epoch time per epoch bucket of one run (charts of long runs)",
        _epoch_buckets,
        needs_run=True,
        options=("run_id", "from_epoch", "to_epoch", "buckets"),
    ),
)

QUERIES.add(
    "metrics",
    NamedQuery(
        "metrics",
        "OpenTelemetry metric points (gauges, sums, histograms), of one run (--run) or all, of a metric (--name)",
        _metrics,
        options=("run_id", "name", "limit"),
    ),
)
QUERIES.add(
    "metric_epochs",
    NamedQuery(
        "metric_epochs",
        "One run's metric points (--name a metric or a prefix such as system.) with the epoch running at each",
        _metric_epochs,
        needs_run=True,
        options=("run_id", "name"),
    ),
)


def run_query(store: Store, name: str, options: QueryOptions) -> QueryResult:
    """Build and execute a named query; returns the store's QueryResult."""
    query = QUERIES.get(name)
    if query.needs_run and not options.run_id:
        raise ValueError(f"query {name!r} needs a run (--run)")
    sql, params = query.build(options)
    return store.execute(sql, params)
