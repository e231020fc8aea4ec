"""The classical reference run: PyGIMLi traveltime tomography on the benchmark or a user's picks, and its outputs.

Writes into the output folder (replacing an earlier baseline there): result.json (scores, misfit, timing, every
PyGIMLi setting and the data set's identity), velocity_pygimli.npy with grid_x.npy/grid_z.npy (the cell centres,
rows = depth), and comparison.png (true model beside PyGIMLi on the benchmark). Settings: flag, then
PINNPROV_BASELINE_* environment variable, then the documented default (lam=1000, no gradient start).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pinnprov.core.settings import resolve
from pinnprov.experiments.run_outputs import (
    atomic_npy,
    atomic_text,
    comparison_png,
    json_default,
    load_picks_or_benchmark,
)

DEFAULT_OUT = Path("runs") / "baseline"


def _positive_float(text: str) -> float:
    value = float(text)
    if not (math.isfinite(value) and value > 0):
        raise ValueError("must be a positive number")
    return value


def _int_in(low: int, high: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        value = int(text)
        if not low <= value <= high:
            raise ValueError(f"must be an integer in [{low}, {high}]")
        return value

    return parse


def settings_from(args: argparse.Namespace) -> dict[str, Any]:
    """Flag > PINNPROV_BASELINE_* > default, each bad value a ValueError naming the flag or variable."""
    from pinnprov.pinn import baseline_pygimli as bp

    return {
        "lam": resolve("--lam", args.lam, "PINNPROV_BASELINE_LAM", bp.DEFAULT_LAM, _positive_float),
        "cell_size_m": resolve("--cell-size", args.cell_size, "PINNPROV_BASELINE_CELL_SIZE", None, _positive_float),
        "sec_nodes": resolve(
            "--sec-nodes", args.sec_nodes, "PINNPROV_BASELINE_SEC_NODES", bp.DEFAULT_SEC_NODES, _int_in(0, 10)
        ),
        "max_iter": resolve(
            "--max-iter", args.max_iter, "PINNPROV_BASELINE_MAX_ITER", bp.DEFAULT_MAX_ITER, _int_in(1, 1000)
        ),
    }


def run_baseline(args: argparse.Namespace) -> int:
    """Resolve the settings (bad ones fail before PyGIMLi loads), invert, write and print the outputs."""
    settings = settings_from(args)
    out = resolve("--out", args.out, "PINNPROV_BASELINE_OUT", DEFAULT_OUT, Path)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out: {out} exists and is not a directory")
    data = load_picks_or_benchmark(args.data, args.domain)
    verbose = bool(args.verbose or args.baseline_verbose)

    from pinnprov.pinn.baseline_pygimli import invert

    print(f"inverting {data.picks} picks of {data.name} with PyGIMLi (lam={settings['lam']:g}) ...", file=sys.stderr)
    result = invert(data, verbose=verbose, **settings)
    written = _write_outputs(out, data, result)
    _print_result(data, result, written)
    return 0


def _write_outputs(out: Path, data: Any, result: Any) -> list[Path]:
    from pinnprov.pinn.figures import grid_extent
    from pinnprov.pinn.scoring import true_model

    out.mkdir(parents=True, exist_ok=True)
    written = [
        atomic_npy(out / "velocity_pygimli.npy", result.velocity_grid),
        atomic_npy(out / "grid_x.npy", result.grid_x),
        atomic_npy(out / "grid_z.npy", result.grid_z),
    ]
    panels: list[tuple[str, Any, float | None]] = []
    exact = true_model(data)
    if exact is not None:
        panels.append(("True model", exact(result.grid_x, result.grid_z), None))
    panels.append(("PyGIMLi", result.velocity_grid, result.r2))
    written.append(comparison_png(out, panels, data, grid_extent(result.grid_x, result.grid_z)))
    summary = {
        "method": "pygimli",
        "dataset": dict(data.identity().__dict__),
        "noise_rms_s": data.noise_rms_s,
        **result.summary(),
        "files": [path.name for path in written] + ["result.json"],
    }
    written.append(atomic_text(out / "result.json", json.dumps(summary, indent=2, default=json_default) + "\n"))
    return written


def _print_result(data: Any, result: Any, written: list[Path]) -> None:
    plural = "" if result.iterations == 1 else "s"
    lines = [
        f"PyGIMLi baseline on {data.name} ({data.picks} picks): {result.iterations} iteration{plural} in "
        f"{result.seconds:.1f} s, chi2 {result.chi2:.2f}"
    ]
    if result.r2 is not None:
        lines.append(f"velocity R2 {result.r2:.3f}, RMSE {result.rmse_m_s:.1f} m/s (scoring grid, exact model)")
    noise = f" (noise level {data.noise_rms_s * 1e3:.4f} ms)" if data.noise_rms_s else ""
    lines.append(f"data RMS {result.data_rms_s * 1e3:.4f} ms{noise}")
    lines.append(f"wrote {', '.join(str(path) for path in written)}")
    print("\n".join(lines))
