"""`pinnprov ui`: watch and steer training in a browser; a local web app over the provenance store.

Prints a URL with a random token (needed by every request; keep it private). Pages: Runs (live), a run (loss
curves, learning rate, epoch time, adaptations, Table 1, alerts, PROV download, steering), Compare an
experiment (Figure 3, Tables 2 and 3). Reads only through the named queries; steering goes through the same
channel as `pinnprov steer`, recorded with you (user:<login>) as the agent.

Examples:
  pinnprov ui --store sqlite:///runs/demo/pinnprov.db
  pinnprov ui --store monetdb://monetdb:monetdb@db-node:50000/prov --port 8765
  pinnprov ui --host 0.0.0.0 --certfile cert.pem --keyfile key.pem      (reachable from other machines, TLS)
"""

from __future__ import annotations

import argparse
import sys
from typing import Any


def register(subparsers: Any) -> None:
    from pinnprov.cli.commands.query import STORE_HELP

    parser = subparsers.add_parser("ui", help="watch and steer training in a browser (local web app)",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--store", metavar="URL", help=STORE_HELP)
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1, loopback)")
    parser.add_argument("--port", type=int, metavar="P",
                        help="port (default 8765, or any free port if taken; 0 = any free port)")
    parser.add_argument("--certfile", metavar="PEM", help="TLS certificate (with --keyfile): serve https")
    parser.add_argument("--keyfile", metavar="PEM", help="TLS private key")
    parser.add_argument("--allow-insecure-remote", action="store_true",
                        help="allow a non-loopback --host without TLS (the token travels in clear text)")
    parser.add_argument("--allow-host", action="append", default=[], metavar="NAME",
                        help="also accept this Host header (a name the server is reached by); repeatable")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from pinnprov.core.steering import user_agent
    from pinnprov.ui.app import UiConfig, create_app
    from pinnprov.ui.security import Guard, new_token
    from pinnprov.ui.server import allowed_hosts, bind, check_exposure, serve_forever, url_for
    from pinnprov.ui.stores import ReadStores

    if (args.certfile is None) != (args.keyfile is None):
        raise ValueError("--certfile and --keyfile go together")
    if args.port is not None and not 0 <= args.port <= 65535:
        raise ValueError(f"--port must be in [0, 65535], got {args.port}")
    tls = args.certfile is not None
    check_exposure(args.host, tls=tls, allow_insecure_remote=args.allow_insecure_remote)
    stores = ReadStores(args.store)  # --store, else $PINNPROV_STORE, else the default
    note = _check_store(stores)  # an unreachable MonetDB or a bad URL: one line now, not a blank page later
    sock = bind(args.host, args.port)
    port = sock.getsockname()[1]
    guard = Guard(new_token(), allowed_hosts(args.host, tuple(args.allow_host)), port, secure=tls)
    app = create_app(UiConfig(store_url=args.store, guard=guard, agent=user_agent()))
    print(f"pinnprov ui: store {stores.label} (read-only; steering as {user_agent()} through its steering commands)")
    if note:
        print(f"pinnprov ui: {note}")
    print(f"pinnprov ui: open {url_for(args.host, port, guard.token, tls=tls)}", flush=True)
    print("pinnprov ui: Ctrl-C stops it", file=sys.stderr, flush=True)
    serve_forever(app, sock, certfile=args.certfile, keyfile=args.keyfile)
    return 0


def _check_store(stores: Any) -> str:
    """'' if the store opens; a note if it does not exist yet (pages fill in once training creates it)."""
    try:
        with stores.read():
            return ""
    except FileNotFoundError as error:
        return f"{str(error).splitlines()[0]}; the pages show it once a training writes it"
