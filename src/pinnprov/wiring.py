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
from typing import TYPE_CHECKING, Any, Unpack

from pinnprov.capture.capture_session import CaptureStats
from pinnprov.capture.capture_settings import CaptureOptions, CaptureSettings
from pinnprov.pinn.observer import TrainingObserver

if TYPE_CHECKING:
    from opentelemetry.sdk.trace.export import SpanExporter

    from pinnprov.capture.run_api import Run
    from pinnprov.capture.steering_poller import ClosingCommandSource, StoreCommandSource
    from pinnprov.pinn.observer import DatasetIdentity

__all__ = ["CaptureOptions", "CaptureSettings", "CaptureStats", "command_source_for", "open_capture", "start_run",
           "store_command_source"]


def _embedded_exporter(store_url: str) -> SpanExporter:
    """The in-process pipeline into the store, built exactly as the collector service builds its sinks."""
    from pinnprov.capture.embedded import EmbeddedExporter
    from pinnprov.collector.pipeline import Pipeline
    from pinnprov.collector.sinks import open_sink

    return EmbeddedExporter(Pipeline([open_sink(store_url)]))


@contextmanager
def _capture_observers(settings: CaptureSettings, stats: CaptureStats | None,
                       import_tensorflow: bool) -> Iterator[list[TrainingObserver]]:
    """The capture session's own observers (no hand-off): what the run API's worker thread calls."""
    from pinnprov.capture.capture_session import capture_session

    if not settings.enabled:
        yield []
        return
    with capture_session(settings, _embedded_exporter, stats, import_tensorflow=import_tensorflow) as observers:
        yield observers


@contextmanager
def open_capture(
    settings: CaptureSettings | None = None,
    *,
    stats: CaptureStats | None = None,
    import_tensorflow: bool = True,
    **options: Unpack[CaptureOptions],
) -> Iterator[list[TrainingObserver]]:
    """Yield the provenance observers for one training process; deliver, flush and shut them down on exit.

    `settings` is a resolved `CaptureSettings` (pinnprov.capture.capture_settings.resolve_capture_settings), or
    give its keywords (`store=`, `otlp_endpoint=`, `capture_every=`, ... CaptureOptions): explicit > environment
    (PINNPROV_STORE, PINNPROV_CAPTURE, PINNPROV_CAPTURE_EVERY, PINNPROV_CAPTURE_SHUTDOWN_TIMEOUT, PINNPROV_SPOOL,
    PINNPROV_SPOOL_DIR, OTEL_*) > default. Raises ValueError for a bad setting before anything starts.

    The observer yielded is the run API's hand-off (pinnprov.capture.event_handoff.EventHandoff): the calling thread
    appends each event to a queue and a worker thread builds the spans in batches, the path `start_run` takes.
    `import_tensorflow=False` records TensorFlow's version and devices only if the process already loaded it.
    """
    from pinnprov.capture.capture_settings import settings_from
    from pinnprov.capture.event_handoff import EventHandoff

    resolved = settings_from(settings, options)
    with _capture_observers(resolved, stats, import_tensorflow) as observers:
        if not observers:
            yield []
            return
        handoff = EventHandoff(observers)
        try:
            yield [handoff]
        finally:
            handoff.close()


def store_command_source(store_url: str, interval_s: float | None = None) -> StoreCommandSource:
    """The steering commands of the runs in one provenance store (SQLite or MonetDB), polled in the background."""
    from pinnprov.capture.steering_poller import StoreCommandSource
    from pinnprov.capture.steering_worker import DEFAULT_INTERVAL_S
    from pinnprov.store.steering_channel import StoreChannel

    return StoreCommandSource(store_url, StoreChannel, DEFAULT_INTERVAL_S if interval_s is None else interval_s)


def command_source_for(
    settings: CaptureSettings | None = None,
    *,
    interval_s: float | None = None,
    **options: Unpack[CaptureOptions],
) -> ClosingCommandSource:
    """The command source matching `open_capture` called with the same settings (see
    pinnprov.capture.steering_poller.command_source_from): the collector over HTTP, or the store itself.
    `interval_s` is the polling interval (= `steering_interval_s`)."""
    from pinnprov.capture.capture_settings import settings_from
    from pinnprov.capture.steering_poller import command_source_from
    from pinnprov.store.steering_channel import StoreChannel

    if interval_s is not None:
        options["steering_interval_s"] = interval_s
    return command_source_from(settings_from(settings, options), StoreChannel)


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
    steering: bool = True,
    stats: CaptureStats | None = None,
    settings: CaptureSettings | None = None,
    **options: Unpack[CaptureOptions],
) -> Run:
    """Start recording a training run of your own loop; use the result as a context manager (see
    pinnprov.capture.run_api for what `Run` records and how it is steered):

        with pinnprov.start_run(name="site-3", experiment="tomo", hyperparameters={"lr": 1e-3}, store=url) as run:
            for epoch in range(n):
                run.log_epoch(epoch, loss=L, loss_bc=L_bc, loss_residual=L_r, loss_data=L_d, learning_rate=lr)
                for command in run.commands():
                    ...; command.applied()      # or command.refused("why")

    Destination settings are `open_capture`'s: a resolved `settings=` or its keywords (`store=`,
    `otlp_endpoint=`, ..., `steering_endpoint_url=`, `steering_interval_s=`) with their environment (OTEL_*,
    PINNPROV_*), resolved once here and passed on. Steering commands come from the same store or collector
    (`command_source_for`), unless `steering=False`. `dataset` is a name or a mapping with name, sha256, source
    (and picks). A name the embedded store already holds gets a suffix (name-2, name-3, ...; `run.name` is the one
    recorded). The capture is flushed and closed when the run ends. Raises ValueError for a bad setting before
    the run starts.
    """
    from pinnprov.capture.capture_settings import settings_from
    from pinnprov.capture.run_api import Run, dataset_identity
    from pinnprov.capture.steering_poller import command_source_from
    from pinnprov.pinn.runinfo import new_run_name
    from pinnprov.store.steering_channel import StoreChannel

    identity = dataset_identity(dataset)  # a bad data set is refused before anything is opened
    resolved = settings_from(settings, options)
    if name and resolved.store_url is not None:
        name = _free_run_name(resolved.store_url, name)
    stack = ExitStack()
    try:
        observers = stack.enter_context(_capture_observers(resolved, stats, import_tensorflow=False))
        commands = None
        if steering and observers:
            commands = stack.enter_context(command_source_from(resolved, StoreChannel))
        return Run(
            observers, commands, name=name or new_run_name("run", experiment), experiment=experiment,
            hyperparameters=hyperparameters, dataset=identity, on_close=stack.close,
        )
    except BaseException:
        stack.close()
        raise
