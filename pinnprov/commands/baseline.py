"""`pinnprov baseline`: the classical reference, PyGIMLi traveltime tomography, on the benchmark or your picks.

Writes into --out (default runs/baseline, replacing an earlier baseline there): result.json (scores, misfit,
timing, every PyGIMLi setting and the data set's identity), velocity_pygimli.npy with grid_x.npy/grid_z.npy (the
cell centres, rows = depth), and comparison.png (true model beside PyGIMLi on the benchmark). Settings: flag,
then PINNPROV_BASELINE_* environment variable, then the documented default (lam=1000, no gradient start).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

DEFAULT_OUT = Path("runs") / "baseline"


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "baseline",
        help="invert the picks with PyGIMLi (the classical reference of the paper's Figure 2)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    data = parser.add_argument_group("data (default: the crosshole benchmark)")
    data.add_argument("--data", type=Path, metavar="CSV", help="picks with header sx,sz,rx,rz,t (m, s)")
    data.add_argument("--domain", metavar="X0,X1,Z0,Z1", help="domain of --data in metres (z = depth, down)")
    inversion = parser.add_argument_group("inversion")
    inversion.add_argument("--lam", metavar="LAMBDA", help="regularisation strength (default 1000)")
    inversion.add_argument("--cell-size", metavar="M", help="inversion cell size in metres (default width/32)")
    inversion.add_argument("--sec-nodes", metavar="N", help="secondary nodes per cell edge (default 3)")
    inversion.add_argument("--max-iter", metavar="N", help="Gauss-Newton iterations at most (default 20)")
    output = parser.add_argument_group("output")
    output.add_argument("--out", metavar="DIR", help=f"output folder (default {DEFAULT_OUT})")
    output.add_argument("--verbose", dest="baseline_verbose", action="store_true", help="show PyGIMLi's log")
    parser.set_defaults(handler=run_baseline)
    parser.error = _one_line_error  # type: ignore[method-assign]  # bad flags: one line, exit 2, no usage dump


def _one_line_error(message: str) -> None:
    print(f"pinnprov baseline: error: {message}", file=sys.stderr)
    raise SystemExit(2)


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


def _settings(args: argparse.Namespace) -> dict[str, Any]:
    """Flag > PINNPROV_BASELINE_* > default, each bad value a ValueError naming the flag or variable."""
    from pinn import baseline_pygimli as bp
    from pinnprov.settings import resolve

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


def _load_data(args: argparse.Namespace) -> Any:
    if args.data is None:
        if args.domain is not None:
            raise ValueError("--domain needs --data (the benchmark has its own domain)")
        from pinn.benchmark import crosshole_benchmark

        return crosshole_benchmark()
    if args.domain is None:
        raise ValueError("--data needs --domain x_min,x_max,z_min,z_max")
    from pinn.picks_csv import load_picks, parse_domain

    return load_picks(args.data, parse_domain(args.domain))


def run_baseline(args: argparse.Namespace) -> int:
    from pinnprov.settings import resolve

    settings = _settings(args)  # bad flags fail here, before PyGIMLi loads or data is solved
    out = resolve("--out", args.out, "PINNPROV_BASELINE_OUT", DEFAULT_OUT, Path)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out: {out} exists and is not a directory")
    data = _load_data(args)
    verbose = bool(args.verbose or args.baseline_verbose)

    from pinn.baseline_pygimli import invert

    print(f"inverting {data.picks} picks of {data.name} with PyGIMLi (lam={settings['lam']:g}) ...", file=sys.stderr)
    result = invert(data, verbose=verbose, **settings)
    written = _write_outputs(out, data, result)
    _print_result(data, result, written)
    return 0


def _write_outputs(out: Path, data: Any, result: Any) -> list[Path]:
    import numpy as np

    from pinn.benchmark import true_velocity
    from pinn.figures import VELOCITY_RANGE_M_S, benchmark_sensors, comparison_figure, grid_extent
    from pinn.scoring import is_benchmark

    out.mkdir(parents=True, exist_ok=True)
    written = [
        _atomic_npy(out / "velocity_pygimli.npy", result.velocity_grid),
        _atomic_npy(out / "grid_x.npy", result.grid_x),
        _atomic_npy(out / "grid_z.npy", result.grid_z),
    ]
    panels: list[tuple[str, Any, float | None]] = []
    if is_benchmark(data):
        panels.append(("True model", true_velocity(result.grid_x, result.grid_z), None))
        sensors: Any = benchmark_sensors()
        colour_range: Any = VELOCITY_RANGE_M_S
    else:
        sensors = (np.unique(data.sources, axis=0), np.unique(data.receivers, axis=0))
        colour_range = None  # fitted to the model: a user's velocities may lie anywhere
    panels.append(("PyGIMLi", result.velocity_grid, result.r2))
    extent = grid_extent(result.grid_x, result.grid_z)
    figure = comparison_figure(out / "comparison.png", panels, extent, sensors=sensors, velocity_range=colour_range)
    written.append(figure)
    summary = {
        "method": "pygimli",
        "dataset": dict(data.identity().__dict__),
        "noise_rms_s": data.noise_rms_s,
        **result.summary(),
        "files": [path.name for path in written] + ["result.json"],
    }
    written.append(_atomic_text(out / "result.json", json.dumps(summary, indent=2, default=_json_default) + "\n"))
    return written


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _atomic_text(path: Path, text: str) -> Path:
    return _atomic_write(path, lambda stream: stream.write(text.encode("utf-8")))


def _atomic_npy(path: Path, array: Any) -> Path:
    import numpy as np

    return _atomic_write(path, lambda stream: np.save(stream, array))


def _atomic_write(path: Path, write: Callable[[Any], object]) -> Path:
    """Temp file + rename: an interrupted run never leaves a half-written file where a good one was.

    The temp file is opened normally (not mkstemp) so the result gets the user's umask permissions.
    """
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        with temporary.open("wb") as stream:
            write(stream)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return path


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
