"""The paper's standing steering rule on a real SQLite store: every poor run is stopped, whenever it is judged.

Runs are written through the collector's own sink (run starts and epochs, as trainers' telemetry would be); the
rule reads them back with the named queries and queues stop commands through the store. Eight runs shaped like
the issue's full study: two RMSProp runs an order of magnitude worse than the rest at the warm-up, one of them
reaching it only after the others finished (in a wave that a once-per-wave decision never compared).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from pathlib import Path

from pinnprov.collector.sinks import open_sink
from pinnprov.experiments.grid import GridPoint
from pinnprov.experiments.poor_run_rule import PoorRunRule
from pinnprov.experiments.storeview import StoreView
from pinnprov.store.access import list_commands, open_store
from pinnprov.store.records import EpochRecord, RunEndRecord, RunStartRecord

WARMUP = 100


@dataclass
class FakeRun:  # the sweep's view of a run: name, status, grid point (no process needed by the rule)
    run_name: str
    point: GridPoint
    status: str = "running"


@dataclass
class FakeSweep:
    runs: list[FakeRun] = field(default_factory=list)


def _write(url: str, name: str, losses: dict[int, float], ended: bool = False) -> str:
    run_id = secrets.token_hex(16)
    records: list[object] = [RunStartRecord(run_id=run_id, record_id=secrets.token_hex(8), run_name=name,
                                            experiment="study", started_at=1.0, hyperparameters={})]
    records += [EpochRecord(run_id=run_id, record_id=secrets.token_hex(8), epoch=e, started_at=1.0 + e,
                            ended_at=2.0 + e, elapsed_s=1.0, loss=loss, loss_bc=0.0, loss_residual=loss,
                            loss_data=0.0, learning_rate=1e-3) for e, loss in losses.items()]
    if ended:
        records.append(RunEndRecord(run_id=run_id, record_id=secrets.token_hex(8), ended_at=9.0, status="completed",
                                    epochs=max(losses) + 1, run_name=name, experiment="study"))
    sink = open_sink(url)
    try:
        assert sink.export(records).ok
        sink.force_flush()
    finally:
        sink.shutdown()
    return run_id


def test_every_poor_run_is_stopped_even_one_that_reaches_the_warmup_late(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'prov.db'}"
    at_warmup = {"adam-tanh": 1e-3, "adam-sine": 1.5e-3, "adam-sigmoid": 2e-3, "adam-relu": 1.2e-3,
                 "rmsprop-tanh": 1.2e-3, "rmsprop-sine": 2.5e-3, "rmsprop-sigmoid": 1.1e-2, "rmsprop-relu": 1.3e-2}
    sweep = FakeSweep([FakeRun(name, GridPoint((("optimizer", name.split("-")[0]),))) for name in at_warmup])
    lines: list[str] = []
    rule = PoorRunRule(StoreView(url), "study", WARMUP, lambda run: run.point.as_dict()["optimizer"] == "rmsprop",
                       lines.append, factor=3.0, min_runs=4)
    ids = {}
    # first wave: six runs past the warm-up (the adam ones already done), rmsprop-relu still early
    for name in list(at_warmup)[:7]:
        done = name.startswith("adam")
        ids[name] = _write(url, name, {0: 1.0, WARMUP: at_warmup[name], WARMUP + 50: at_warmup[name]}, ended=done)
        if done:
            next(run for run in sweep.runs if run.run_name == name).status = "completed"
    ids["rmsprop-relu"] = _write(url, "rmsprop-relu", {0: 1.0, 50: 0.1})
    rule._last_check = -1e9
    rule(sweep)
    assert [d.run_name for d in rule.decisions] == ["rmsprop-sigmoid"]
    # later the last run reaches the warm-up: judged on its own loss there, against the same median
    _write_more(url, ids["rmsprop-relu"], {WARMUP: at_warmup["rmsprop-relu"], WARMUP + 20: 1.2e-2})
    rule._last_check = -1e9
    rule(sweep)
    assert [d.run_name for d in rule.decisions] == ["rmsprop-sigmoid", "rmsprop-relu"]
    relu = rule.decisions[1]
    assert relu.epoch == WARMUP + 20 and relu.loss == 1.3e-2  # stopped where it is, judged on its L at the warm-up
    assert "more than 3 x the median L=0.00175 of 8 runs" in relu.reason and "of 8 runs at epoch 100" in relu.reason
    assert rule.judged["rmsprop-tanh"].startswith("kept: L=0.0012 <= 3 x median")
    with open_store(url) as store:
        stops = {c.run_id: c for c in list_commands(store)}
    assert set(stops) == {ids["rmsprop-sigmoid"], ids["rmsprop-relu"]}
    assert all(c.kind == "stop" and c.agent.startswith("user:") and c.state == "pending" for c in stops.values())
    rule._last_check = -1e9
    rule(sweep)  # judged once: no second command
    assert len(rule.decisions) == 2 and len(lines) == 2


def _write_more(url: str, run_id: str, losses: dict[int, float]) -> None:
    sink = open_sink(url)
    try:
        assert sink.export([EpochRecord(run_id=run_id, record_id=secrets.token_hex(8), epoch=e, started_at=1.0 + e,
                                        ended_at=2.0 + e, elapsed_s=1.0, loss=loss, loss_bc=0.0, loss_residual=loss,
                                        loss_data=0.0, learning_rate=1e-3) for e, loss in losses.items()]).ok
        sink.force_flush()
    finally:
        sink.shutdown()


def test_nothing_poor_says_why(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'prov.db'}"
    sweep = FakeSweep([FakeRun(n, GridPoint((("optimizer", n.split("-")[0]),))) for n in ("adam-a", "rmsprop-a")])
    for run in sweep.runs:
        _write(url, run.run_name, {WARMUP: 1e-3})
    rule = PoorRunRule(StoreView(url), "study", WARMUP, lambda run: run.point.as_dict()["optimizer"] == "rmsprop",
                       lambda line: None, factor=3.0)
    rule._last_check = -1e9
    rule(sweep)
    note = rule.summary(sweep.runs).note
    assert note.startswith("no run was poor by the rule (rmsprop-a: kept: L=0.001 <= 3 x median L=0.001 of 2 runs")
