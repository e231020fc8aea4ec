"""`pinnprov export-prov RUN`: one run's provenance as a W3C PROV document (PROV-JSON or PROV-N)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pinnprov.cli.commands import Subparsers


def register(subparsers: Subparsers) -> None:
    from pinnprov.cli.commands.query import STORE_HELP

    parser = subparsers.add_parser("export-prov", help="export a run as a W3C PROV document", description=__doc__)
    parser.add_argument("run", metavar="RUN", help="run name, run id, a prefix of either, or 'latest'")
    parser.add_argument("--store", metavar="URL", help=STORE_HELP)
    parser.add_argument(
        "--format", choices=("json", "provn"), default="json", help="PROV-JSON or PROV-N (default json)"
    )
    parser.add_argument("--out", metavar="FILE", help="write to FILE instead of standard output")
    parser.add_argument("--every", type=int, metavar="K", help="only epochs divisible by K (large runs)")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from pinnprov.store.access import open_store
    from pinnprov.store.prov_export import export_run
    from pinnprov.store.run_select import resolve_run

    if args.every is not None and args.every < 1:
        raise ValueError(f"--every must be >= 1, got {args.every}")
    with open_store(args.store) as store:
        run_id = resolve_run(store, args.run)
        text = export_run(store, run_id, args.format, every=args.every)
    if args.out:
        out = Path(args.out)
        tmp = out.with_name(out.name + ".tmp")
        tmp.write_text(text if text.endswith("\n") else text + "\n", encoding="utf-8")
        tmp.replace(out)  # never leave a half-written document behind
    else:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
    return 0
