"""Compare the runs of one experiment from the store: Table 2 (latest epoch of each run) and Figure 3 (loss curves).

Both come from the named queries (`latest`, `runs`, `epochs`), so they equal what `pinnprov query` prints. Long
runs are thinned for the figure with the `epochs` query's `every` option (at most MAX_POINTS points per curve).
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pinnprov.experiments.storeview import StoreView, Table

MAX_POINTS = 2000


@dataclass(frozen=True)
class Curve:
    run_name: str
    label: str
    status: str
    epochs: np.ndarray
    loss: np.ndarray


def table2(view: StoreView, experiment: str) -> Table:
    """Table 2 of the paper for one experiment; ValueError when the experiment has no runs."""
    table = view.query("latest", experiment=experiment)
    if not table.rows:
        known = sorted({row["experiment"] for row in view.runs()})
        hint = f" (experiments in this store: {', '.join(known)})" if known else " (the store has no runs)"
        raise ValueError(f"no runs in experiment {experiment!r}{hint}")
    return table


def loss_curves(view: StoreView, experiment: str, max_points: int = MAX_POINTS) -> list[Curve]:
    """Total loss per epoch of every run of the experiment that stored epochs, oldest run first."""
    runs = view.runs(experiment)
    curves = []
    for run in runs:
        last = run.get("last_epoch")
        if last is None:
            continue  # failed before its first epoch
        every = max(1, math.ceil((int(last) + 1) / max_points))
        table = view.query("epochs", run=run["run_id"], every=every if every > 1 else None)
        index = {column: i for i, column in enumerate(table.columns)}
        points = [(row[index["epoch"]], row[index["loss"]]) for row in table.rows]
        if not points:
            continue
        epochs = np.asarray([p[0] for p in points], dtype=np.float64)
        loss = np.asarray([p[1] if p[1] is not None else np.nan for p in points], dtype=np.float64)
        curves.append(Curve(run["run_name"], _label(run), run.get("status") or "running", epochs, loss))
    labels = [curve.label for curve in curves]
    return [
        Curve(c.run_name, f"{c.label} [{c.run_name}]" if labels.count(c.label) > 1 else c.label, c.status, c.epochs,
              c.loss)
        for c in curves
    ]


def _label(run: Mapping[str, object]) -> str:
    parts = [str(run.get(key) or "?") for key in ("optimizer", "activation")]
    status = run.get("status") or "running"
    return " + ".join(parts) + ("" if status == "completed" else f" ({status})")


def loss_figure(path: Path, curves: list[Curve], title: str) -> Path:
    from pinnprov.pinn.figures import loss_curves_figure

    if not curves:
        raise ValueError("no run of this experiment has stored epochs yet: nothing to plot")
    return loss_curves_figure(path, {c.label: (c.epochs, c.loss) for c in curves}, title, ylabel="total loss L")


def write_csv(path: Path, table: Table) -> Path:
    """The table as CSV, exactly as `pinnprov query ... --format csv` writes it."""
    from pinnprov.store.output import render

    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        render(table.columns, table.rows, "csv", handle)
    return path


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))
