"""Provenance capture for a training process, wired: the public entry points `open_capture`, the matching
steering command sources, and `start_run` (both together behind the run API for a training loop of your own).

This is the composition root's part: instrumentation/ resolves the settings (capture_settings.py, destination.py)
and runs the capture (capture_session.py); here the collector's in-process pipeline is handed in as the embedded
store's exporter, and the collector's store channel to the store-backed steering source, so instrumentation never
imports the collector. The embedded default feeds the same OTLP requests to the same pipeline a network collector
runs (one translation path).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pinnprov.capture.capture_session import CaptureStats
from pinnprov.pinn.observer import TrainingObserver

if TYPE_CHECKING:
    from opentelemetry.sdk.trace.export import SpanExporter

    from pinnprov.capture.run_api import Run
    from pinnprov.capture.steering_poller import ClosingCommandSource, StoreCommandSource
    from pinnprov.pinn.observer import DatasetIdentity

__all__ = ["CaptureStats", "command_source_for", "open_capture", "start_run", "store_command_source"]


def _embedded_exporter(store_url: str) -> SpanExporter:
    """The in-process pipeline into the store, built exactly as the collector service builds its sinks."""
    from pinnprov.capture.embedded import EmbeddedExporter
    from pinnprov.collector.pipeline import Pipeline
    from pinnprov.collector.sinks import open_sink

    return EmbeddedExporter(Pipeline([open_sink(store_url)]))


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
    import_tensorflow: bool = True,
) -> Iterator[list[TrainingObserver]]:
    """Yield the provenance observers for one training process; flush and shut them down on exit.

    Precedence for every argument: explicit > environment (PINNPROV_STORE, PINNPROV_CAPTURE,
    PINNPROV_CAPTURE_EVERY, PINNPROV_CAPTURE_SHUTDOWN_TIMEOUT, PINNPROV_SPOOL, PINNPROV_SPOOL_DIR, OTEL_*)
    > default (pinnprov/capture/capture_settings.py). Raises ValueError for a bad setting before anything starts.
    `import_tensorflow=False` records TensorFlow's version and devices only if the process already loaded it.
    """
    from pinnprov.capture.capture_session import capture_session
    from pinnprov.capture.capture_settings import capture_enabled, resolve_capture_settings

    if not capture_enabled(enabled):
        yield []
        return
    settings = resolve_capture_settings(
        store=store, otlp_endpoint=otlp_endpoint, capture_every=capture_every, service_name=service_name,
        protocol=protocol, headers=headers, schedule_delay_ms=schedule_delay_ms,
        shutdown_timeout_s=shutdown_timeout_s, spool=spool, spool_dir=spool_dir, export_timeout_s=export_timeout_s,
        set_global=set_global,
    )
    with capture_session(settings, _embedded_exporter, stats, import_tensorflow=import_tensorflow) as observers:
        yield observers


def store_command_source(store_url: str, interval_s: float | None = None) -> StoreCommandSource:
    """The steering commands of the runs in one provenance store (SQLite or MonetDB), polled in the background."""
    from pinnprov.capture.steering_poller import StoreCommandSource
    from pinnprov.capture.steering_worker import DEFAULT_INTERVAL_S
    from pinnprov.store.steering_channel import StoreChannel

    return StoreCommandSource(store_url, StoreChannel, DEFAULT_INTERVAL_S if interval_s is None else interval_s)


def command_source_for(
    *,
    store: str | None = None,
    otlp_endpoint: str | None = None,
    headers: str | Mapping[str, str] | None = None,
    steering_endpoint_url: str | None = None,
    enabled: bool | None = None,
    interval_s: float | None = None,
) -> ClosingCommandSource:
    """The command source matching `open_capture` called with the same arguments (see
    pinnprov.capture.steering_poller.command_source_for): the collector over HTTP, or the store itself."""
    from pinnprov.capture import steering_poller
    from pinnprov.store.steering_channel import StoreChannel

    return steering_poller.command_source_for(
        open_channel=StoreChannel, store=store, otlp_endpoint=otlp_endpoint, headers=headers,
        steering_endpoint_url=steering_endpoint_url, enabled=enabled, interval_s=interval_s,
    )


MAX_NAME_SUFFIX = 1000


def _free_run_name(store_url: str, name: str) -> str:
    """`name`, or the first free `name-2`, `name-3`, ... when the store already holds a run of that name (run names
    are unique per store, so a script run twice would otherwise lose its second run's start). The store is only
    read; a store that does not exist yet or cannot be read leaves the name as it is."""
    import logging

    from pinnprov.core.urls import redact
    from pinnprov.store.access import open_store

    try:
        with open_store(store_url) as store:
            def taken(candidate: str) -> bool:
                return bool(store.execute("SELECT 1 FROM run WHERE run_name = :name", {"name": candidate}).rows)

            if not taken(name):
                return name
            for suffix in range(2, MAX_NAME_SUFFIX):
                candidate = f"{name}-{suffix}"
                if not taken(candidate):
                    logging.getLogger(__name__).warning(
                        "run name %r is taken in %s; this run is %r", name, redact(store_url), candidate)
                    return candidate
    except Exception:  # noqa: BLE001 - no store yet (or unreadable): the name is free as far as we can tell
        return name
    return name


def start_run(
    name: str | None = None,
    *,
    experiment: str = "default",
    hyperparameters: Mapping[str, Any] | None = None,
    dataset: str | Mapping[str, Any] | DatasetIdentity | None = None,
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
    steering: bool = True,
    steering_endpoint_url: str | None = None,
    steering_interval_s: float | None = None,
    stats: CaptureStats | None = None,
) -> Run:
    """Start recording a training run of your own loop; use the result as a context manager (see
    pinnprov.capture.run_api for what `Run` records and how it is steered):

        with pinnprov.start_run(name="site-3", experiment="tomo", hyperparameters={"lr": 1e-3}, store=url) as run:
            for epoch in range(n):
                run.log_epoch(epoch, loss=L, loss_bc=L_bc, loss_residual=L_r, loss_data=L_d, learning_rate=lr)
                for command in run.commands():
                    ...; command.applied()      # or command.refused("why")

    Destination settings and their environment (OTEL_*, PINNPROV_*) are those of `open_capture`; steering
    commands come from the same store or collector (`command_source_for`), unless `steering=False`. `dataset`
    is a name or a mapping with name, sha256, source (and picks). A name the embedded store already holds gets
    a suffix (name-2, name-3, ...; `run.name` is the one recorded). The capture is flushed and closed when the
    run ends. Raises ValueError for a bad setting before the run starts.
    """
    from pinnprov.capture.capture_settings import capture_enabled, resolve_capture_settings
    from pinnprov.capture.run_api import Run, dataset_identity
    from pinnprov.pinn.runinfo import new_run_name

    identity = dataset_identity(dataset)  # a bad data set is refused before anything is opened
    if name and capture_enabled(enabled):
        written = resolve_capture_settings(store=store, otlp_endpoint=otlp_endpoint, protocol=protocol,
                                           headers=headers, spool=False).store_url
        if written is not None:
            name = _free_run_name(written, name)
    stack = ExitStack()
    try:
        observers = stack.enter_context(open_capture(
            store=store, otlp_endpoint=otlp_endpoint, capture_every=capture_every, enabled=enabled,
            service_name=service_name, protocol=protocol, headers=headers, schedule_delay_ms=schedule_delay_ms,
            shutdown_timeout_s=shutdown_timeout_s, spool=spool, spool_dir=spool_dir,
            export_timeout_s=export_timeout_s, stats=stats, import_tensorflow=False,
        ))
        commands = None
        if steering and observers:
            commands = stack.enter_context(command_source_for(
                store=store, otlp_endpoint=otlp_endpoint, headers=headers,
                steering_endpoint_url=steering_endpoint_url, enabled=enabled, interval_s=steering_interval_s,
            ))
        return Run(
            observers, commands, name=name or new_run_name("run", experiment), experiment=experiment,
            hyperparameters=hyperparameters, dataset=identity, on_close=stack.close,
        )
    except BaseException:
        stack.close()
        raise
