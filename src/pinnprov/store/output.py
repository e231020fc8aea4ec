"""Render query results as an aligned table, CSV or JSON.

- table: for people. Floats with 6 significant digits (the paper's values read as printed there),
  numbers right-aligned, times (`*_at` columns, Unix seconds in the store) as ISO-8601 UTC, NULL empty.
- csv: for spreadsheets. Full float precision (repr), ISO times, NULL empty.
- json: for programs. A list of objects; full precision, ISO times, NULL as null, NaN/inf as null.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import math
from collections.abc import Sequence
from typing import Any, TextIO

FORMATS = ("table", "csv", "json")
SIGNIFICANT = 6


def is_time_column(name: str) -> bool:
    return name.endswith("_at") or name == "at"


def iso_time(seconds: float) -> str:
    """Unix seconds -> 2024-05-01T12:00:00.250Z (millisecond precision, UTC)."""
    moment = dt.datetime.fromtimestamp(seconds, tz=dt.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _cell(name: str, value: object, *, human: bool) -> object:
    if value is None:
        return None
    if is_time_column(name) and isinstance(value, int | float) and not isinstance(value, bool):
        return iso_time(float(value)) if math.isfinite(value) else None
    if isinstance(value, float):
        if not math.isfinite(value):
            return None if not human else repr(value)
        return f"{value:.{SIGNIFICANT}g}" if human else value
    return value


def _text(value: object) -> str:
    return "" if value is None else str(value)


def render_table(columns: Sequence[str], rows: Sequence[Sequence[Any]], out: TextIO) -> None:
    cells = [[_text(_cell(name, value, human=True)) for name, value in zip(columns, row, strict=True)] for row in rows]
    numeric = [
        all(isinstance(row[i], int | float) and not isinstance(row[i], bool) for row in rows if row[i] is not None)
        and not is_time_column(name)
        for i, name in enumerate(columns)
    ]
    widths = [max([len(name)] + [len(row[i]) for row in cells]) for i, name in enumerate(columns)]

    def line(values: Sequence[str]) -> str:
        parts = [v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric, strict=True)]
        return "  ".join(parts).rstrip()

    out.write(line(list(columns)) + "\n")
    out.write("  ".join("-" * w for w in widths) + "\n")
    for row in cells:
        out.write(line(row) + "\n")
    if not rows:
        out.write("(no rows)\n")


def render_csv(columns: Sequence[str], rows: Sequence[Sequence[Any]], out: TextIO) -> None:
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        values = [_cell(name, value, human=False) for name, value in zip(columns, row, strict=True)]
        writer.writerow(["" if v is None else repr(v) if isinstance(v, float) else v for v in values])


def render_json(columns: Sequence[str], rows: Sequence[Sequence[Any]], out: TextIO) -> None:
    records = [
        {name: _cell(name, value, human=False) for name, value in zip(columns, row, strict=True)} for row in rows
    ]
    json.dump(records, out, indent=2, allow_nan=False, default=str)
    out.write("\n")


def render(columns: Sequence[str], rows: Sequence[Sequence[Any]], fmt: str, out: TextIO) -> None:
    """Write `rows` in format `fmt` (table, csv or json) to `out`."""
    if fmt == "table":
        render_table(columns, rows, out)
    elif fmt == "csv":
        render_csv(columns, rows, out)
    elif fmt == "json":
        render_json(columns, rows, out)
    else:
        raise ValueError(f"unknown format {fmt!r} (choose from: {', '.join(FORMATS)})")
