"""pinn.artifact and pinn.model.snapshot spans from the real observer through OTLP to records, rows and ES documents;
bad ones are rejected one by one (a snapshot whose bytes do not match its grid, an artifact without a sha256)."""

from __future__ import annotations

import base64
import time

import numpy as np
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from pinnprov.capture.observer import ProvenanceObserver
from pinnprov.capture.provider import build_tracer_provider
from pinnprov.collector.es_documents import RunInfo, to_action
from pinnprov.collector.translate import translate_traces
from pinnprov.core import vocabulary as v
from pinnprov.pinn.observer import ArtifactWritten, DatasetIdentity, ModelSnapshot, Resumption, RunEnded, RunStarted
from pinnprov.store.records import ArtifactRecord, ModelSnapshotRecord, RunStartRecord
from pinnprov.store.write_plan import collect

RUN = "ab" * 16
PREVIOUS = "cd" * 16


def _spans(*events: object) -> list:
    exporter = InMemorySpanExporter()
    provider = build_tracer_provider([SimpleSpanProcessor(exporter)], Resource.create({}))
    observer = ProvenanceObserver(provider, flush_promptly=False)
    now = time.time()
    observer.on_run_start(RunStarted(RUN, "r", "e", now, {}, DatasetIdentity("d", "ef" * 32, 3),
                                     resumed=Resumption(PREVIOUS, 400, "12" * 32, "sweep:retry", "lost")))
    observer.on_run_end(RunEnded("completed", now + 1, 10))
    for event in events:  # after the run ended, as pinnprov train's outputs are
        if isinstance(event, ArtifactWritten):
            observer.on_artifact(event)
        else:
            observer.on_model_snapshot(event)  # type: ignore[arg-type]
    assert observer.errors == 0
    return list(exporter.get_finished_spans())


def _snapshot(values: bytes, nx: int = 3, nz: int = 2) -> ModelSnapshot:
    return ModelSnapshot(RUN, 10, time.time(), nx, nz, 0.0, 2.0, 0.0, 1.0, values)


def test_artifacts_snapshots_and_resume_reach_records_rows_and_documents() -> None:
    grid = np.arange(6, dtype="<f4").reshape(2, 3)
    artifact = ArtifactWritten(RUN, "/runs/x/velocity_pinn.npy", "velocity_grid", "0a" * 32, 1234,
                               "application/x-npy", 10, time.time(), "file://node7/runs/x/velocity_pinn.npy")
    result = translate_traces(encode_spans(_spans(artifact, _snapshot(grid.tobytes()))))
    assert not result.rejected
    (start,) = [r for r in result.records if isinstance(r, RunStartRecord)]
    assert (start.resumed_from, start.resumed_epoch, start.resumed_agent) == (PREVIOUS, 400, "sweep:retry")
    (record,) = [r for r in result.records if isinstance(r, ArtifactRecord)]
    assert (record.run_id, record.role, record.sha256, record.size_bytes, record.epoch) == (
        RUN, "velocity_grid", "0a" * 32, 1234, 10)
    assert record.uri == "file://node7/runs/x/velocity_pinn.npy"
    (snap,) = [r for r in result.records if isinstance(r, ModelSnapshotRecord)]
    decoded = np.frombuffer(base64.b64decode(snap.grid_f32), "<f4").reshape(snap.nz, snap.nx)
    assert np.array_equal(decoded, grid) and snap.kind == "pinn"
    batch = collect(result.records)
    loads = {write.table: rows for write, rows in batch.loads.items() if rows}
    assert len(loads["artifact"]) == 1 and len(loads["model_snapshot"]) == 1
    (relation,) = loads["run_relation"]
    assert relation[:3] == (RUN, PREVIOUS, "resumed_from")
    action = to_action(record, "pinnprov", RunInfo())
    assert action is not None and action.index.endswith("runs") and action.doc_id == RUN
    assert action.body["doc"]["artifacts"]["velocity_grid"]["sha256"] == "0a" * 32
    latest = to_action(snap, "pinnprov", RunInfo())
    assert latest is not None and latest.body["doc"]["latest_model"]["ui_path"] == f"/runs/{RUN}"


def test_bad_products_are_rejected_alone() -> None:
    spans = _spans(_snapshot(b"\0" * 5), ArtifactWritten(RUN, "/x", "figure", "not-a-hash", 1, "image/png", 1,
                                                                  time.time()))
    result = translate_traces(encode_spans(spans))
    reasons = sorted((r.span_name, r.reason) for r in result.rejected)
    assert reasons == [(v.ARTIFACT_SPAN, "bad_attribute"), (v.SNAPSHOT_SPAN, "bad_attribute")]
    assert any(isinstance(r, RunStartRecord) for r in result.records)
