"""SQLite/MonetDB parity: one OTLP request stream, one collector writing both stores, the same answers.

A real `pinnprov collector` with both stores and a loss-threshold rule receives the spans of several runs over
OTLP/gRPC (ended and running runs, adaptations, a NaN loss, awkward strings, a replayed request). Then every
named query, `pinnprov alerts`, `query --sql` on every PROV view and `export-prov` of every run must print
byte-identical output for `--store sqlite://...` and `--store monetdb://...`.
"""

from __future__ import annotations

import contextlib
import io
import math
from pathlib import Path

import pytest
from collector_process import Collector, rows, wait_for
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace.export import SpanExportResult
from prov_builders import build_spans, sample_run

from pinnprov.cli import main as cli
from pinnprov.core import vocabulary as v
from pinnprov.store.prov_views import VIEWS
from pinnprov.store.queries import QUERIES

pytestmark = pytest.mark.slow


def _specs() -> list:
    first = sample_run(1, epochs=40, experiment="paper")
    second = sample_run(2, epochs=25, optimizer="lbfgs", name='run "two", with\\odd text', experiment="paper")
    second.epochs = [dict(e, **{v.LOSS_TOTAL: math.nan}) if e[v.EPOCH] == 7 else e for e in second.epochs]
    third = sample_run(3, epochs=12, ended=False, experiment="other", lr0=5e-4)  # still running
    third.hyperparameters = {**third.hyperparameters, "note": "ünïcødé\nsecond line"}
    return [first, second, third]


def _cli(*args: str) -> str:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli(list(args))
    assert code == 0, (args, err.getvalue())
    return out.getvalue()


def _store_count(collector: Collector, monetdb_url: str) -> tuple[int, int]:
    sqlite = rows(collector.store, "SELECT COUNT(*) FROM epoch_metric")
    try:
        monetdb = _cli("query", "--sql", "SELECT COUNT(*) AS n FROM epoch_metric", "--store", monetdb_url,
                       "--format", "csv").split()[-1]
    except (AssertionError, ValueError):  # the collector has not created the schema yet
        monetdb = "0"
    return (sqlite[0][0] if sqlite else 0), int(monetdb)


def test_both_stores_answer_every_query_identically(tmp_path: Path, monetdb_url: str) -> None:
    config = tmp_path / "collector.yaml"
    config.write_text("rules:\n  - name: loss-high\n    kind: threshold\n    metric: loss\n    op: '>'\n"
                      "    threshold: 20\n    after_epoch: 1\n    actions: [log]\n")
    collector = Collector(tmp_path, "--store", monetdb_url, config=config).start()
    specs = _specs()
    try:
        exporter = OTLPSpanExporter(endpoint=f"http://{collector.grpc}", insecure=True, timeout=30)
        for spec in specs:
            assert exporter.export(build_spans(spec)) is SpanExportResult.SUCCESS
        assert exporter.export(build_spans(specs[0])) is SpanExportResult.SUCCESS  # a replay
        exporter.shutdown()
        total = sum(len(spec.epochs) for spec in specs)
        wait_for(lambda: _store_count(collector, monetdb_url) == (total, total), 120, what="both stores")
        wait_for(lambda: collector.metrics()["sinks"]["monetdb"]["queue_depth"] == 0, 60, what="monetdb drained")
        wait_for(lambda: collector.metrics()["sinks"]["sqlite"]["queue_depth"] == 0, 60, what="sqlite drained")
    finally:
        assert collector.stop() == 0
    stores = {"sqlite": f"sqlite:///{collector.store}", "monetdb": monetdb_url}
    commands: list[tuple[str, ...]] = []
    for name in QUERIES:
        if QUERIES.get(name).needs_run:
            commands += [("query", name, "--run", spec.run_name) for spec in specs]
        else:
            commands.append(("query", name))
    commands += [("query", "epochs", "--run", specs[0].run_name, "--every", "5", "--last", "3"),
                 ("query", "latest", "--experiment", "paper"), ("query", "runs", "--limit", "2"),
                 ("alerts",), ("alerts", "--run", specs[0].run_name), ("runs",)]
    commands += [("query", "--sql", f"SELECT * FROM {view.name} ORDER BY "
                  + ", ".join(str(i + 1) for i in range(len(view.columns)))) for view in VIEWS]
    answers = {kind: {command: _cli(*command, "--store", url, "--format", "json") for command in commands}
               for kind, url in stores.items()}
    for command in commands:
        assert answers["monetdb"][command] == answers["sqlite"][command], command
    assert '"rule": "loss-high"' in answers["sqlite"][("alerts",)]  # the rule fired, so alerts were compared
    for spec in specs:
        documents = {kind: _cli("export-prov", spec.run_name, "--store", url) for kind, url in stores.items()}
        assert documents["monetdb"] == documents["sqlite"], spec.run_name
        assert "pinnprov:EpochMetrics" in documents["sqlite"]
