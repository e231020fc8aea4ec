"""Wires provenance capture into a training process: where spans go, and a bounded flush at the end.

Destinations (decided once, before training starts, so a bad setting fails fast with one clear line):
- no OTLP endpoint anywhere (argument, OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, OTEL_EXPORTER_OTLP_ENDPOINT):
  the *embedded* default, an in-process collector pipeline writing the store (PINNPROV_STORE or the
  default SQLite file), reached through the same OTLP encoding a network collector would receive;
- an endpoint: OTLP over gRPC (or HTTP/protobuf) to a collector, plus OTLP metrics;
- an explicit `store` *and* an endpoint: both (a local copy next to the central collector).

Export is asynchronous (BatchSpanProcessor threads); the training thread only creates spans. Every
destination is wrapped in a disk spool (instrumentation.spool_exporter; on by default, PINNPROV_SPOOL=0 turns
it off): a batch the destination refuses (collector down, store locked) is kept on disk and replayed in the
background, on the next start, or by `pinnprov flush`. On exit the providers are flushed and shut down within
`shutdown_timeout_s`, so a dead collector delays the trainer's exit by at most that long.

Spool layout: <spool root>/<kind>-<sha256(destination)[:12]>/<host>-<pid>-<id>/ — one root per destination, so
a later capture to the same destination adopts exactly the spools meant for it.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from contract.settings import parse_bool, resolve
from pinn.observer import TrainingObserver
from pinn.steering import CommandSource

if TYPE_CHECKING:
    from instrumentation.steering_poller import StoreCommandSource

log = logging.getLogger("pinnprov.capture")

CAPTURE_ENV = "PINNPROV_CAPTURE"
SHUTDOWN_TIMEOUT_ENV = "PINNPROV_CAPTURE_SHUTDOWN_TIMEOUT"
SPOOL_ENV = "PINNPROV_SPOOL"
TIMEOUT_ENVS = ("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "OTEL_EXPORTER_OTLP_TIMEOUT")
DEFAULT_EXPORT_TIMEOUT_S = 3.0
TOKEN_ENV = "PINNPROV_COLLECTOR_TOKEN"
HEADER_ENVS = ("OTEL_EXPORTER_OTLP_HEADERS", "OTEL_EXPORTER_OTLP_TRACES_HEADERS")
NETWORK_SHUTDOWN_TIMEOUT_S = 5.0  # a collector that is down must not hold the trainer's exit for long
LOCAL_SHUTDOWN_TIMEOUT_S = 30.0  # the local store is on this machine: finishing its writes is worth waiting for


@dataclass
class CaptureStats:
    """Filled in when the capture closes: what was emitted, delivered, dropped (pass one to `open_capture`)."""

    destinations: list[str] = field(default_factory=list)  # e.g. ["sqlite:///pinnprov.db", "otlp+grpc://..."]
    spans_ended: int = 0
    exported: dict[str, int] = field(default_factory=dict)  # per destination: spans delivered or kept in the spool
    failed: dict[str, int] = field(default_factory=dict)  # per destination: spans whose export failed
    dropped: dict[str, int] = field(default_factory=dict)  # per destination: spans that never reached export
    closed_in_time: bool = True


def _store_sink(url: str) -> object:
    """The sink for a store URL, built exactly as the collector service builds its sinks."""
    from collector.sinks import open_sink

    return open_sink(url)


def _with_spool(exporter: object, destination: str, root: Path | None) -> object:
    """Wrap in the disk-spooling exporter, one spool root per destination.

    Why per destination: a spooling exporter adopts and replays spools that dead processes left under its
    root, so spans meant for the SQLite file must never sit where the OTLP exporter would pick them up.
    """
    if root is None:
        return exporter
    from instrumentation.spool_exporter import SpoolingSpanExporter

    kind = destination.split(":", 1)[0].split("+", 1)[0] or "store"
    digest = hashlib.sha256(destination.encode()).hexdigest()[:12]
    return SpoolingSpanExporter(exporter, Path(root) / f"{kind}-{digest}")


def _token_headers() -> dict[str, str] | None:
    """The collector's bearer token as a header, unless OTLP headers are configured (same rule as `pinnprov flush`)."""
    token = os.environ.get(TOKEN_ENV, "").strip()
    if not token or any(os.environ.get(name, "").strip() for name in HEADER_ENVS):
        return None
    return {"authorization": f"Bearer {token}"}


def _export_timeout(explicit: float | None) -> float | None:
    """Seconds one OTLP export may take. None lets the SDK read OTEL_EXPORTER_OTLP[_TRACES]_TIMEOUT.

    pinnprov's default (3 s, the SDK's is 10 s) keeps a dead collector's failure, and so the hand-over to the
    spool, well inside the bounded shutdown.
    """
    if explicit is not None:
        if explicit <= 0:
            raise ValueError(f"export_timeout_s: must be positive, got {explicit!r}")
        return float(explicit)
    if any(os.environ.get(name, "").strip() for name in TIMEOUT_ENVS):
        return None
    return DEFAULT_EXPORT_TIMEOUT_S


@contextmanager
def open_capture(
    *,
    store: str | None = None,
    otlp_endpoint: str | None = None,
    capture_every: int | None = None,
    enabled: bool | None = None,
    service_name: str | None = None,
    protocol: str | None = None,
    headers: str | Mapping[str, str] | None = None,
    schedule_delay_ms: float | None = None,
    shutdown_timeout_s: float | None = None,
    spool: bool | None = None,
    spool_dir: Path | None = None,
    export_timeout_s: float | None = None,
    set_global: bool = False,
    stats: CaptureStats | None = None,
) -> Iterator[list[TrainingObserver]]:
    """Yield the provenance observers for one training process; flush and shut them down on exit.

    Precedence for every argument: explicit > environment (PINNPROV_STORE, PINNPROV_CAPTURE,
    PINNPROV_CAPTURE_EVERY, PINNPROV_CAPTURE_SHUTDOWN_TIMEOUT, PINNPROV_SPOOL, PINNPROV_SPOOL_DIR, OTEL_*)
    > default. Raises ValueError for a bad setting before anything starts.
    """
    if not resolve("enabled", enabled, CAPTURE_ENV, True, parse_bool):
        yield []
        return
    from instrumentation import otlp
    from instrumentation.observer import ProvenanceObserver
    from instrumentation.provider import (
        DeliveryCounter,
        batch_processor,
        build_meter_provider,
        build_tracer_provider,
        shutdown_within,
    )
    from instrumentation.resource import build_resource
    from instrumentation.sampling import parse_capture_every

    every = parse_capture_every(capture_every)
    endpoint = otlp.traces_endpoint(otlp_endpoint)
    if store is None and not endpoint:
        from contract.settings import resolve_store_url

        store = resolve_store_url(None)  # $PINNPROV_STORE, else the default SQLite file
    store_url = store
    if store_url is not None and not store_url.strip():
        raise ValueError("store: must not be empty")
    timeout_default = NETWORK_SHUTDOWN_TIMEOUT_S if endpoint else LOCAL_SHUTDOWN_TIMEOUT_S
    timeout = float(resolve("shutdown_timeout_s", shutdown_timeout_s, SHUTDOWN_TIMEOUT_ENV, timeout_default, float))
    if timeout <= 0:
        raise ValueError(f"shutdown_timeout_s: must be positive, got {timeout!r}")

    spool_root = None
    if resolve("spool", spool, SPOOL_ENV, True, parse_bool):
        from instrumentation.spool_exporter import default_spool_dir

        spool_root = Path(spool_dir).expanduser() if spool_dir is not None else default_spool_dir()
    export_timeout = _export_timeout(export_timeout_s)

    resource = build_resource(service_name)  # validates the service name before anything starts
    exporters, metric_exporter = _exporters(store_url, endpoint, protocol, headers, export_timeout)
    # The counter is outermost: it sees every span the queue hands over, whatever a spool does with it.
    destinations = [(name, DeliveryCounter(_with_spool(exporter, name, spool_root))) for name, exporter in exporters]
    try:
        processors = [batch_processor(counter, schedule_delay_ms=schedule_delay_ms) for _, counter in destinations]
        tracer_provider = build_tracer_provider(processors, resource, set_global=set_global)
        meter_provider = build_meter_provider(metric_exporter, resource, set_global=set_global)
    except BaseException:  # e.g. a bad OTEL_BSP_* value: release the store and the sockets, then report it
        for _, counter in destinations:
            counter.shutdown()
        if metric_exporter is not None:
            metric_exporter.shutdown()
        raise
    observer = ProvenanceObserver(tracer_provider, meter_provider, every)
    log.info("provenance capture to %s (every %d epoch(s))", ", ".join(name for name, _ in destinations), every)
    try:
        yield [observer]
    finally:
        in_time = shutdown_within(tracer_provider, meter_provider, timeout)
        _report(observer.spans_ended, destinations, in_time, timeout, stats)


def _exporters(
    store_url: str | None,
    endpoint: str | None,
    protocol: str | None,
    headers: str | Mapping[str, str] | None,
    timeout_s: float | None,
) -> tuple[list[tuple[str, Any]], Any]:
    """The span exporters by destination name (embedded store first) and the OTLP metric exporter, if any."""
    from instrumentation import otlp
    from instrumentation.embedded import EmbeddedExporter

    exporters: list[tuple[str, Any]] = []
    metric_exporter = None
    if store_url is not None:
        from collector.pipeline import Pipeline
        from contract.urls import redact

        exporters.append((redact(store_url), EmbeddedExporter(Pipeline([_store_sink(store_url)]))))
    if endpoint:
        chosen = otlp.resolve_protocol(endpoint, protocol)
        headers = headers if headers is not None else _token_headers()
        try:
            span_exporter = otlp.span_exporter(endpoint, protocol=chosen, headers=headers, timeout_s=timeout_s)
            exporters.append((f"otlp+{chosen}://{endpoint.split('://')[-1]}", span_exporter))
            metric_exporter = otlp.metric_exporter(endpoint, protocol=protocol, headers=headers, timeout_s=timeout_s)
        except Exception:
            for _, exporter in exporters:
                exporter.shutdown()
            raise
    return exporters, metric_exporter


def _report(spans_ended: int, destinations: list, in_time: bool, timeout: float, stats: CaptureStats | None) -> None:
    stats = stats if stats is not None else CaptureStats()
    stats.spans_ended, stats.closed_in_time = spans_ended, in_time
    for name, counter in destinations:
        counts = counter.counts
        stats.destinations.append(name)
        stats.exported[name] = counts.exported
        stats.failed[name] = counts.failed
        stats.dropped[name] = max(0, spans_ended - counts.exported - counts.failed)
        if counts.failed or stats.dropped[name]:
            log.warning(
                "provenance to %s incomplete: %d of %d span(s) delivered, %d failed, %d not exported%s",
                name, counts.exported, spans_ended, counts.failed, stats.dropped[name],
                "" if in_time else f" (gave up after {timeout:g}s)",
            )


def store_command_source(store_url: str, interval_s: float | None = None) -> StoreCommandSource:
    """The steering commands of the runs in one provenance store (SQLite or MonetDB), polled in the background."""
    from collector.steering_channel import StoreChannel
    from instrumentation.steering_poller import DEFAULT_INTERVAL_S, StoreCommandSource

    return StoreCommandSource(store_url, StoreChannel, DEFAULT_INTERVAL_S if interval_s is None else interval_s)


def command_source_for(
    *,
    store: str | None = None,
    otlp_endpoint: str | None = None,
    headers: str | Mapping[str, str] | None = None,
    steering_endpoint_url: str | None = None,
    enabled: bool | None = None,
    interval_s: float | None = None,
) -> CommandSource:
    """The command source matching `open_capture` called with the same arguments (see
    instrumentation.steering_poller.command_source_for): the collector over HTTP, or the store itself."""
    from collector.steering_channel import StoreChannel
    from instrumentation import steering_poller

    return steering_poller.command_source_for(
        open_channel=StoreChannel, store=store, otlp_endpoint=otlp_endpoint, headers=headers,
        steering_endpoint_url=steering_endpoint_url, enabled=enabled, interval_s=interval_s,
    )
