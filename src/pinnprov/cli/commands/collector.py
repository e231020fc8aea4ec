"""`pinnprov collector`: run the OTLP collector (gRPC :4317, HTTP :4318) writing PROV to one or more stores.

Any OpenTelemetry SDK or upstream OpenTelemetry Collector can export to it; `pinnprov train --otlp-endpoint`
does. Settings: flags, then --config FILE (YAML or TOML), then PINNPROV_COLLECTOR_* variables, then defaults.
The bearer token is read from the config file (token / token_file) or PINNPROV_COLLECTOR_TOKEN, never from
the command line. Listening on a non-loopback address requires a token.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pinnprov.cli.commands import Subparsers

_FLAGS = ("grpc_endpoint", "http_endpoint", "spool_dir", "tls_cert_file", "tls_key_file", "max_request_bytes",
          "max_spool_bytes", "fsync", "batch_max_requests", "batch_linger_s", "retry_max_s", "log_interval_s",
          "workers")


def register(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser("collector", help="run the OTLP collector service",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, metavar="FILE", help="YAML or TOML file of collector settings")
    parser.add_argument("--grpc-endpoint", metavar="HOST:PORT", help="OTLP/gRPC listen address "
                        "(default 127.0.0.1:4317; 'off' disables)")
    parser.add_argument("--http-endpoint", metavar="HOST:PORT", help="OTLP/HTTP, /healthz and /metrics-json "
                        "(default 127.0.0.1:4318; 'off' disables)")
    parser.add_argument("--store", action="append", metavar="URL", dest="stores",
                        help="store to write (repeat for several): sqlite:///file.db, monetdb://user:pw@host:port/db"
                        " (default $PINNPROV_STORE or sqlite:///pinnprov.db)")
    parser.add_argument("--spool-dir", metavar="DIR", help="durable spool (default ~/.local/state/pinnprov/"
                        "collector-spool)")
    parser.add_argument("--tls-cert-file", metavar="PEM", help="serve TLS with this certificate (needs --tls-key-file)")
    parser.add_argument("--tls-key-file", metavar="PEM", help="private key of --tls-cert-file")
    parser.add_argument("--max-request-bytes", metavar="N", help="largest accepted request (default 16 MiB)")
    parser.add_argument("--max-spool-bytes", metavar="N", help="undelivered bytes before refusing (default 1 GiB)")
    parser.add_argument("--fsync", action=argparse.BooleanOptionalAction, default=None,
                        help="fsync every spooled request before acknowledging (default on)")
    parser.add_argument("--batch-max-requests", metavar="N", help="spooled requests merged per sink write")
    parser.add_argument("--batch-linger-s", metavar="S", help="wait for more requests before a small write")
    parser.add_argument("--retry-max-s", metavar="S", help="longest backoff between retries of a store")
    parser.add_argument("--log-interval-s", metavar="S", help="self-metrics log period (0: off; default 60)")
    parser.add_argument("--workers", metavar="N", help="gRPC handler threads (default 8)")
    parser.add_argument("--rules-file", metavar="FILE", help="alert rules (YAML: a list, or `rules:` of a file)")
    parser.add_argument("--ready-file", type=Path, metavar="FILE",
                        help="write the bound endpoints as JSON here once listening (for scripts and tests)")
    parser.add_argument("--check-config", action="store_true",
                        help="print the effective settings (token redacted) and exit")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from pinnprov.collector.config import load_config

    overrides: dict[str, Any] = {name: getattr(args, name) for name in _FLAGS if getattr(args, name) is not None}
    if args.stores:
        overrides["stores"] = args.stores
    if args.rules_file:
        overrides["rules_file"] = args.rules_file
    config = load_config(args.config, overrides)
    if args.check_config:
        from dataclasses import asdict

        from pinnprov.core.urls import redact

        settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(config).items()}
        settings["token"] = "***" if config.token else ""
        settings["stores"] = [redact(url) for url in config.stores]
        settings["rules"] = [rule.name for rule in config.rules]
        print(json.dumps(settings, indent=2, sort_keys=True))
        return 0
    # The service logs its own progress (listening, sink outages, periodic counts) even without -v.
    logging.getLogger("pinnprov.collector").setLevel(logging.INFO)
    from pinnprov.collector.service import CollectorService

    try:
        service = CollectorService(config)
        service.run_forever(args.ready_file)
    except OSError as error:  # a port in use, an unwritable spool: one line, not a traceback
        raise ValueError(str(error)) from None
    return 0
