"""Alert rules on real pipelines: real SDK spans -> OTLP requests -> Pipeline -> AlertEngine -> SqliteSink file.

Each scenario feeds epochs in several requests (as a trainer's batch exporter would) and checks the
alert rows in the SQLite file: rules fire exactly at the epoch they start to hold, not again while
they keep holding, again after recovery; replays and shared engines never duplicate rows or actions.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from prov_builders import RunSpec, build_spans, epoch_attributes, run_id

from pinnprov.collector.alerts import AlertEngine, load_rules
from pinnprov.collector.alerts.actions import ActionDispatcher
from pinnprov.collector.pipeline import Pipeline
from pinnprov.collector.translate import translate_traces
from pinnprov.core import vocabulary as v
from pinnprov.store.access import open_store
from pinnprov.store.sqlite_sink import SqliteSink


def run_spec(n: int, losses: Sequence[float], *, data: Sequence[float] | None = None,
             elapsed: Sequence[float] | None = None, experiment: str = "exp", ended: bool = False) -> RunSpec:
    rows = [
        epoch_attributes(e, loss=loss, bc=1e-6, residual=1e-3, data=(data[e] if data else 1e-3), lr=1e-3,
                         elapsed=(elapsed[e] if elapsed else 0.5))
        for e, loss in enumerate(losses)
    ]
    end = {v.RUN_STATUS: "completed", v.RUN_EPOCHS: len(losses)} if ended else None
    return RunSpec(run_id=run_id(n), run_name=f"run-{n}", experiment=experiment,
                   hyperparameters={"optimizer": "adam", "activation": "tanh"}, epochs=rows, end=end)


def requests(spec: RunSpec, chunk: int = 3) -> list[Any]:
    """The run's spans as several OTLP requests: run start first, then epochs in chunks, then the rest."""
    spans = build_spans(spec)
    starts = [s for s in spans if s.name == v.RUN_START_SPAN]
    epochs = [s for s in spans if s.name == v.EPOCH_SPAN]
    rest = [s for s in spans if s.name not in (v.RUN_START_SPAN, v.EPOCH_SPAN)]
    batches = [starts] + [epochs[i : i + chunk] for i in range(0, len(epochs), chunk)] + ([rest] if rest else [])
    return [encode_spans(batch) for batch in batches]


class Harness:
    def __init__(self, path: Path, rules: list[dict[str, Any]], **engine_options: Any) -> None:
        self.path = path
        self.engine = AlertEngine(load_rules(rules), **engine_options)
        self.sink = SqliteSink(path)
        self.pipeline = Pipeline([self.sink], processors=[self.engine])

    def feed(self, *specs: RunSpec, chunk: int = 3) -> None:
        for spec in specs:
            for request in requests(spec, chunk):
                result = self.pipeline.handle_traces(request)
                assert result.ok, result.detail

    def alerts(self, rule: str | None = None) -> list[tuple[Any, ...]]:
        self.pipeline.force_flush()
        with open_store(f"sqlite:///{self.path}") as store:
            sql = 'SELECT rule, run_id, "epoch", metric, "value", threshold, message, actions FROM alert'
            rows = store.execute(sql + ' ORDER BY run_id, "epoch", rule').rows
        return [tuple(row) for row in rows if rule is None or row[0] == rule]

    def close(self) -> None:
        self.pipeline.shutdown()
        self.engine.close()


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Callable[..., Harness]]:
    made: list[Harness] = []

    def make(rules: list[dict[str, Any]], name: str = "prov.db", **options: Any) -> Harness:
        made.append(Harness(tmp_path / name, rules, **options))
        return made[-1]

    yield make
    for h in made:
        h.close()


def test_threshold_after_epoch_fires_once_then_rearms_after_recovery(harness: Callable[..., Harness]) -> None:
    h = harness([{"name": "loss-high", "kind": "threshold", "metric": "loss", "threshold": 1e-2, "after_epoch": 5,
                  "actions": []}])
    # above the threshold from the start, but only epochs >= 5 count; below at 10-12; above again at 13-15
    losses = [1.0] * 10 + [1e-3] * 3 + [0.5] * 3
    h.feed(run_spec(1, losses))
    rows = h.alerts()
    assert [(r[0], r[2]) for r in rows] == [("loss-high", 5), ("loss-high", 13)]
    rule, run, epoch, metric, value, threshold, message, actions = rows[0]
    assert (run, metric, value, threshold, actions) == (run_id(1), "loss", 1.0, 1e-2, "")
    assert message == "run run-1 epoch 5: loss = 1 > 0.01"


def test_for_consecutive_epochs(harness: Callable[..., Harness]) -> None:
    h = harness([{"name": "streak", "kind": "threshold", "metric": "total", "op": ">=", "threshold": 1.0,
                  "for_epochs": 3}])
    losses = [0.1, 0.1, 0.1, 2.0, 2.0, 0.1, 1.0, 1.0, 1.0, 1.0]  # 3-4: only two in a row; 6-9: fires at 8
    h.feed(run_spec(1, losses), chunk=2)
    assert [r[2] for r in h.alerts()] == [8]
    assert h.alerts()[0][6].endswith("loss = 1 >= 1 for 3 epochs")


def test_data_loss_not_improving(harness: Callable[..., Harness]) -> None:
    h = harness([{"name": "stalled", "kind": "no_improvement", "metric": "data", "epochs": 3, "min_delta": 0.01}])
    data = [1.0, 0.5, 0.25, 0.2, 0.199, 0.2, 0.21, 0.2, 0.1, 0.1, 0.1, 0.1, 0.1]
    #  best 0.2 at epoch 3 (0.199 is <1% better: not an improvement) -> fires at 6; new best at 8 -> fires at 11
    h.feed(run_spec(1, [1.0] * len(data), data=data))
    rows = h.alerts()
    assert [r[2] for r in rows] == [6, 11]
    assert rows[0][4] == 0.21 and rows[0][5] == 0.2  # value: current, threshold: the best it failed to beat
    assert "has not improved on 0.2 (epoch 3) for 3 epochs" in rows[0][6]


def test_epoch_time_relative_to_the_runs_median(harness: Callable[..., Harness]) -> None:
    h = harness([{"name": "slow", "kind": "relative_to_median", "metric": "epoch_time", "factor": 3,
                  "min_samples": 5}])
    elapsed = [0.5, 0.6, 0.5, 2.0, 0.5, 0.55, 0.5, 0.5, 1.6, 1.7, 0.5, 5.0]
    # epoch 3 (2.0) comes before 5 samples exist; median later is 0.5 -> 1.6 fires (>1.5), 1.7 still firing,
    # 0.5 recovers, 5.0 fires again
    h.feed(run_spec(1, [1.0] * len(elapsed), elapsed=elapsed))
    rows = h.alerts()
    assert [r[2] for r in rows] == [8, 11]
    assert rows[0][5] == pytest.approx(1.5)


def test_non_finite_loss_fires(harness: Callable[..., Harness]) -> None:
    h = harness([{"name": "diverged", "kind": "non_finite"}])
    h.feed(run_spec(1, [1.0, 0.5, math.nan, math.inf, 0.4]))
    rows = h.alerts()
    assert [r[2] for r in rows] == [2]
    assert "loss is nan" in rows[0][6]


def test_scope_selects_runs(harness: Callable[..., Harness]) -> None:
    h = harness([
        {"name": "sweep-a", "kind": "threshold", "metric": "loss", "threshold": 0.1, "scope": {"experiment": "a"}},
        {"name": "run-2-only", "kind": "threshold", "metric": "loss", "threshold": 0.1, "scope": {"run": "run-2"}},
    ])
    h.feed(run_spec(1, [1.0, 1.0], experiment="a"), run_spec(2, [1.0, 1.0], experiment="b"))
    assert [(r[0], r[1]) for r in h.alerts()] == [("sweep-a", run_id(1)), ("run-2-only", run_id(2))]


def test_replayed_requests_neither_duplicate_rows_nor_rerun_actions(harness: Callable[..., Harness]) -> None:
    dispatcher = ActionDispatcher()
    h = harness([{"name": "hi", "kind": "threshold", "metric": "loss", "threshold": 0.1}], dispatcher=dispatcher)
    spec = run_spec(1, [1.0, 1.0, 0.01, 1.0])
    h.feed(spec)
    h.feed(spec)  # at-least-once delivery: the whole run again
    assert [r[2] for r in h.alerts()] == [0, 3]
    assert h.engine.counters.get("alerts.fired") == 2
    assert h.engine.counters.get("epochs.replayed") == 4
    replayed = h.engine(list(translate_traces(requests(spec, chunk=10)[1]).records))
    assert [a.epoch for a in replayed] == [0, 3]  # the replay returns the original alerts, same ids


def test_one_engine_shared_by_two_sinks_fires_actions_once(tmp_path: Path) -> None:
    dispatcher = ActionDispatcher()
    engine = AlertEngine(load_rules([{"name": "hi", "kind": "threshold", "metric": "loss", "threshold": 0.1,
                                      "actions": ["log"]}]), dispatcher=dispatcher)
    sinks = [SqliteSink(tmp_path / "a.db"), SqliteSink(tmp_path / "b.db")]
    pipelines = [Pipeline([sink], processors=[engine]) for sink in sinks]
    for request in requests(run_spec(1, [1.0, 0.01, 1.0]), chunk=1):
        for pipeline in pipelines:
            assert pipeline.handle_traces(request).ok
    for pipeline, name in zip(pipelines, ("a.db", "b.db"), strict=True):
        pipeline.force_flush()
        with open_store(f"sqlite:///{tmp_path / name}") as store:
            assert [row[0] for row in store.execute('SELECT "epoch" FROM alert ORDER BY "epoch"').rows] == [0, 2]
        pipeline.shutdown()
    assert engine.counters.get("alerts.fired") == 2
    engine.close()


def test_a_faulty_rule_context_never_loses_provenance(harness: Callable[..., Harness]) -> None:
    # An extra scalar that the run never reports: the rule simply never holds; epochs are still written.
    h = harness([{"name": "rms", "kind": "threshold", "metric": "extra.data_rms_s", "threshold": 1.0}])
    h.feed(run_spec(1, [1.0, 1.0]))
    assert h.alerts() == []
    with open_store(f"sqlite:///{h.path}") as store:
        assert store.execute("SELECT COUNT(*) FROM epoch_metric").rows[0][0] == 2


def test_epoch_time_relative_to_the_experiments_median(harness: Callable[..., Harness]) -> None:
    h = harness([{"name": "slowest", "kind": "relative_to_median", "metric": "elapsed_s", "factor": 2,
                  "baseline": "experiment", "min_samples": 4, "scope": {"experiment": "sweep"}}])
    h.feed(run_spec(1, [1.0] * 4, elapsed=[0.5] * 4, experiment="sweep"),
           run_spec(2, [1.0] * 3, elapsed=[0.6, 1.5, 0.7], experiment="sweep"),  # 1.5 > 2 x median 0.5
           run_spec(3, [1.0] * 3, elapsed=[5.0] * 3, experiment="other"))  # other experiment: not watched
    rows = h.alerts()
    assert [(r[1], r[2]) for r in rows] == [(run_id(2), 1)]
    assert rows[0][5] == pytest.approx(1.0) and "2 x experiment median" in rows[0][6]


def test_before_epoch_closes_the_window(harness: Callable[..., Harness]) -> None:
    h = harness([{"name": "early", "kind": "threshold", "metric": "loss", "threshold": 0.5, "after_epoch": 2,
                  "before_epoch": 4}])
    h.feed(run_spec(1, [1.0, 1.0, 0.1, 0.1, 0.1, 1.0, 1.0]))  # above at 0-1 (too early) and 5-6 (too late)
    assert h.alerts() == []
    h2 = harness([{"name": "early", "kind": "threshold", "metric": "loss", "threshold": 0.5, "after_epoch": 2,
                   "before_epoch": 4}], name="b.db")
    h2.feed(run_spec(1, [0.1, 0.1, 0.1, 1.0, 1.0, 1.0]))
    assert [r[2] for r in h2.alerts()] == [3]


def test_epochs_of_a_batch_are_evaluated_in_order_whatever_their_order() -> None:
    rules = load_rules([{"name": "streak", "kind": "threshold", "metric": "loss", "threshold": 0.5, "for_epochs": 2,
                         "actions": []}])
    records = [r for request in requests(run_spec(1, [0.1, 1.0, 1.0, 0.1, 1.0])) for r in
               translate_traces(request).records]
    in_order, shuffled = AlertEngine(rules), AlertEngine(rules)
    expected = [a.epoch for a in in_order(records)]
    assert expected == [2]
    assert [a.epoch for a in shuffled(list(reversed(records)))] == expected


def test_scoped_rules_find_runs_in_the_store_after_a_restart(tmp_path: Path) -> None:
    from pinnprov.collector.alerts import store_run_lookup

    spec = run_spec(4, [1.0, 1.0, 1.0, 1.0], experiment="sweep")
    first = Harness(tmp_path / "prov.db", [])
    first.feed(spec)  # the run (and its start record) reach the store before the restart
    first.close()
    rules = [{"name": "sweep", "kind": "threshold", "metric": "loss", "threshold": 0.5,
              "scope": {"experiment": "sweep"}}]
    url = f"sqlite:///{tmp_path / 'prov.db'}"
    blind, informed = AlertEngine(load_rules(rules)), AlertEngine(load_rules(rules), run_lookup=store_run_lookup(url))
    late_epochs = list(translate_traces(requests(spec, chunk=10)[1]).records)  # epochs only, no start
    assert blind(late_epochs) == []
    assert [a.epoch for a in informed(late_epochs)] == [0]
