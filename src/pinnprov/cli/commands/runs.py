"""`pinnprov runs`: list the runs in a store (the named query `runs`), oldest first."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pinnprov.cli.commands import Subparsers


def register(subparsers: Subparsers) -> None:
    from pinnprov.cli.commands.query import add_store_arguments

    parser = subparsers.add_parser("runs", help="list the runs in a provenance store", description=__doc__)
    add_store_arguments(parser)
    parser.add_argument("--experiment", help="only runs of this experiment")
    parser.add_argument("--status", help="only runs with this status (running, completed, stopped, failed)")
    parser.add_argument("--limit", type=int, metavar="N", help="only the newest N runs")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from pinnprov.cli.commands.query import run_named

    return run_named(args, "runs")
