"""`pinnprov sweep`: train a grid of configurations in parallel processes into one store, one experiment.

Every train flag takes a comma-separated list; the grid is the cartesian product of the lists (--activation
and --optimizer always label the runs). Each configuration is one `pinnprov train` process pinned to one
TensorFlow thread; progress lines come from the store; a crashed configuration is marked failed with its error
and the others go on. At the end: Table 2 of the experiment (the `latest` query).

Examples:
  pinnprov sweep --activation tanh,sigmoid --optimizer adam,rmsprop --epochs 5000
  pinnprov sweep --activation tanh --optimizer adam --lr 1e-3,3e-4 --parallel 2 --experiment lr-study
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any


def register(subparsers: Any) -> None:
    from experiments.train_flags import add_train_flags
    from pinnprov.commands.query import STORE_HELP

    parser = subparsers.add_parser(
        "sweep", help="train a grid of configurations in parallel", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    grid = parser.add_argument_group("grid (comma-separated lists)")
    grid.add_argument("--activation", default="tanh", help="e.g. tanh,sine,sigmoid,relu (default tanh)")
    grid.add_argument("--optimizer", default="adam", help="e.g. adam,rmsprop (default adam)")
    add_train_flags(parser, "any `pinnprov train` flag (a comma list makes it a grid axis)")
    run = parser.add_argument_group("sweep")
    run.add_argument("--parallel", type=int, metavar="N", help="processes at once (default: available cores)")
    run.add_argument("--experiment", help="experiment name for every run (default sweep-<date>-<time>)")
    run.add_argument("--out", type=Path, metavar="DIR", help="outputs and logs (default runs/<experiment>)")
    run.add_argument("--store", metavar="URL", help=STORE_HELP)
    run.add_argument("--otlp-endpoint", metavar="URL", help="runs send OTLP to this collector (--store then "
                                                            "names the store behind it, for progress)")
    parser.set_defaults(handler=handle)


def build_axes(args: argparse.Namespace) -> tuple[dict[str, str], list[str]]:
    """(axes: flag -> comma list, fixed train args): activation and optimizer first, then train's flag order."""
    from experiments.train_flags import collect

    extra, fixed = collect(args)
    return {"activation": args.activation, "optimizer": args.optimizer, **extra}, fixed


def handle(args: argparse.Namespace) -> int:
    from collector.output import render
    from contract.settings import resolve_store_url
    from experiments.grid import expand
    from experiments.storeview import StoreView
    from experiments.sweep import Sweep, SweepSpec, default_parallel, new_name_tag

    axes, fixed = build_axes(args)
    points = expand(axes, fixed)
    if args.parallel is not None and args.parallel < 1:
        raise ValueError(f"--parallel: must be at least 1, got {args.parallel}")
    experiment = args.experiment or time.strftime("sweep-%Y%m%d-%H%M%S")
    if not experiment.strip():
        raise ValueError("--experiment: must not be empty")
    store = resolve_store_url(args.store)
    out = args.out or Path("runs") / experiment
    spec = SweepSpec(
        experiment=experiment, points=points, store=store, out_dir=out,
        parallel=args.parallel or default_parallel(len(points)), otlp_endpoint=args.otlp_endpoint,
        name_tag=new_name_tag(),
    )
    print(f"sweep {experiment}: {len(points)} configuration(s), {spec.parallel} at a time, store {store}, out {out}")
    runs = Sweep(spec, StoreView(store), echo=lambda line: print(line, flush=True)).run()
    print()
    try:
        table = StoreView(store).query("latest", experiment=experiment)
        render(table.columns, table.rows, "table", sys.stdout)
    except FileNotFoundError:
        print("(no run reached the store)")
    failed = [run for run in runs if run.status in ("failed", "unknown")]
    for run in failed:
        print(f"{run.run_name}: {run.status}: {run.error}", file=sys.stderr)
    return 1 if failed else 0
