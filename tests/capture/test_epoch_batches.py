"""Epochs handed to the provenance observer in batches (the run API's worker, `open_capture`'s hand-off) are
recorded exactly as one `on_epoch_end` each would record them: the same spans, the same counter and histogram, the
same latest gauge values; only the gauges are set once per batch."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from pinnprov.capture.event_handoff import EventHandoff
from pinnprov.capture.observer import ProvenanceObserver
from pinnprov.capture.provider import build_tracer_provider
from pinnprov.core import vocabulary as v
from pinnprov.pinn.observer import DatasetIdentity, EpochEnded, ObserverFanout, RunEnded, RunStarted

DATASET = DatasetIdentity(name="d", sha256="", picks=0, source="")


def _epoch(epoch: int) -> EpochEnded:
    begin = 1_700_000_001.0 + epoch * 0.01
    return EpochEnded(epoch, begin, begin + 0.008, 0.008, 1.5 / (epoch + 1), 0.1, 0.2, 0.3, 1e-3 * (epoch + 1),
                      {"rms": float(epoch)})


def _record(batched: bool, every: int) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    exporter, reader = InMemorySpanExporter(), InMemoryMetricReader()
    provider = build_tracer_provider([SimpleSpanProcessor(exporter)], Resource.create({}))
    observer = ProvenanceObserver(provider, MeterProvider(metric_readers=[reader], shutdown_on_exit=False), every)
    run_id = uuid.UUID(int=7).hex
    observer.on_run_start(RunStarted(run_id, "r", "e", 1_700_000_000.0, {}, DATASET))
    events = [_epoch(epoch) for epoch in range(23)]
    if batched:
        for start in range(0, 23, 10):
            observer.on_epochs_end(events[start:start + 10])
    else:
        for event in events:
            observer.on_epoch_end(event)
    observer.on_run_end(RunEnded("completed", 1_700_000_002.0, 23))
    spans = [{"name": s.name, **dict(s.attributes or {}), "start": s.start_time, "end": s.end_time}
             for s in exporter.get_finished_spans() if s.name == v.EPOCH_SPAN]
    metrics: dict[str, Any] = {}
    for resource in reader.get_metrics_data().resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                for point in metric.data.data_points:
                    key = (metric.name, tuple(sorted(dict(point.attributes).items())))
                    metrics[str(key)] = (point.count, round(point.sum, 9)) if hasattr(point, "count") else point.value
    return spans, metrics


@pytest.mark.parametrize("every", [1, 4])
def test_a_batch_records_what_single_epochs_record(every: int) -> None:
    single, batched = _record(False, every), _record(True, every)
    assert batched[0] == single[0] and len(single[0]) == (23 if every == 1 else 7)
    assert batched[1] == single[1]
    assert str((v.METRIC_EPOCHS, ((v.RUN_ID, uuid.UUID(int=7).hex),))) in single[1]


class _Plain:
    """An observer without on_epochs_end: gets one on_epoch_end per epoch, in order."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, int]] = []

    def on_run_start(self, event: RunStarted) -> None:
        self.seen.append(("start", 0))

    def on_epoch_end(self, event: EpochEnded) -> None:
        self.seen.append(("epoch", event.epoch))

    def on_adaptation(self, event: object) -> None:
        self.seen.append(("adaptation", 0))

    def on_run_end(self, event: RunEnded) -> None:
        self.seen.append(("end", 0))


class _Broken(_Plain):
    def on_epoch_end(self, event: EpochEnded) -> None:
        raise RuntimeError("disk full")


def test_the_hand_off_keeps_the_order_and_isolates_a_failing_observer() -> None:
    plain, broken = _Plain(), _Broken()
    handoff = EventHandoff([broken, plain], flush_interval_s=0.01)
    handoff.on_run_start(RunStarted("a" * 32, "r", "e", 0.0, {}, DATASET))
    for epoch in range(50):
        handoff.on_epoch_end(_epoch(epoch))
    handoff.on_run_end(RunEnded("completed", 1.0, 50))
    handoff.close()
    assert plain.seen == [("start", 0), *[("epoch", e) for e in range(50)], ("end", 0)]
    assert broken.seen == [("start", 0)]  # disabled after its first failure, as ObserverFanout does
    handoff.on_epoch_end(_epoch(50))  # after close: delivered on the calling thread
    assert plain.seen[-1] == ("epoch", 50)


def test_deliver_epochs_disables_an_observer_that_raises_for_every_later_event() -> None:
    broken, good = _Broken(), _Plain()
    fanout = ObserverFanout([broken, good])  # type: ignore[list-item]
    fanout.deliver_epochs([_epoch(0), _epoch(1)])
    fanout.on_run_end(RunEnded("completed", 1.0, 2, None, {}))
    assert good.seen == [("epoch", 0), ("epoch", 1), ("end", 0)]
    assert broken.seen == []  # disabled by its failed epochs: one isolation rule for every event
