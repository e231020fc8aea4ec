"""`pinnprov alerts`: the alert rules that fired, from the provenance store; `--check-rules` validates a config.

Examples:
  pinnprov alerts                                   every firing, oldest first
  pinnprov alerts --run latest --format json        one run's firings
  pinnprov alerts --rule loss-high-late --limit 20  the 20 newest firings of one rule
  pinnprov alerts --check-rules collector.yaml      validate the `rules:` of a collector config, then exit
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pinnprov.cli.commands import Subparsers

HIDDEN = ("alert_id",)


def register(subparsers: Subparsers) -> None:
    from pinnprov.cli.commands.query import add_store_arguments

    parser = subparsers.add_parser("alerts", help="list alert-rule firings, or check alert rules",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_store_arguments(parser)
    parser.add_argument("--run", help="run name, run id, a prefix of either, or 'latest' (default: all runs)")
    parser.add_argument("--rule", help="only firings of this rule")
    parser.add_argument("--limit", type=int, metavar="N", help="only the newest N firings")
    parser.add_argument("--check-rules", metavar="FILE",
                        help="validate the alert rules in FILE (YAML with a `rules:` list) and exit")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    if args.check_rules:
        from pinnprov.collector.alerts import load_rules_file

        rules = load_rules_file(args.check_rules)
        for rule in rules:
            actions = ", ".join(action.kind for action in rule.actions) or "record only"
            print(f"ok  {rule.name}: {rule.kind} on {rule.metric} ({rule.scope.describe()}; actions: {actions})")
        print(f"{len(rules)} rule(s) valid")
        return 0
    from pinnprov.store.access import open_store
    from pinnprov.store.alert_history import alert_history
    from pinnprov.store.output import render
    from pinnprov.store.run_select import resolve_run

    with open_store(args.store) as store:
        run_id = resolve_run(store, args.run) if args.run else None
        result = alert_history(store, run_id=run_id, rule=args.rule, limit=args.limit)
    keep = [i for i, name in enumerate(result.columns) if name not in HIDDEN]
    columns = [result.columns[i] for i in keep]
    rows = [[row[i] for i in keep] for row in result.rows]
    render(columns, rows, args.format, sys.stdout)
    return 0
