"""`pinnprov compare EXPERIMENT`: Table 2 of an experiment and the loss curves of all its runs (Figure 3).

Reads the store only (the runs may still be training). Prints Table 2 and writes into --out (default
runs/<experiment>/compare): table2.csv and loss_curves.png (log-scale total loss against epoch, one line per run).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pinnprov.cli.commands import Subparsers


def register(subparsers: Subparsers) -> None:
    from pinnprov.cli.commands.query import STORE_HELP

    parser = subparsers.add_parser(
        "compare", help="Table 2 and loss curves of an experiment's runs", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("experiment", metavar="EXPERIMENT", help="experiment name (see `pinnprov runs`)")
    parser.add_argument("--store", metavar="URL", help=STORE_HELP)
    parser.add_argument("--out", type=Path, metavar="DIR", help="output folder (default runs/<experiment>/compare)")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from pinnprov.experiments.compare import loss_curves, loss_figure, table2, write_csv
    from pinnprov.experiments.storeview import StoreView
    from pinnprov.store.output import render

    view = StoreView(args.store)
    table = table2(view, args.experiment)  # unknown experiment: one-line error before anything is written
    out = args.out or Path("runs") / args.experiment / "compare"
    render(table.columns, table.rows, "table", sys.stdout)
    written = [write_csv(out / "table2.csv", table)]
    curves = loss_curves(view, args.experiment)
    if curves:
        written.append(loss_figure(out / "loss_curves.png", curves, f"Training loss, experiment {args.experiment}"))
    else:
        print("(no run has stored epochs yet: no loss curves)", file=sys.stderr)
    print(f"wrote {', '.join(str(path) for path in written)}")
    return 0
