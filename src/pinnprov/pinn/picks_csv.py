"""A user's own picks from CSV: header `sx,sz,rx,rz,t` (metres, seconds), one source/receiver pair per row.

Every problem is a one-line ValueError naming the row (data rows count from 1, the header is line 1 of the
file) and the column, so a user can fix the file without reading a traceback. Blank lines and lines
starting with '#' are skipped.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np

from pinnprov.pinn.dataset import Domain, TraveltimeData

COLUMNS = ("sx", "sz", "rx", "rz", "t")


def parse_domain(text: str) -> Domain:
    """"x_min,x_max,z_min,z_max" in metres -> Domain."""
    parts = [p.strip() for p in str(text).split(",")]
    if len(parts) != 4:
        raise ValueError(f"domain: expected x_min,x_max,z_min,z_max, got {text!r}")
    try:
        values = [float(p) for p in parts]
    except ValueError:
        raise ValueError(f"domain: expected four numbers x_min,x_max,z_min,z_max, got {text!r}") from None
    if not all(math.isfinite(v) for v in values):
        raise ValueError(f"domain: values must be finite, got {text!r}")
    return Domain(*values)


def load_picks(path: str | Path, domain: Domain, *, noise_rms_s: float | None = None) -> TraveltimeData:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        text = path.read_text(encoding="utf-8-sig")  # tolerate a BOM from spreadsheet exports
    except UnicodeDecodeError as error:
        raise ValueError(f"{path}: not a UTF-8 text file ({error.reason} at byte {error.start})") from None
    lines = [(n, line) for n, line in enumerate(text.splitlines(), start=1)
             if line.strip() and not line.lstrip().startswith("#")]
    if not lines:
        raise ValueError(f"{path}: empty file, expected a header row {','.join(COLUMNS)}")
    header_line, header_text = lines[0]
    header = [h.strip().lower() for h in next(csv.reader([header_text]))]
    for column in COLUMNS:
        if column not in header:
            raise ValueError(f"{path}: line {header_line}: missing column {column!r} in header "
                             f"(expected {','.join(COLUMNS)})")
    unknown = [h for h in header if h not in COLUMNS]
    if unknown:
        raise ValueError(f"{path}: line {header_line}: unknown column {unknown[0]!r} (expected {','.join(COLUMNS)})")
    if len(set(header)) != len(header):
        raise ValueError(f"{path}: line {header_line}: a column appears twice in the header")
    index = {column: header.index(column) for column in COLUMNS}
    rows: list[list[float]] = []
    for row_number, (line_number, line) in enumerate(lines[1:], start=1):
        where = f"{path}: row {row_number} (line {line_number})"
        fields = next(csv.reader([line]))
        if len(fields) != len(header):
            raise ValueError(f"{where}: expected {len(header)} values, got {len(fields)}")
        values: dict[str, float] = {}
        for column in COLUMNS:
            raw = fields[index[column]].strip()
            try:
                value = float(raw)
            except ValueError:
                raise ValueError(f"{where}, column {column}: not a number: {raw!r}") from None
            if not math.isfinite(value):
                raise ValueError(f"{where}, column {column}: not a finite number: {raw!r}")
            values[column] = value
        _check_row(where, values, domain)
        rows.append([values[c] for c in COLUMNS])
    if not rows:
        raise ValueError(f"{path}: no picks after the header")
    array = np.asarray(rows, dtype=np.float64)
    return TraveltimeData(name=path.stem, domain=domain, sources=array[:, 0:2], receivers=array[:, 2:4],
                          traveltimes=array[:, 4], origin=str(path), noise_rms_s=noise_rms_s)


def _check_row(where: str, values: dict[str, float], domain: Domain) -> None:
    for column, low, high in (("sx", domain.x_min, domain.x_max), ("sz", domain.z_min, domain.z_max),
                              ("rx", domain.x_min, domain.x_max), ("rz", domain.z_min, domain.z_max)):
        if not low <= values[column] <= high:
            raise ValueError(f"{where}, column {column}: {values[column]:g} is outside the domain [{low:g}, {high:g}]")
    if values["t"] <= 0:
        raise ValueError(f"{where}, column t: traveltime must be positive, got {values['t']:g}")
    if values["sx"] == values["rx"] and values["sz"] == values["rz"]:
        raise ValueError(f"{where}, columns sx,sz,rx,rz: source and receiver are the same point")


def write_picks(path: str | Path, data: TraveltimeData) -> Path:
    """Write picks in the format load_picks reads (used to export the benchmark as an example)."""
    path = Path(path)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(COLUMNS)
        for (sx, sz), (rx, rz), t in zip(data.sources, data.receivers, data.traveltimes, strict=True):
            writer.writerow([repr(float(sx)), repr(float(sz)), repr(float(rx)), repr(float(rz)), repr(float(t))])
    return path
