"""`pinnprov flush`: deliver spans that trainers spooled to disk because their collector was unreachable.

Trainers keep undeliverable spans in a spool ($PINNPROV_SPOOL_DIR or ~/.cache/pinnprov/spool, one folder
per process) and deliver them themselves on their next start; this command does it now, to a collector
(--endpoint, or OTEL_EXPORTER_OTLP_ENDPOINT) or straight into a store (--store). Spools of processes that
are still running are left to them. Exit status 0 when everything was delivered, 1 when some is left.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from opentelemetry.sdk.trace.export import SpanExporter

    from pinnprov.cli.commands import Subparsers


def register(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser("flush", help="deliver spans spooled by trainers that could not reach a collector",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spool", type=Path, metavar="DIR", help="spool folder (default $PINNPROV_SPOOL_DIR or "
                        "~/.cache/pinnprov/spool)")
    target = parser.add_mutually_exclusive_group()
    target.add_argument("--endpoint", metavar="URL", help="collector (default OTEL_EXPORTER_OTLP_ENDPOINT)")
    target.add_argument("--store", metavar="URL", help="write into this store directly instead")
    parser.add_argument("--protocol", choices=("grpc", "http/protobuf"), help="OTLP protocol (default from the URL)")
    parser.add_argument("--timeout", type=float, default=10.0, metavar="S", help="per-request timeout (default 10)")
    parser.set_defaults(handler=run)


def _exporter(args: argparse.Namespace) -> tuple[SpanExporter, str]:
    if args.store:
        from pinnprov.capture.embedded import EmbeddedExporter
        from pinnprov.collector.pipeline import Pipeline
        from pinnprov.collector.sinks import open_sink
        from pinnprov.core.urls import redact

        return EmbeddedExporter(Pipeline([open_sink(args.store)])), redact(args.store)
    from pinnprov.capture import otlp
    from pinnprov.capture.destination import resolve_destination

    destination = resolve_destination(args.endpoint, protocol=args.protocol)  # the trainers' own rules
    if destination is None:
        raise ValueError("no destination: give --endpoint URL or --store URL, or set OTEL_EXPORTER_OTLP_ENDPOINT")
    exporter = otlp.span_exporter(destination.endpoint, protocol=destination.protocol, headers=destination.headers,
                                  timeout_s=args.timeout, ca_file=destination.ca_file)
    return exporter, destination.endpoint


def run(args: argparse.Namespace) -> int:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
    from opentelemetry.sdk.trace.export import SpanExportResult

    from pinnprov.capture.otlp_decode import decode_spans
    from pinnprov.capture.spool_exporter import default_spool_dir, replay_directory

    root = args.spool if args.spool is not None else default_spool_dir()
    if not root.exists():
        raise FileNotFoundError(f"no spool at {root}")
    exporter, destination = _exporter(args)

    def deliver(payload: bytes) -> bool:
        spans = decode_spans(ExportTraceServiceRequest.FromString(payload))
        return exporter.export(spans) is SpanExportResult.SUCCESS

    try:
        report = replay_directory(root, deliver)
    finally:
        exporter.shutdown()
    busy = f"; {report.busy} spool(s) belong to running processes" if report.busy else ""
    if report.left:
        print(f"flushed {report.delivered} batch(es) to {destination}; {report.left} spool(s) in {root} not "
              f"delivered (is the destination up?){busy}")
        return 1
    print(f"flushed {report.delivered} batch(es) from {root} to {destination}{busy}")
    return 0
