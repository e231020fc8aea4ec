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
from typing import Any

from contract.registry import Registry


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


@dataclass(frozen=True)
class NamedQuery:
    name: str
    description: str
    build: Callable[[QueryOptions], tuple[str, dict[str, Any]]]
    needs_run: bool = False
    options: tuple[str, ...] = field(default_factory=tuple)  # QueryOptions fields this query honours


QUERIES: Registry[NamedQuery] = Registry("named query")


def _positive(name: str, value: int | None) -> None:
    if value is not None and value < 1:
        raise ValueError(f"--{name} must be >= 1, got {value}")


def _epochs(options: QueryOptions) -> tuple[str, dict[str, Any]]:
    _positive("every", options.every)
    _positive("last", options.last)
    where = ["run_id = :run_id"]
    params: dict[str, Any] = {"run_id": options.run_id}
    if options.from_epoch is not None:
        where.append('"epoch" >= :from_epoch')
        params["from_epoch"] = options.from_epoch
    if options.to_epoch is not None:
        where.append('"epoch" <= :to_epoch')
        params["to_epoch"] = options.to_epoch
    if options.every is not None and options.every > 1:
        where.append('"epoch" % :every = 0')
        params["every"] = options.every
    columns = '"epoch", elapsed_s, loss, loss_bc, loss_residual, loss_data, learning_rate, ended_at'
    base = f"SELECT {columns} FROM epoch_metric WHERE {' AND '.join(where)}"
    if options.last is not None:
        params["last"] = options.last
        sql = f'SELECT * FROM ({base} ORDER BY "epoch" DESC LIMIT :last) AS tail ORDER BY "epoch"'
    else:
        sql = f'{base} ORDER BY "epoch"'
    return sql, params


def _experiment_filter(options: QueryOptions, alias: str = "") -> tuple[str, dict[str, Any]]:
    if options.experiment is None:
        return "", {}
    return f" WHERE {alias}experiment = :experiment", {"experiment": options.experiment}


def _latest(options: QueryOptions) -> tuple[str, dict[str, Any]]:
    where, params = _experiment_filter(options, "r.")
    sql = f"""
SELECT r.run_name, r.experiment, e."epoch", e.elapsed_s, e.loss, e.loss_bc, e.loss_residual, e.loss_data,
       r.optimizer, r.activation, r.status, e.ended_at
FROM run r LEFT JOIN epoch_metric e ON e.run_id = r.run_id AND e."epoch" = r.last_epoch{where}
ORDER BY r.started_at, r.run_id"""
    return sql, params


def _lr(options: QueryOptions) -> tuple[str, dict[str, Any]]:
    where, params = _experiment_filter(options)
    sql = f"""
SELECT run_name, lr_schedule, lr_decay_rate, lr_decay_steps, lr_initial, lr_min AS lr_lowest, last_epoch, status
FROM run{where}
ORDER BY started_at, run_id"""
    return sql, params


def _adaptations(options: QueryOptions) -> tuple[str, dict[str, Any]]:
    sql = """
SELECT "epoch", at, parameter, old_value, new_value, agent, reason, command_id
FROM adaptation WHERE run_id = :run_id
ORDER BY at, "epoch", adaptation_id"""
    return sql, {"run_id": options.run_id}


def _runs(options: QueryOptions) -> tuple[str, dict[str, Any]]:
    _positive("limit", options.limit)
    where, params = [], {}
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


def run_query(store: Any, name: str, options: QueryOptions) -> Any:
    """Build and execute a named query; returns the store's QueryResult."""
    query = QUERIES.get(name)
    if query.needs_run and not options.run_id:
        raise ValueError(f"query {name!r} needs a run (--run)")
    sql, params = query.build(options)
    return store.execute(sql, params)
