"""Named queries return exactly the logged values (expected values are computed from the inputs)."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from prov_builders import T0, RunSpec, build_spans, epoch_attributes, run_id

from pinnprov.collector.pipeline import Pipeline
from pinnprov.core import vocabulary as v
from pinnprov.store.access import open_store
from pinnprov.store.queries import QUERIES, QueryOptions, run_query
from pinnprov.store.run_select import resolve_run
from pinnprov.store.sqlite_sink import SqliteSink


def _run(n: int, *, optimizer: str, epochs: int, experiment: str, ended: bool, drop_at: int | None = None) -> RunSpec:
    rng = random.Random(n)
    rows, lr = [], 1e-3
    for epoch in range(epochs):
        lr = lr * 0.99 if drop_at is None or epoch != drop_at else lr / 10
        rows.append(
            epoch_attributes(
                epoch,
                loss=rng.uniform(0.01, 100),
                bc=rng.uniform(1e-7, 1e-2),
                residual=rng.uniform(1e-4, 1),
                data=rng.uniform(1e-4, 50),
                lr=lr,
                elapsed=round(rng.uniform(2.0, 3.2), 3),
            )
        )
    adaptations = (
        []
        if drop_at is None
        else [
            {
                v.EPOCH: drop_at,
                v.ADAPTATION_PARAMETER: "learning_rate",
                v.ADAPTATION_OLD: 1e-3,
                v.ADAPTATION_NEW: 1e-4,
                v.ADAPTATION_AGENT: "user:bob",
                v.ADAPTATION_REASON: "plateau",
                "at": T0 + n * 1000 + 10,
            }
        ]
    )
    return RunSpec(
        run_id=run_id(n),
        run_name=f"{optimizer}-sigmoid-{n}",
        experiment=experiment,
        start=T0 + n * 1000,
        hyperparameters={
            "optimizer": optimizer,
            "activation": "sigmoid",
            "lr.schedule": "exponential_decay",
            "lr.initial": 1e-3,
            "lr.decay_rate": 0.99,
            "lr.decay_steps": 1000,
        },
        epochs=rows,
        adaptations=adaptations,
        end={v.RUN_STATUS: "completed", v.RUN_EPOCHS: epochs} if ended else None,
    )


RUNS = [
    _run(1, optimizer="adam", epochs=30, experiment="fig3", ended=True, drop_at=17),
    _run(2, optimizer="rmsprop", epochs=25, experiment="fig3", ended=False),
    _run(3, optimizer="adam", epochs=12, experiment="other", ended=True),
]


@pytest.fixture(scope="module")
def store_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Spans delivered shuffled in small requests, later epochs first, and everything replayed once."""
    path = tmp_path_factory.mktemp("queries") / "q.db"
    spans = [span for spec in RUNS for span in build_spans(spec)]
    random.Random(42).shuffle(spans)
    chunks = [spans[i : i + 7] for i in range(0, len(spans), 7)]
    pipeline = Pipeline([SqliteSink(path)])
    for chunk in [*chunks, *reversed(chunks)]:
        assert pipeline.handle_traces(encode_spans(chunk)).ok
    pipeline.shutdown()
    return path


def _epoch_rows(spec: RunSpec) -> list[tuple]:
    ended = [span.end_time / 1e9 for span in build_spans(spec) if span.name == v.EPOCH_SPAN]
    return [
        (
            a[v.EPOCH],
            a[v.EPOCH_ELAPSED],
            a[v.LOSS_TOTAL],
            a[v.LOSS_BOUNDARY],
            a[v.LOSS_RESIDUAL],
            a[v.LOSS_DATA],
            a[v.LEARNING_RATE],
            end,
        )
        for a, end in zip(spec.epochs, ended, strict=True)
    ]


def _query(path: Path, name: str, **options: object) -> tuple[list[str], list[tuple]]:
    with open_store(str(path)) as store:
        result = run_query(store, name, QueryOptions(**options))
    return result.columns, result.rows


def test_epochs_is_table_1(store_path: Path) -> None:
    expected = _epoch_rows(RUNS[0])
    columns, rows = _query(store_path, "epochs", run_id=RUNS[0].run_id)
    assert columns == [
        "epoch",
        "elapsed_s",
        "loss",
        "loss_bc",
        "loss_residual",
        "loss_data",
        "learning_rate",
        "ended_at",
    ]
    assert rows == expected
    assert _query(store_path, "epochs", run_id=RUNS[0].run_id, every=10)[1] == expected[::10]
    assert _query(store_path, "epochs", run_id=RUNS[0].run_id, last=5)[1] == expected[-5:]
    assert _query(store_path, "epochs", run_id=RUNS[0].run_id, from_epoch=3, to_epoch=6)[1] == expected[3:7]
    assert _query(store_path, "epochs", run_id=RUNS[0].run_id, every=4, last=2)[1] == expected[::4][-2:]
    with pytest.raises(ValueError, match="--every must be >= 1"):
        _query(store_path, "epochs", run_id=RUNS[0].run_id, every=0)


def test_latest_is_table_2(store_path: Path) -> None:
    columns, rows = _query(store_path, "latest")
    assert columns == [
        "run_name",
        "experiment",
        "epoch",
        "elapsed_s",
        "loss",
        "loss_bc",
        "loss_residual",
        "loss_data",
        "optimizer",
        "activation",
        "status",
        "ended_at",
    ]
    expected = []
    for spec in RUNS:
        last = _epoch_rows(spec)[-1]
        expected.append(
            (
                spec.run_name,
                spec.experiment,
                *last[:6],
                spec.hyperparameters["optimizer"],
                "sigmoid",
                "completed" if spec.end else "running",
                last[7],
            )
        )
    assert rows == expected
    assert _query(store_path, "latest", experiment="fig3")[1] == expected[:2]


def test_lr_is_table_3(store_path: Path) -> None:
    columns, rows = _query(store_path, "lr")
    assert columns == [
        "run_name",
        "lr_schedule",
        "lr_decay_rate",
        "lr_decay_steps",
        "lr_initial",
        "lr_lowest",
        "last_epoch",
        "status",
    ]
    expected = [
        (
            spec.run_name,
            "exponential_decay",
            0.99,
            1000,
            1e-3,
            min(a[v.LEARNING_RATE] for a in spec.epochs),
            len(spec.epochs) - 1,
            "completed" if spec.end else "running",
        )
        for spec in RUNS
    ]
    assert rows == expected
    assert rows[0][5] < rows[0][4] / 10  # the user's drop at epoch 17 is the lowest rate reached
    with open_store(str(store_path)) as store:  # the writer-maintained summary equals a full scan
        scan = store.execute('SELECT run_id, MIN(learning_rate), MAX("epoch") FROM epoch_metric GROUP BY run_id')
        summary = store.execute("SELECT run_id, lr_min, last_epoch FROM run ORDER BY run_id")
    assert sorted(scan.rows) == summary.rows


def test_adaptations_and_runs(store_path: Path) -> None:
    columns, rows = _query(store_path, "adaptations", run_id=RUNS[0].run_id)
    assert columns == ["epoch", "at", "parameter", "old_value", "new_value", "agent", "reason", "command_id"]
    assert rows == [(17, T0 + 1010, "learning_rate", "0.001", "0.0001", "user:bob", "plateau", None)]
    assert _query(store_path, "adaptations", run_id=RUNS[1].run_id)[1] == []
    _, runs = _query(store_path, "runs")
    assert [r[1] for r in runs] == [spec.run_name for spec in RUNS]
    assert [r[1] for r in _query(store_path, "runs", limit=2)[1]] == [RUNS[1].run_name, RUNS[2].run_name]
    assert [r[1] for r in _query(store_path, "runs", status="running")[1]] == [RUNS[1].run_name]


def test_run_selection(store_path: Path) -> None:
    with open_store(str(store_path)) as store:
        assert resolve_run(store, "latest") == RUNS[2].run_id
        assert resolve_run(store, "rmsprop") == RUNS[1].run_id
        assert resolve_run(store, RUNS[0].run_id) == RUNS[0].run_id
        assert resolve_run(store, RUNS[1].run_id.upper()) == RUNS[1].run_id
        with pytest.raises(ValueError, match="ambiguous run '0000' matches 3 runs"):
            resolve_run(store, "0000")
        with pytest.raises(ValueError, match=r"ambiguous run 'adam' matches 2 runs: adam-sigmoid-1 \(0+1\), adam-sig"):
            resolve_run(store, "adam")
        with pytest.raises(ValueError, match="unknown run 'sgd'"):
            resolve_run(store, "sgd")
        with pytest.raises(ValueError, match="needs a run"):
            run_query(store, "epochs", QueryOptions())
    assert sorted(QUERIES.names()) == [
        "adaptations", "epoch_buckets", "epochs", "hyperparameters", "latest", "lr", "metric_epochs", "metrics", "run",
        "runs", "summary"
    ]
