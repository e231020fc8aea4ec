"""ProvenanceObserver: turns the trainer's events into OpenTelemetry spans and metrics.

One trace per run, trace id == run id (module `pinnprov.core.vocabulary` describes the trace model).
The observer runs on the training thread, so `on_epoch_end` does the minimum: one span started and ended
with the epoch's own timestamps, a handful of metric calls on precomputed attribute dicts, no I/O (the
BatchSpanProcessor exports on its own thread). Every method swallows its errors: telemetry never breaks
training, even when the observer is used without `pinnprov.pinn.observer.ObserverFanout`.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import math
import threading
from collections.abc import Callable, Mapping, Sequence

from opentelemetry import context as context_api
from opentelemetry import metrics as metrics_api
from opentelemetry import trace as trace_api
from opentelemetry.trace import Status, StatusCode
from opentelemetry.util.types import AttributeValue

from pinnprov.capture.provider import RunIdGenerator
from pinnprov.capture.sampling import EpochSampler
from pinnprov.core import __version__
from pinnprov.core import vocabulary as v
from pinnprov.core.fields import EPOCH_FIELDS, METRIC_EPOCH_FIELDS
from pinnprov.pinn.observer import Adapted, ArtifactWritten, EpochEnded, ModelSnapshot, RunEnded, RunStarted

_log = logging.getLogger(__name__)
# Epochs take milliseconds to seconds; the SDK's default buckets (0, 5, 10, 25, ... 10000) assume milliseconds.
_DURATION_BUCKETS_S = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0)


def _ns(seconds: float) -> int:
    return int(seconds * 1e9)


def run_trace_id(run_id: str) -> int:
    """The trace id for a run id: the id itself when it is 32 hex digits, else a stable hash of it."""
    try:
        value = int(run_id, 16)
        if len(run_id) == 32 and value:
            return value
    except ValueError:
        pass
    _log.warning("run id %r is not 32 hex digits; its trace id is derived from its SHA-256", run_id)
    return int(hashlib.sha256(run_id.encode()).hexdigest()[:32], 16) or 1


# (attribute key, EpochEnded attribute, type) of every epoch field of the one schema (pinnprov/core/fields.py)
_EPOCH_ATTRIBUTES: tuple[tuple[str, str, type[int] | type[float]], ...] = tuple(
    (field.attribute, field.name, int if field.kind == "int" else float) for field in EPOCH_FIELDS
)


_Record = Callable[[float, Mapping[str, str]], None]
"""A histogram's `record` or a gauge's `set`."""


def _description(metric: str, by_component: bool) -> str:
    """'latest loss by component' for pinn.loss, 'learning rate' for pinn.learning_rate."""
    words = metric.removeprefix(v.PREFIX).replace("_", " ").replace(".", " ")
    return f"latest {words} by component" if by_component else words


class ProvenanceObserver:
    """A `pinnprov.pinn.observer.TrainingObserver` that records a run as OpenTelemetry spans (and metrics).

    `tracer_provider` should come from `pinnprov.capture.provider.build_tracer_provider`, whose id generator
    makes the root span's trace id the run id. Any other provider works too: the root span then gets a
    remote parent carrying the run's trace id (its parent span id points outside the trace).
    """

    def __init__(
        self,
        tracer_provider: trace_api.TracerProvider,
        meter_provider: metrics_api.MeterProvider | None = None,
        capture_every: int = 1,
        *,
        flush_promptly: bool = True,
    ) -> None:
        self._provider = tracer_provider
        self._tracer = tracer_provider.get_tracer(v.INSTRUMENTATION_SCOPE, __version__)
        ids = getattr(tracer_provider, "id_generator", None)
        self._ids = ids if isinstance(ids, RunIdGenerator) else None
        self._sampler = EpochSampler(capture_every)
        self._every = self._sampler.every
        self._flush_promptly = flush_promptly
        meter_provider = meter_provider or metrics_api.NoOpMeterProvider()
        self._metrics_on = not isinstance(meter_provider, metrics_api.NoOpMeterProvider)
        meter = meter_provider.get_meter(v.INSTRUMENTATION_SCOPE, __version__)
        # One instrument per `EpochField.metric` (pinnprov/core/fields.py): the epoch time is a histogram, every
        # other one a gauge of the latest value (one series per loss component where the fields have components).
        self._record: dict[str, _Record] = {}  # metric name -> the instrument's record/set
        for field in METRIC_EPOCH_FIELDS:
            if field.metric in self._record:
                continue
            if field.metric == v.METRIC_EPOCH_DURATION:
                self._record[field.metric] = meter.create_histogram(
                    field.metric, field.unit, "epoch wall time",
                    explicit_bucket_boundaries_advisory=_DURATION_BUCKETS_S,
                ).record
            else:
                self._record[field.metric] = meter.create_gauge(
                    field.metric, field.unit, _description(field.metric, bool(field.component)),
                ).set
        self._epochs = meter.create_counter(v.METRIC_EPOCHS, v.UNIT_DIMENSIONLESS, "completed epochs")
        self._root: trace_api.Span | None = None
        self._ctx: context_api.Context | None = None
        self._run_attrs: dict[str, str] = {}
        self._points: tuple[tuple[str, _Record, dict[str, str]], ...] = ()
        self._histograms: tuple[tuple[str, _Record, dict[str, str]], ...] = ()  # of _points: per epoch
        self._gauges: tuple[tuple[str, _Record, dict[str, str]], ...] = ()  # of _points: latest value only
        self._extra_keys: dict[str, str] = {}
        self._last_captured = -1
        self.spans_ended = 0  # spans this observer ended: compared with what reached the exporter
        self.errors = 0  # events this observer failed to record (logged; training continued)

    # --- TrainingObserver -------------------------------------------------------------------------------

    def on_run_start(self, event: RunStarted) -> None:
        try:
            if self._root is not None:
                self._end_root("failed", event.started_at, -1, "run superseded before it ended", {})
            self._start_run(event)
        except Exception as error:  # noqa: BLE001 - telemetry never breaks training
            self._failed("on_run_start", error)

    def on_epoch_end(self, event: EpochEnded) -> None:
        try:
            if self._ctx is None:
                return
            if self._every == 1 or self._sampler.admit(event):
                self._emit_epoch(event, self._sampler.epochs_in_capture if self._every != 1 else 1)
        except Exception as error:  # noqa: BLE001
            self._failed("on_epoch_end", error)

    def on_epochs_end(self, events: Sequence[EpochEnded]) -> None:
        """Consecutive epochs at once (the run API's worker hands over what queued since its last wake-up): one
        span per captured epoch as `on_epoch_end` makes, but the gauges are set once, with the batch's last
        captured values (a gauge exports only its latest value), and the epoch counter is added to once; the
        epoch-time histogram still gets every epoch. Same records, a fraction of the metric SDK's CPU."""
        try:
            if self._ctx is None:
                return
            metrics, self._metrics_on = self._metrics_on, False
            last: EpochEnded | None = None
            counted = 0
            try:
                for event in events:
                    if self._every == 1 or self._sampler.admit(event):
                        self._emit_epoch(event, 0)
                        counted += self._sampler.epochs_in_capture if self._every != 1 else 1
                        last = event
                        if metrics:
                            for name, record, metric_attributes in self._histograms:
                                value = getattr(event, name)
                                if math.isfinite(value):
                                    record(value, metric_attributes)
            finally:
                self._metrics_on = metrics
            if metrics and last is not None:
                for name, record, metric_attributes in self._gauges:
                    value = getattr(last, name)
                    if math.isfinite(value):
                        record(value, metric_attributes)
                self._epochs.add(counted, self._run_attrs)
        except Exception as error:  # noqa: BLE001
            self._failed("on_epochs_end", error)

    def on_adaptation(self, event: Adapted) -> None:
        try:
            if self._ctx is None:
                return
            attributes: dict[str, AttributeValue] = {
                v.EPOCH: int(event.epoch),
                v.ADAPTATION_PARAMETER: event.parameter,
                v.ADAPTATION_OLD: event.old_value,
                v.ADAPTATION_NEW: event.new_value,
                v.ADAPTATION_AGENT: event.agent,
                v.ADAPTATION_REASON: event.reason,
                v.ADAPTATION_COMMAND_ID: event.command_id,
            }
            at = _ns(event.at)
            self._tracer.start_span(v.ADAPTATION_SPAN, self._ctx, attributes=attributes, start_time=at).end(at)
            self.spans_ended += 1
            self._flush_soon()  # a steering command's effect should be visible as soon as the epoch rows
        except Exception as error:  # noqa: BLE001
            self._failed("on_adaptation", error)

    def on_artifact(self, event: ArtifactWritten) -> None:
        """A file the run produced; may come after the run ended (outputs are written then), in the same trace."""
        try:
            attributes: dict[str, AttributeValue] = {
                v.RUN_ID: format(run_trace_id(event.run_id), "032x"),
                v.EPOCH: int(event.epoch),
                v.ARTIFACT_ROLE: event.role,
                v.ARTIFACT_URI: event.uri or event.path,
                v.ARTIFACT_SHA256: event.sha256,
                v.ARTIFACT_SIZE: int(event.size_bytes),
                v.ARTIFACT_MEDIA_TYPE: event.media_type,
            }
            at = _ns(event.at)
            self._tracer.start_span(v.ARTIFACT_SPAN, self._context_of(event.run_id), attributes=attributes,
                                    start_time=at).end(at)
            self.spans_ended += 1
            self._flush_soon()
        except Exception as error:  # noqa: BLE001
            self._failed("on_artifact", error)

    def on_model_snapshot(self, event: ModelSnapshot) -> None:
        """The velocity model on its grid, inline as base64 float32 (5.6 KB on the benchmark grid)."""
        try:
            attributes: dict[str, AttributeValue] = {
                v.RUN_ID: format(run_trace_id(event.run_id), "032x"),
                v.EPOCH: int(event.epoch),
                v.SNAPSHOT_KIND: event.kind,
                v.SNAPSHOT_NX: int(event.nx),
                v.SNAPSHOT_NZ: int(event.nz),
                v.SNAPSHOT_X_MIN: float(event.x_min),
                v.SNAPSHOT_X_MAX: float(event.x_max),
                v.SNAPSHOT_Z_MIN: float(event.z_min),
                v.SNAPSHOT_Z_MAX: float(event.z_max),
                v.SNAPSHOT_VALUES: base64.b64encode(event.values).decode("ascii"),
            }
            at = _ns(event.at)
            self._tracer.start_span(v.SNAPSHOT_SPAN, self._context_of(event.run_id), attributes=attributes,
                                    start_time=at).end(at)
            self.spans_ended += 1  # no prompt flush: it travels with the next scheduled export (under a second)
        except Exception as error:  # noqa: BLE001
            self._failed("on_model_snapshot", error)

    def on_run_end(self, event: RunEnded) -> None:
        try:
            if self._root is None:
                return
            last = self._sampler.take_last()
            if last is not None and last.epoch != self._last_captured:
                self._emit_epoch(last, self._sampler.epochs_in_capture)
            self._end_root(event.status, event.at, event.epochs, event.error, event.summary)
        except Exception as error:  # noqa: BLE001
            self._failed("on_run_end", error)

    # --- internals -------------------------------------------------------------------------------------------

    def _context_of(self, run_id: str) -> context_api.Context:
        """The running root's context, or (after the run ended, or for another run) a remote parent in its trace."""
        trace_id = run_trace_id(run_id)
        if self._ctx is not None and self._root is not None and self._root.get_span_context().trace_id == trace_id:
            return self._ctx
        remote = trace_api.SpanContext(trace_id, trace_id & 0xFFFF_FFFF_FFFF_FFFF or 1, is_remote=True,
                                       trace_flags=trace_api.TraceFlags(trace_api.TraceFlags.SAMPLED))
        return trace_api.set_span_in_context(trace_api.NonRecordingSpan(remote))

    def _start_run(self, event: RunStarted) -> None:
        trace_id = run_trace_id(event.run_id)
        run_id = format(trace_id, "032x")  # == event.run_id unless that was not 32 hex digits
        start = _ns(event.started_at)
        identity = {v.RUN_ID: run_id, v.RUN_NAME: event.run_name, v.EXPERIMENT: event.experiment}
        if self._ids is not None:
            self._ids.use_trace_id(trace_id)
            parent = context_api.Context()  # empty: the root span of a new trace
        else:
            remote = trace_api.SpanContext(
                trace_id, trace_id & 0xFFFF_FFFF_FFFF_FFFF or 1, is_remote=True,
                trace_flags=trace_api.TraceFlags(trace_api.TraceFlags.SAMPLED),
            )
            parent = trace_api.set_span_in_context(trace_api.NonRecordingSpan(remote))
        root = self._tracer.start_span(v.RUN_SPAN, parent, attributes=identity, start_time=start)
        self._root = root
        self._ctx = trace_api.set_span_in_context(root)
        self._sampler.reset()
        self._last_captured = -1
        self._run_attrs = {v.RUN_ID: run_id}
        # (EpochEnded attribute, instrument, metric attributes) of every metric field, in the schema's order
        self._points = tuple(
            (field.name, self._record[field.metric],
             {v.RUN_ID: run_id, v.LOSS_COMPONENT: field.component} if field.component else self._run_attrs)
            for field in METRIC_EPOCH_FIELDS
        )
        histogram = self._record.get(v.METRIC_EPOCH_DURATION)
        self._histograms = tuple(point for point in self._points if point[1] == histogram)
        self._gauges = tuple(point for point in self._points if point[1] != histogram)
        attributes: dict[str, AttributeValue] = dict(identity)
        for key, value in event.hyperparameters.items():
            attributes[v.HYPERPARAMETER_PREFIX + key] = value
        dataset = event.dataset
        attributes[v.DATASET_NAME] = dataset.name
        attributes[v.DATASET_SHA256] = dataset.sha256
        attributes[v.DATASET_PICKS] = int(dataset.picks)
        attributes[v.DATASET_SOURCE] = dataset.source
        resumed = getattr(event, "resumed", None)
        if resumed is not None:
            attributes[v.RUN_RESUMED_FROM] = format(run_trace_id(resumed.run_id), "032x")
            attributes[v.RUN_RESUMED_EPOCH] = int(resumed.epoch)
            attributes[v.RUN_RESUMED_CHECKPOINT] = resumed.checkpoint_sha256
            attributes[v.RUN_RESUMED_AGENT] = resumed.agent
            attributes[v.RUN_RESUMED_REASON] = resumed.reason
        self._tracer.start_span(v.RUN_START_SPAN, self._ctx, attributes=attributes, start_time=start).end(start)
        self.spans_ended += 1
        self._flush_soon()  # hyperparameters must reach the store when the run starts

    def _emit_epoch(self, e: EpochEnded, epochs_counted: int) -> None:
        attributes: dict[str, int | float] = {key: cast(getattr(e, name)) for key, name, cast in _EPOCH_ATTRIBUTES}
        if e.extra:
            keys = self._extra_keys
            for name, value in e.extra.items():
                key = keys.get(name)
                if key is None:
                    key = keys[name] = v.EPOCH_EXTRA_PREFIX + name
                attributes[key] = float(value)
        span = self._tracer.start_span(v.EPOCH_SPAN, self._ctx, attributes=attributes, start_time=_ns(e.started_at))
        span.end(_ns(e.ended_at))
        self.spans_ended += 1
        self._last_captured = e.epoch
        if self._metrics_on:
            for name, record, metric_attributes in self._points:
                value = getattr(e, name)
                if math.isfinite(value):  # NaN is "not measured" (the span says so); the SDK would warn each time
                    record(value, metric_attributes)
            self._epochs.add(epochs_counted, self._run_attrs)

    def _end_root(self, status: str, at: float, epochs: int, error: str, summary: Mapping[str, float]) -> None:
        root, self._root, self._ctx = self._root, None, None
        if root is None:
            return
        attributes: dict[str, AttributeValue] = {v.RUN_STATUS: status, v.RUN_EPOCHS: int(epochs)}
        if error:
            attributes[v.RUN_ERROR] = error
        for key, value in summary.items():
            number = float(value)
            if not math.isnan(number):
                attributes[v.SUMMARY_PREFIX + key] = number
        root.set_attributes(attributes)
        if status == "failed":
            root.set_status(Status(StatusCode.ERROR, error or "failed"))
        else:
            root.set_status(Status(StatusCode.OK))
        root.end(_ns(at))
        self.spans_ended += 1
        self._flush_soon()

    def _flush_soon(self) -> None:
        """Ask the processor to export now, from a helper thread: an export never runs on the training thread."""
        flush = getattr(self._provider, "force_flush", None)
        if not self._flush_promptly or flush is None:
            return
        threading.Thread(target=flush, name="pinnprov-flush", daemon=True).start()

    def _failed(self, where: str, error: Exception) -> None:
        self.errors += 1
        level = logging.WARNING if self.errors <= 3 else logging.DEBUG
        _log.log(level, "provenance observer failed in %s (training continues): %s: %s", where,
                 type(error).__name__, error)
