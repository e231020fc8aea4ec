"""`pinnprov query NAME ...` runs a named query; `pinnprov query --sql "..."` runs read-only SQL.

Examples:
  pinnprov query epochs --run latest --every 1000      (Table 1)
  pinnprov query latest --experiment sweep-1           (Table 2)
  pinnprov query lr                                    (Table 3)
  pinnprov query adaptations --run run-003
  pinnprov query --sql "SELECT run_name, status FROM run" --format csv
"""

from __future__ import annotations

import argparse
import re
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pinnprov.cli.commands import Subparsers

STORE_HELP = (
    "store URL: sqlite:///path.db, sqlite:////abs/path.db, a file path or monetdb://user:pw@host:port/db "
    "(default: $PINNPROV_STORE, else sqlite:///pinnprov.db)"
)


def add_store_arguments(parser: argparse.ArgumentParser, *, suppress_defaults: bool = False) -> None:
    """--store and --format; with suppress_defaults the flags only set values when given (for subparsers)."""
    default = argparse.SUPPRESS if suppress_defaults else None
    parser.add_argument("--store", metavar="URL", default=default, help=STORE_HELP)
    parser.add_argument(
        "--format",
        choices=("table", "csv", "json"),
        default=argparse.SUPPRESS if suppress_defaults else "table",
        help="output format (default: table)",
    )


def register(subparsers: Subparsers) -> None:
    from pinnprov.store.queries import QUERIES

    parser = subparsers.add_parser(
        "query",
        help="run a named provenance query or read-only SQL",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_store_arguments(parser)
    parser.add_argument("--sql", metavar="SQL", help="run one read-only SQL statement (SELECT/WITH/VALUES/EXPLAIN)")
    parser.set_defaults(handler=handle, query_name=None)
    names = parser.add_subparsers(dest="query_name", metavar="NAME", required=False)
    for name in QUERIES:
        query = QUERIES.get(name)
        sub = names.add_parser(name, help=query.description, description=query.description)
        add_store_arguments(sub, suppress_defaults=True)
        if "run_id" in query.options and not query.needs_run:
            sub.add_argument("--run", default=None, help="only this run: run name, run id, a prefix, or 'latest'")
        elif "run_id" in query.options:
            sub.add_argument(
                "--run", default="latest", help="run name, run id, a prefix of either, or 'latest' (default: latest)"
            )
        if "name" in query.options:
            sub.add_argument("--name", help="only this metric (a name ending in '.' is a prefix, e.g. system.)")
        if "every" in query.options:
            sub.add_argument("--every", type=int, metavar="K", help="only epochs divisible by K")
        if "last" in query.options:
            sub.add_argument("--last", type=int, metavar="N", help="only the last N (selected) epochs")
        if "from_epoch" in query.options:
            sub.add_argument("--from", dest="from_epoch", type=int, metavar="EPOCH", help="first epoch")
        if "to_epoch" in query.options:
            sub.add_argument("--to", dest="to_epoch", type=int, metavar="EPOCH", help="last epoch")
        if "buckets" in query.options:
            sub.add_argument("--buckets", type=int, metavar="B", help="epoch buckets between the first and last epoch")
        if "experiment" in query.options:
            sub.add_argument("--experiment", help="only runs of this experiment")
        if "status" in query.options:
            sub.add_argument("--status", help="only runs with this status (running, completed, stopped, failed)")
        if "limit" in query.options:
            sub.add_argument("--limit", type=int, metavar="N", help="only the newest N runs")


def options_from(args: argparse.Namespace, run_id: str | None) -> Any:
    from pinnprov.store.queries import QueryOptions

    return QueryOptions(
        run_id=run_id,
        every=getattr(args, "every", None),
        last=getattr(args, "last", None),
        from_epoch=getattr(args, "from_epoch", None),
        to_epoch=getattr(args, "to_epoch", None),
        experiment=getattr(args, "experiment", None),
        status=getattr(args, "status", None),
        limit=getattr(args, "limit", None),
        buckets=getattr(args, "buckets", None),
        name=getattr(args, "name", None),
    )


def _run_of(store: Any, wanted: str | None, needed: bool) -> str | None:
    """--run as a run id; a full run id that no run row names (a metrics-only client) is taken as it is."""
    from pinnprov.store.run_select import resolve_run

    if not (needed or wanted):
        return None
    try:
        return str(resolve_run(store, wanted or "latest"))
    except ValueError:
        if wanted and re.fullmatch(r"[0-9a-f]{32}", wanted):
            return wanted
        raise


def run_named(args: argparse.Namespace, name: str) -> int:
    """Open the store, resolve --run, run the named query, print it."""
    from pinnprov.store.access import open_store
    from pinnprov.store.output import render
    from pinnprov.store.queries import QUERIES, run_query

    query = QUERIES.get(name)
    with open_store(args.store) as store:
        wanted = getattr(args, "run", None)
        run_id = _run_of(store, wanted, query.needs_run)
        result = run_query(store, name, options_from(args, run_id))
    render(result.columns, result.rows, args.format, sys.stdout)
    return 0


def handle(args: argparse.Namespace) -> int:
    from pinnprov.store.access import open_store
    from pinnprov.store.output import render

    if args.sql is not None and args.query_name is not None:
        raise ValueError(f"give either a query name ({args.query_name}) or --sql, not both")
    if args.sql is not None:
        with open_store(args.store) as store:
            result = store.execute(args.sql, user_sql=True)
        render(result.columns, result.rows, args.format, sys.stdout)
        return 0
    if args.query_name is None:
        from pinnprov.store.queries import QUERIES

        raise ValueError(f"name a query ({', '.join(QUERIES.names())}) or give --sql")
    return run_named(args, args.query_name)
