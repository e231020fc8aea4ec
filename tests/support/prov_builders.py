"""Test helpers: real OTLP requests for runs, built with the real OpenTelemetry SDK and its OTLP encoder.

Spans are created by a TracerProvider (trace id = run id, like the instrumentation does), captured by an
InMemorySpanExporter and encoded with the exporter's own `encode_spans`, so translation is tested against
exactly the bytes a trainer would send.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.trace import set_span_in_context

from pinnprov.core import vocabulary as v

T0 = 1_700_000_000.0  # a fixed start time (Unix seconds) so expected values are exact


class RunIdGenerator(IdGenerator):
    """Trace id = the run id; span ids from a seeded generator (deterministic tests)."""

    def __init__(self, run_id: str, seed: int = 0) -> None:
        self.trace_id = int(run_id, 16)
        self._random = random.Random(seed)

    def generate_span_id(self) -> int:
        return self._random.getrandbits(64) or 1

    def generate_trace_id(self) -> int:
        return self.trace_id


@dataclass
class RunSpec:
    """What one run logs; `epochs` rows are dicts of vocabulary attribute -> value."""

    run_id: str
    run_name: str
    experiment: str = "exp"
    hyperparameters: Mapping[str, Any] = field(default_factory=dict)  # names without the pinn.hp. prefix
    dataset: Mapping[str, Any] = field(default_factory=dict)  # vocabulary key -> value
    epochs: Sequence[Mapping[str, Any]] = ()
    adaptations: Sequence[Mapping[str, Any]] = ()
    end: Mapping[str, Any] | None = None  # root span attributes; None = run still going (no root span)
    resource: Mapping[str, Any] = field(default_factory=dict)
    start: float = T0


def _ns(seconds: float) -> int:
    return int(round(seconds * 1e9))


def epoch_attributes(
    epoch: int, *, loss: float, bc: float, residual: float, data: float, lr: float, elapsed: float = 0.5, **extra: float
) -> dict[str, Any]:
    attrs = {
        v.EPOCH: epoch,
        v.EPOCH_ELAPSED: elapsed,
        v.LOSS_TOTAL: loss,
        v.LOSS_BOUNDARY: bc,
        v.LOSS_RESIDUAL: residual,
        v.LOSS_DATA: data,
        v.LEARNING_RATE: lr,
    }
    attrs.update({v.EPOCH_EXTRA_PREFIX + name: value for name, value in extra.items()})
    return attrs


def build_spans(spec: RunSpec, seed: int | None = None) -> list:
    """The finished SDK spans of one run, in the order a trainer ends them."""
    exporter = InMemorySpanExporter()
    resource = Resource.create({"service.name": "pinnprov-test", **spec.resource})
    provider = TracerProvider(
        resource=resource, id_generator=RunIdGenerator(spec.run_id, int(spec.run_id, 16) if seed is None else seed)
    )
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer(v.INSTRUMENTATION_SCOPE)
    root = tracer.start_span(v.RUN_SPAN, start_time=_ns(spec.start))
    context = set_span_in_context(root)
    identity = {v.RUN_ID: spec.run_id, v.RUN_NAME: spec.run_name, v.EXPERIMENT: spec.experiment}
    start_attrs = dict(identity)
    start_attrs.update({v.HYPERPARAMETER_PREFIX + k: val for k, val in spec.hyperparameters.items()})
    start_attrs.update(spec.dataset)
    tracer.start_span(v.RUN_START_SPAN, context=context, attributes=start_attrs, start_time=_ns(spec.start)).end(
        end_time=_ns(spec.start)
    )
    clock = spec.start
    for attrs in spec.epochs:
        elapsed = attrs.get(v.EPOCH_ELAPSED, 0.5)
        # malformed test values (negative, strings) must not make the span itself end before it starts
        elapsed = (
            elapsed if isinstance(elapsed, int | float) and not isinstance(elapsed, bool) and elapsed >= 0 else 0.5
        )
        span = tracer.start_span(v.EPOCH_SPAN, context=context, attributes=dict(attrs), start_time=_ns(clock))
        clock += elapsed
        span.end(end_time=_ns(clock))
    for attrs in spec.adaptations:
        at = float(attrs.get("at", clock))
        clean = {k: val for k, val in attrs.items() if k != "at"}
        tracer.start_span(v.ADAPTATION_SPAN, context=context, attributes=clean, start_time=_ns(at)).end(
            end_time=_ns(at)
        )
    if spec.end is not None:
        root.set_attributes({**identity, **spec.end})
        root.end(end_time=_ns(clock + 1.0))
    provider.shutdown()
    return list(exporter.get_finished_spans())


def request_for(*specs: RunSpec) -> ExportTraceServiceRequest:
    """One OTLP request holding every span of the given runs."""
    spans = [span for spec in specs for span in build_spans(spec)]
    return encode_spans(spans)


def run_id(n: int) -> str:
    return f"{n:032x}" if n else "f" * 32


def sample_run(
    n: int,
    *,
    epochs: int = 5,
    ended: bool = True,
    optimizer: str = "adam",
    name: str | None = None,
    experiment: str = "exp",
    lr0: float = 1e-3,
) -> RunSpec:
    """A plausible run with exactly computable values (loss halves every epoch, lr decays by 0.99)."""
    rows = []
    for epoch in range(epochs):
        lr = lr0 * 0.99**epoch
        rows.append(
            epoch_attributes(
                epoch,
                loss=100.0 / 2**epoch + n,
                bc=0.1 / (epoch + 1),
                residual=1.5 / (epoch + 1),
                data=40.0 / (epoch + 1),
                lr=lr,
                elapsed=0.25 + 0.01 * epoch,
                data_rms_s=1e-5 * epoch,
            )
        )
    return RunSpec(
        run_id=run_id(n),
        run_name=name or f"run-{n:03d}",
        experiment=experiment,
        hyperparameters={
            "optimizer": optimizer,
            "activation": "tanh",
            "lr.schedule": "exponential_decay",
            "lr.initial": lr0,
            "lr.decay_rate": 0.99,
            "lr.decay_steps": 1000,
            "seed": 1337,
            "epochs": epochs,
            "network.tau.units": 20,
            "use_bias": True,
        },
        dataset={
            v.DATASET_NAME: "crosshole",
            v.DATASET_SHA256: "ab" * 32,
            v.DATASET_PICKS: 100,
            v.DATASET_SOURCE: "benchmark",
        },
        epochs=rows,
        adaptations=[
            {
                v.EPOCH: 2,
                v.ADAPTATION_PARAMETER: "learning_rate",
                v.ADAPTATION_OLD: lr0,
                v.ADAPTATION_NEW: lr0 / 10,
                v.ADAPTATION_AGENT: "user:alice",
                v.ADAPTATION_REASON: "plateau",
                v.ADAPTATION_COMMAND_ID: f"cmd-{n}",
                "at": T0 + 0.6,
            }
        ]
        if epochs > 2
        else [],
        end={v.RUN_STATUS: "completed", v.RUN_EPOCHS: epochs, v.SUMMARY_PREFIX + "r2": 0.5} if ended else None,
        resource={
            "host.name": "node-1",
            "process.pid": 4242,
            "process.owner": "alice",
            v.RESOURCE_TENSORFLOW_VERSION: "2.21.0",
            v.RESOURCE_DEVICES: ["CPU:0"],
        },
    )


def write_store(path: Any, *requests: ExportTraceServiceRequest) -> dict[str, int]:
    """Send requests through a real Pipeline into a real SQLite file; returns the pipeline counters."""
    from pinnprov.collector.pipeline import Pipeline
    from pinnprov.store.sqlite_sink import SqliteSink

    pipeline = Pipeline([SqliteSink(path)])
    try:
        for request in requests:
            result = pipeline.handle_traces(request)
            assert result.ok, result
    finally:
        pipeline.shutdown()
    return pipeline.counters.snapshot()


def dump(path: Any) -> dict[str, list[tuple]]:
    """Every row of every table, sorted: two stores are equal iff their dumps are."""
    import sqlite3

    from pinnprov.store.schema import TABLES

    conn = sqlite3.connect(path)
    try:
        return {
            t.name: sorted(conn.execute(f"SELECT * FROM {t.name}").fetchall(), key=repr)
            for t in TABLES
            if t.name != "schema_version"
        }
    finally:
        conn.close()
