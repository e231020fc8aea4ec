"""`pinnprov paper`: the paper's experiment end to end, into a report you can open in a browser.

A sweep of activations (tanh, sine, sigmoid, relu) x optimizers (adam, rmsprop) on the embedded store, the poor
RMSProp runs stopped at runtime by a standing rule over the experiment (L at the warm-up more than --steer-factor
times the median there, judged on every run), the PyGIMLi baseline, and a report:
report.html with Tables 1-3 (named queries against the store, also as CSV) and Figures 2-3 (PNG).

--quick runs tanh, sigmoid x adam, rmsprop for 8000 epochs (under two minutes on two cores). Any `pinnprov train`
flag is passed to every run (e.g. --config to shrink the networks for a smoke test).

Examples:
  pinnprov paper --quick --out runs/paper-quick
  pinnprov paper --out runs/paper            (the full study; see the report for its measured run time)
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pinnprov.cli.commands import Subparsers


def register(subparsers: Subparsers) -> None:
    from pinnprov.experiments.train_flags import add_train_flags

    parser = subparsers.add_parser(
        "paper", help="reproduce the paper's study and write its report", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="reduced grid and epochs (a few minutes)")
    parser.add_argument("--out", type=Path, required=True, metavar="DIR", help="report, tables, figures, runs")
    parser.add_argument("--store", metavar="URL", help="provenance store (default sqlite:///DIR/pinnprov.db)")
    parser.add_argument("--activation", metavar="LIST", help="override the activations (comma list)")
    parser.add_argument("--optimizer", metavar="LIST", help="override the optimizers (comma list)")
    parser.add_argument("--parallel", type=int, metavar="N", help="processes at once (default: available cores)")
    parser.add_argument("--steer-factor", type=float, metavar="F", help="stop an RMSProp run whose L at the warm-up "
                        "is more than F x the median L there of the experiment's runs (default 3)")
    parser.add_argument("--baseline-max-iter", metavar="N", help="PyGIMLi iterations at most (default 20)")
    parser.add_argument("--baseline-sec-nodes", metavar="N", help="PyGIMLi secondary nodes (default 3)")
    add_train_flags(parser, "`pinnprov train` flags for every run (--epochs overrides the study's epochs)")
    parser.set_defaults(handler=handle)


def plan_from(args: argparse.Namespace) -> Any:
    from pinnprov.experiments.grid import split_values
    from pinnprov.experiments.paper import (
        FULL_ACTIVATIONS,
        OPTIMIZERS,
        QUICK_ACTIVATIONS,
        QUICK_EPOCHS,
        STEER_FACTOR,
        PaperPlan,
        full_epochs,
    )
    from pinnprov.experiments.sweep import default_parallel, new_name_tag
    from pinnprov.experiments.train_flags import collect
    from pinnprov.store.access import sqlite_path

    epochs_text, args.epochs = args.epochs, None  # the study's own setting, not an axis
    try:
        epochs = int(epochs_text) if epochs_text is not None else (QUICK_EPOCHS if args.quick else full_epochs())
    except ValueError:
        raise ValueError(f"--epochs: invalid value {epochs_text!r}") from None
    if epochs < 1:
        raise ValueError(f"--epochs: must be at least 1, got {epochs}")
    activations = split_values("activation", args.activation) if args.activation else (
        QUICK_ACTIVATIONS if args.quick else FULL_ACTIVATIONS)
    optimizers = split_values("optimizer", args.optimizer) if args.optimizer else OPTIMIZERS
    extra_axes, fixed = collect(args)
    if args.parallel is not None and args.parallel < 1:
        raise ValueError(f"--parallel: must be at least 1, got {args.parallel}")
    if args.out.exists() and not args.out.is_dir():
        raise ValueError(f"--out: {args.out} exists and is not a directory")
    store = args.store or f"sqlite:///{args.out / 'pinnprov.db'}"
    if sqlite_path(store) is None and not store.startswith("monetdb://"):
        raise ValueError(f"--store: unsupported store URL {store!r} (sqlite:// or monetdb://)")
    baseline: list[str] = []
    for flag in ("--data", "--domain"):  # the baseline inverts the same picks as the runs
        if flag in fixed:
            baseline += [flag, fixed[fixed.index(flag) + 1]]
    for flag, value in (("--max-iter", args.baseline_max_iter), ("--sec-nodes", args.baseline_sec_nodes)):
        if value is not None:
            baseline += [flag, str(value)]
    configurations = len(activations) * len(optimizers)
    steer_factor = STEER_FACTOR if args.steer_factor is None else args.steer_factor
    if not steer_factor > 0:
        raise ValueError(f"--steer-factor: must be positive, got {args.steer_factor}")
    return PaperPlan(
        out=args.out, store=store, experiment=time.strftime("paper-%Y%m%d-%H%M%S"), quick=args.quick,
        epochs=epochs, activations=tuple(activations), optimizers=tuple(optimizers),
        parallel=args.parallel or default_parallel(configurations), train_args=tuple(fixed), extra_axes=extra_axes,
        baseline_args=tuple(baseline), name_tag=new_name_tag(), steer_factor=steer_factor,
    )


def handle(args: argparse.Namespace) -> int:
    from pinnprov.experiments.paper import run_study
    from pinnprov.experiments.paper_report import build_report

    plan = plan_from(args)
    plan.out.mkdir(parents=True, exist_ok=True)

    def echo(line: str) -> None:
        print(line, flush=True)  # progress lines appear as they happen

    echo(f"paper study {plan.experiment}: {len(plan.points())} runs x {plan.epochs} epochs, {plan.parallel} at a "
         f"time, store {plan.store}, out {plan.out}")
    outcome = run_study(plan, echo)
    report = build_report(outcome, "pinnprov " + " ".join(shlex.quote(a) for a in sys.argv[1:]))
    failed = [run for run in outcome.runs if run.status in ("failed", "unknown")]
    echo(f"report: {report} ({outcome.wall_s:.0f} s)")
    for run in failed:
        print(f"{run.run_name}: {run.status}: {run.error}", file=sys.stderr)
    return 1 if failed or outcome.baseline_error else 0
