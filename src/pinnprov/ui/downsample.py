"""Chart points from query rows: raw epochs as they are, or the `epoch_buckets` query's min/max envelope.

Why min/max buckets (not LTTB, not every k-th epoch): a chart of 10^6 epochs has ~1000 pixels across; what a user
must not miss is a spike or a dip, and a bucket's min and max keep every extreme by construction, are computed by
the database in one scan (LTTB needs the rows in Python) and are exact at any zoom. Each bucket with several epochs
becomes two points, at its first and last epoch; which of them gets the max is chosen from the trend against the
previous bucket (falling: max first), so a falling loss stays a falling line. The store's first and last epochs of
the range come back as buckets of one row: their values are exact.

Output is columnar, as uPlot takes it: {"epoch": [...], "loss": [...], ...}, NULL as None.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from pinnprov.store.queries import SERIES_COLUMNS

Columns = dict[str, list[Any]]


def empty_columns() -> Columns:
    return {"epoch": [], **{name: [] for name in SERIES_COLUMNS}}


def _finite(value: Any) -> Any:
    """None for NULL, NaN and infinities (JSON has none of them; uPlot draws None as a gap)."""
    if value is None:
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def columns_from_epochs(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> Columns:
    """The `epochs` query's rows (one per stored epoch) as chart columns."""
    index = {name: i for i, name in enumerate(columns)}
    out = empty_columns()
    for row in rows:
        out["epoch"].append(row[index["epoch"]])
        for name in SERIES_COLUMNS:
            out[name].append(_finite(row[index[name]]))
    return out


def _middle(low: Any, high: Any) -> float | None:
    return None if low is None or high is None else (float(low) + float(high)) / 2


def columns_from_buckets(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> Columns:
    """The `epoch_buckets` query's rows as chart columns: one point per one-row bucket, two per other bucket."""
    index = {name: i for i, name in enumerate(columns)}
    out = empty_columns()
    previous: dict[str, float | None] = dict.fromkeys(SERIES_COLUMNS)
    for row in rows:
        first, last = row[index["first_epoch"]], row[index["last_epoch"]]
        extremes = {
            name: (_finite(row[index[f"{name}_min"]]), _finite(row[index[f"{name}_max"]])) for name in SERIES_COLUMNS
        }
        if first == last:
            out["epoch"].append(first)
            for name, (low, _) in extremes.items():
                out[name].append(low)
                previous[name] = _middle(low, low)
            continue
        out["epoch"].extend((first, last))
        for name, (low, high) in extremes.items():
            middle = _middle(low, high)
            before = previous[name]
            falling = before is None or middle is None or middle <= before
            out[name].extend((high, low) if falling else (low, high))
            previous[name] = middle
    return out


def append_columns(target: Columns, more: Columns) -> None:
    for name, values in more.items():
        target[name].extend(values)
