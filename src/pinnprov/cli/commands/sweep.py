"""`pinnprov sweep`: train a grid of configurations in parallel processes into one store, one experiment.

Every train flag takes a comma-separated list; the grid is the cartesian product of the lists (--activation
and --optimizer always label the runs). Each configuration is one `pinnprov train` process pinned to one
TensorFlow thread; progress lines come from the store; a crashed configuration is marked failed with its error
and the others go on. At the end: Table 2 of the experiment (the `latest` query).

With --scheduler the configurations are Dask tasks instead, each needing one GPU (or --resource CPU) of a
worker: workers pull the next one when free; a configuration whose worker is lost is marked failed and trained
again elsewhere as a new run linked to the failed one (`SELECT * FROM was_informed_by`).

Examples:
  pinnprov sweep --activation tanh,sigmoid --optimizer adam,rmsprop --epochs 5000
  pinnprov sweep --activation tanh --optimizer adam --lr 1e-3,3e-4 --parallel 2 --experiment lr-study
  pinnprov sweep --activation tanh,relu --optimizer adam,rmsprop --scheduler tcp://127.0.0.1:8786 --resource CPU
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def register(subparsers: Any) -> None:
    from pinnprov.cli.commands.query import STORE_HELP
    from pinnprov.experiments.train_flags import add_train_flags

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
    cluster = parser.add_argument_group("Dask cluster (instead of local processes)")
    cluster.add_argument("--scheduler", metavar="tcp://HOST:8786",
                         help="submit one task per configuration to this Dask scheduler (tls://... with --tls-*)")
    cluster.add_argument("--resource", choices=("GPU", "CPU"), default="GPU",
                         help="worker resource each run needs, one unit (default GPU)")
    cluster.add_argument("--max-retries", type=int, default=2, metavar="N",
                         help="new attempts of a configuration whose worker was lost (default 2)")
    cluster.add_argument("--tls-ca-file", metavar="PEM", help="CA of the cluster's certificates (tls://)")
    cluster.add_argument("--tls-cert", metavar="PEM", help="client certificate signed by that CA (tls://)")
    cluster.add_argument("--tls-key", metavar="PEM", help="its private key (tls://)")
    parser.set_defaults(handler=handle)


def build_axes(args: argparse.Namespace) -> tuple[dict[str, str], list[str]]:
    """(axes: flag -> comma list, fixed train args): activation and optimizer first, then train's flag order."""
    from pinnprov.experiments.train_flags import collect

    extra, fixed = collect(args)
    return {"activation": args.activation, "optimizer": args.optimizer, **extra}, fixed


def handle(args: argparse.Namespace) -> int:
    from pinnprov.core.settings import resolve_store_url
    from pinnprov.experiments.grid import expand
    from pinnprov.experiments.storeview import StoreView
    from pinnprov.experiments.sweep import Sweep, SweepSpec, default_parallel, new_name_tag
    from pinnprov.store.output import render

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
    echo = lambda line: print(line, flush=True)  # noqa: E731 - progress lines appear as they happen
    if args.scheduler:
        runs = _run_on_dask(args, spec, echo)
    else:
        print(f"sweep {experiment}: {len(points)} configuration(s), {spec.parallel} at a time, store {store}, "
              f"out {out}")
        runs = Sweep(spec, StoreView(store), echo=echo).run()
    print()
    try:
        table = StoreView(store).query("latest", experiment=experiment)
        render(table.columns, table.rows, "table", sys.stdout)
    except FileNotFoundError:
        print("(no run reached the store)")
    failed = [run for run in runs if run.status in ("failed", "unknown")]
    for run in runs:
        for attempt in run.attempts:
            print(f"{attempt.run_name}: failed (retried as a new run): {attempt.error}", file=sys.stderr)
    for run in failed:
        print(f"{run.run_name}: {run.status}: {run.error}", file=sys.stderr)
    return 1 if failed else 0


def _run_on_dask(args: argparse.Namespace, spec: Any, echo: Callable[[str], None]) -> list[Any]:
    """The sweep's configurations as Dask tasks; workers pull them as they become free."""
    from pinnprov.experiments.dask_client import TlsFiles, connect, offered
    from pinnprov.experiments.dask_sweep import DaskSweep
    from pinnprov.experiments.storeview import StoreView

    if args.parallel is not None:
        raise ValueError("--parallel: not with --scheduler (the workers' resources decide how many run at once)")
    if args.max_retries < 0:
        raise ValueError(f"--max-retries: must be at least 0, got {args.max_retries}")
    client = connect(args.scheduler, TlsFiles(args.tls_ca_file or "", args.tls_cert or "", args.tls_key or ""))
    try:
        workers, units = offered(client, args.resource)
        echo(f"sweep {spec.experiment}: {len(spec.points)} configuration(s) on {args.scheduler} ({workers} "
             f"worker(s), {units} x {args.resource} now), store {spec.store}, out {spec.out_dir}")
        if units == 0:
            echo(f"(no worker offers {args.resource} yet: the tasks wait for one; start workers with "
                 f"`dask worker {args.scheduler} --nthreads 1 --resources {args.resource}=1`)")
        return DaskSweep(spec, StoreView(spec.store), client, resource=args.resource, max_retries=args.max_retries,
                         echo=echo).run()
    finally:
        client.close()
