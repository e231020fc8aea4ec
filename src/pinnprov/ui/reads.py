"""What the pages show, read through the named queries (pinnprov.store.queries) and the store's own read APIs.

Nothing here keeps data between requests: every answer comes from the store at the time of the request, so the
UI can never disagree with `pinnprov query`, and a page left open holds no copy of a run.
"""

from __future__ import annotations

import math
from typing import Any

from pinnprov.store.queries import LATEST_COLUMNS, QueryOptions, run_query
from pinnprov.ui.downsample import Columns, columns_from_buckets, columns_from_epochs, empty_columns

DEFAULT_POINTS = 2000  # about the width of a chart in device pixels: more points cannot be seen
MAX_POINTS = 20_000
TABLE1_MAX_ROWS = 500
R2_SUMMARY = "r2"


def table(result: Any) -> dict[str, Any]:
    """A query result as JSON: column names and rows (times stay Unix seconds; the page formats them)."""
    return {"columns": list(result.columns), "rows": [list(row) for row in result.rows]}


def records(result: Any) -> list[dict[str, Any]]:
    return [dict(zip(result.columns, row, strict=True)) for row in result.rows]


def query(store: Any, name: str, **options: Any) -> Any:
    return run_query(store, name, QueryOptions(**options))


def run_record(store: Any, run_id: str) -> dict[str, Any]:
    found = records(query(store, "run", run_id=run_id))
    if not found:
        raise LookupError(f"unknown run {run_id}")
    return found[0]


def runs_overview(store: Any, *, experiment: str | None = None, status: str | None = None) -> list[dict[str, Any]]:
    """The Runs page: each run with its latest epoch's losses (Table 2's row) and R² when its end reported one."""
    runs = records(query(store, "runs", experiment=experiment, status=status))
    latest = {row["run_name"]: row for row in records(query(store, "latest", experiment=experiment)) if row["run_name"]}
    r2 = {row["run_id"]: row["value"] for row in records(query(store, "summary", experiment=experiment))
          if row["name"] == R2_SUMMARY}
    overview = []
    for run in runs:
        last = latest.get(run["run_name"], {})
        overview.append({
            **run,
            "status": run["status"] or "running",
            "epoch": last.get("epoch"),
            **{name: last.get(name) for name in LATEST_COLUMNS},
            "epoch_ended_at": last.get("ended_at"),
            "r2": r2.get(run["run_id"]),
        })
    return overview


def experiments(store: Any) -> list[str]:
    return sorted({row["experiment"] for row in records(query(store, "runs")) if row["experiment"]})


def run_detail(store: Any, run_id: str) -> dict[str, Any]:
    """The run page's slow-changing part: the run, its hyperparameters, adaptations, alerts, steering commands."""
    from pinnprov.store.access import list_commands
    from pinnprov.store.alert_history import alert_history

    run = run_record(store, run_id)
    run["status"] = run["status"] or "running"
    scope = {"experiment": run["experiment"]} if run["experiment"] else {}  # the summary query filters by experiment
    summaries = records(query(store, "summary", **scope))
    summary = {row["name"]: row["value"] for row in summaries if row["run_id"] == run_id}
    return {
        "run": run,
        "summary": summary,
        "hyperparameters": table(query(store, "hyperparameters", run_id=run_id)),
        "adaptations": table(query(store, "adaptations", run_id=run_id)),
        "alerts": table(alert_history(store, run_id=run_id)),
        "commands": [vars(row) for row in list_commands(store, run_id)],
    }


def nice_every(last_epoch: int | None, rows: int = 10) -> int:
    """A round K (1, 2, 5 x 10^n) so that Table 1 `--every K` lists about `rows` epochs, as the paper's 10,000."""
    if not last_epoch or last_epoch < rows:
        return 1
    raw = last_epoch / rows
    power = 10 ** math.floor(math.log10(raw))
    return int(next(step * power for step in (1, 2, 5, 10) if step * power >= raw))


def table1(store: Any, run_id: str, *, every: int | None, last: int | None = None) -> dict[str, Any]:
    if every is None:
        every = nice_every(run_record(store, run_id)["last_epoch"])
    result = query(store, "epochs", run_id=run_id, every=every, last=last or TABLE1_MAX_ROWS)
    return {"every": every, **table(result)}


def _points(value: int | None) -> int:
    if value is None:
        return DEFAULT_POINTS
    if not 2 <= value <= MAX_POINTS:
        raise ValueError(f"points must be in [2, {MAX_POINTS}], got {value}")
    return value


def curve(store: Any, run_id: str, lo: int, hi: int, points: int) -> tuple[Columns, bool]:
    """Chart columns of epochs lo..hi: every stored epoch if the range fits in `points`, else min/max buckets."""
    if hi < lo:
        return empty_columns(), True
    if hi - lo + 1 <= points:
        result = query(store, "epochs", run_id=run_id, from_epoch=lo, to_epoch=hi)
        return columns_from_epochs(result.columns, result.rows), True
    buckets = max(1, (points - 2) // 2)  # two points per bucket, plus the first and last epochs
    result = query(store, "epoch_buckets", run_id=run_id, from_epoch=lo, to_epoch=hi, buckets=buckets)
    return columns_from_buckets(result.columns, result.rows), False


def series(store: Any, run_id: str, *, from_epoch: int | None = None, to_epoch: int | None = None,
           after: int | None = None, points: int | None = None) -> dict[str, Any]:
    """The run page's data: a range (zoom), the whole run (first load) or only epochs after `after` (polling)."""
    budget = _points(points)
    run = run_record(store, run_id)
    last = run["last_epoch"]
    lo = after + 1 if after is not None else (from_epoch if from_epoch is not None else 0)
    hi = last if to_epoch is None or last is None else min(to_epoch, last)
    columns, exact = curve(store, run_id, lo, hi, budget) if last is not None else (empty_columns(), True)
    return {
        "run_id": run_id,
        "status": run["status"] or "running",
        "last_epoch": last,
        "from": lo,
        "to": hi,
        "exact": exact,
        "columns": columns,
    }


def compare(store: Any, experiment: str, *, points: int | None = None) -> dict[str, Any]:
    """The Compare page: Figure 3 (total loss of every run), Table 2 and Table 3 of one experiment."""
    budget = _points(points)
    runs = records(query(store, "runs", experiment=experiment))
    if not runs:
        known = experiments(store)
        hint = f" (experiments in this store: {', '.join(known)})" if known else " (the store has no runs)"
        raise LookupError(f"no runs in experiment {experiment!r}{hint}")
    curves = []
    for run in runs:
        if run["last_epoch"] is None:
            continue  # failed before its first epoch
        columns, exact = curve(store, run["run_id"], 0, int(run["last_epoch"]), budget)
        curves.append({
            "run_id": run["run_id"],
            "run_name": run["run_name"],
            "label": f"{run['optimizer'] or '?'} + {run['activation'] or '?'}",
            "status": run["status"] or "running",
            "exact": exact,
            "epoch": columns["epoch"],
            "loss": columns["loss"],
        })
    return {
        "experiment": experiment,
        "curves": curves,
        "table2": table(query(store, "latest", experiment=experiment)),
        "table3": table(query(store, "lr", experiment=experiment)),
    }


SYSTEM_FRACTIONS = {
    "process.cpu.utilization": "process CPU", "system.cpu.utilization": "host CPU",
    "system.memory.utilization": "host memory", "hw.gpu.utilization": "GPU",
}
"""The trainers' system metrics (pinnprov/capture/system_metrics.py) that are fractions, drawn on one axis in %."""


def system_series(store: Any, run_id: str) -> dict[str, Any]:
    """The run page's system chart: every fraction-valued system metric of the run on the epoch axis (a point's
    `epoch_at`: its epoch plus the elapsed part of it), one series per metric and GPU, aligned for the chart."""
    result = query(store, "metric_epochs", run_id=run_id)
    by_series: dict[str, dict[float, float]] = {}
    for row in records(result):
        label = SYSTEM_FRACTIONS.get(row["name"])
        if label is None or row["epoch_at"] is None or row["value"] is None:
            continue
        if row["name"] == "hw.gpu.utilization":
            import json

            label = f"GPU {json.loads(row['attributes'] or '{}').get('hw.id', '?')}"
        by_series.setdefault(label, {})[float(row["epoch_at"])] = 100.0 * float(row["value"])
    positions = sorted({x for values in by_series.values() for x in values})
    labels = sorted(by_series, key=lambda name: (list(SYSTEM_FRACTIONS.values()).index(name)
                                                 if name in SYSTEM_FRACTIONS.values() else len(SYSTEM_FRACTIONS), name))
    return {"run_id": run_id, "unit": "%", "x": positions, "series": [
        {"label": label, "values": [by_series[label].get(x) for x in positions]} for label in labels]}
