"""`pinnprov lineage FILE`: which run, data set, settings and steering produced this file.

The file is hashed (SHA-256) and looked up among the files runs recorded as PROV entities (networks,
checkpoints, velocity grids, figures, result.json, baseline outputs, files logged with `log_artifact`), so a
copy or a renamed file is found too. Prints the run, its data set (name, sha256), hyperparameters, every
adaptation with its agent and reason, the pinnprov version and source revision, host and device, and the runs
it continues (resumed from, retry of); `--format prov-json` prints the PROV-JSON document instead. A file no
run in the store produced: one line and exit status 1.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pinnprov.cli.commands import Subparsers

EXIT_NOT_FOUND = 1


def register(subparsers: Subparsers) -> None:
    from pinnprov.cli.commands.query import STORE_HELP
    from pinnprov.store.lineage import LINEAGE_FORMATS

    parser = subparsers.add_parser("lineage", help="walk from a file back to the run, data and steering that made it",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("file", metavar="FILE", type=Path, help="a file a run wrote (or a copy of it)")
    parser.add_argument("--store", metavar="URL", help=STORE_HELP)
    parser.add_argument("--format", choices=LINEAGE_FORMATS, default="text", help="text (default) or prov-json")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from pinnprov.store.access import open_store
    from pinnprov.store.lineage import lineage_of_file, render, to_prov_json

    if not args.file.is_file():
        raise ValueError(f"{args.file}: no such file")
    with open_store(args.store) as store:
        found = lineage_of_file(store, args.file)
        if found is None:
            print(f"pinnprov lineage: {args.file}: no run in {store.url} produced a file with this content",
                  file=sys.stderr)
            return EXIT_NOT_FOUND
        text = to_prov_json(store, found) if args.format == "prov-json" else render(found, str(args.file))
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
    return 0
