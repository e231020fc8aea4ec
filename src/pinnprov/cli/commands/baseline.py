"""`pinnprov baseline`: the classical reference, PyGIMLi traveltime tomography, on the benchmark or your picks.

Writes into --out (default runs/baseline, replacing an earlier baseline there): result.json (scores, misfit,
timing, every PyGIMLi setting and the data set's identity), velocity_pygimli.npy with grid_x.npy/grid_z.npy (the
cell centres, rows = depth), and comparison.png (true model beside PyGIMLi on the benchmark). Settings: flag,
then PINNPROV_BASELINE_* environment variable, then the documented default (lam=1000, no gradient start).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from pinnprov.experiments.baseline_run import DEFAULT_OUT

if TYPE_CHECKING:
    from pinnprov.cli.commands import Subparsers


def register(subparsers: Subparsers) -> None:
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
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from pinnprov.experiments.baseline_run import run_baseline

    return run_baseline(args)
