"""Alert state survives a collector restart: a firing is notified once, whatever is replayed or restarted.

In-process with a real SQLite store and a real webhook receiver (the engine rebuilt = a restart), then with a
real `pinnprov collector` process stopped and started again between the epochs of one run.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests as http
from collector_process import Collector, rows, wait_for
from prov_builders import run_id
from test_alerts_actions import Hook
from test_alerts_engine import requests, run_spec

from pinnprov.collector.alerts import AlertEngine, StoreAlertState, alert_id, load_rules
from pinnprov.collector.pipeline import Pipeline
from pinnprov.store.sqlite_sink import SqliteSink


@pytest.fixture
def hook() -> Iterator[Hook]:
    made = Hook()
    yield made
    made.close()


class Collector1:
    """One 'collector lifetime' in-process: engine with its state in the store, pipeline into SQLite."""

    def __init__(self, db: Path, hook: Hook, state_url: str | None = None) -> None:
        rules = [{"name": "hi", "kind": "threshold", "metric": "loss", "threshold": 0.1,
                  "actions": [{"type": "webhook", "url": hook.url, "timeout_s": 5}]}]
        self.engine = AlertEngine(load_rules(rules), state=StoreAlertState(state_url or f"sqlite:///{db}"))
        self.pipeline = Pipeline([SqliteSink(db)], processors=[self.engine])

    def feed(self, losses: list[float], skip: int = 0) -> None:
        for request in requests(run_spec(1, losses))[1 + skip:]:  # without the run start after the first
            assert self.pipeline.handle_traces(request).ok

    def stop(self) -> None:
        assert self.engine.dispatcher.drain(30)
        self.pipeline.shutdown()
        self.engine.close()


@pytest.fixture(params=["sqlite", "monetdb"])
def state_url(request: pytest.FixtureRequest) -> str | None:
    """Where the engine keeps its memory: the SQLite store itself, or a real MonetDB (tests/monetdb_server.py)."""
    return None if request.param == "sqlite" else str(request.getfixturevalue("monetdb_url"))


def test_restarts_and_replays_never_notify_a_firing_twice(tmp_path: Path, hook: Hook, state_url: str | None) -> None:
    db = tmp_path / "prov.db"
    first = Collector1(db, hook, state_url)
    assert first.pipeline.handle_traces(requests(run_spec(1, [1.0]))[0]).ok  # the run start
    first.feed([1.0, 1.0, 1.0])  # fires at epoch 0, then stays quiet while it holds
    first.stop()
    assert len(hook.received) == 1 and hook.received[0][1]["epoch"] == 0

    second = Collector1(db, hook, state_url)  # restarted: nothing in memory
    second.feed([1.0, 1.0, 1.0])  # the spool replays what the first may not have delivered
    second.feed([1.0] * 6, skip=1)  # epochs 3..5: still holding, the rule is still firing
    replayed = second.engine(list(_epoch_records(run_spec(1, [1.0]))))  # epoch 0 once more, directly
    assert [a.alert_id for a in replayed] == [alert_id("hi", run_id(1), 0)]  # its record comes back ...
    second.stop()
    assert len(hook.received) == 1  # ... and nobody is told twice
    assert second.engine.counters.get("epochs.replayed") >= 4

    third = Collector1(db, hook, state_url)
    third.feed([1.0] * 6 + [0.01], skip=2)  # epoch 6 recovers: re-armed, and that is remembered ...
    third.stop()
    fourth = Collector1(db, hook, state_url)
    fourth.feed([1.0] * 6 + [0.01, 1.0, 1.0], skip=2)  # ... so epoch 7 fires (and notifies) once
    fourth.stop()
    assert [body["epoch"] for _, body in hook.received] == [0, 7]
    assert rows(db, 'SELECT "epoch" FROM alert ORDER BY "epoch"') == [(0,), (7,)]


def _epoch_records(spec: Any) -> Iterator[Any]:
    from pinnprov.collector.translate import translate_traces

    for request in requests(spec)[1:]:
        yield from translate_traces(request).records


@pytest.mark.slow
def test_a_real_collector_restart_notifies_a_firing_once(tmp_path: Path, hook: Hook) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(f"rules:\n  - name: loss-high\n    kind: threshold\n    metric: loss\n    threshold: 0.1\n"
                     f"    actions: [{{type: webhook, url: '{hook.url}', timeout_s: 5}}]\n")
    collector = Collector(tmp_path, "--rules-file", str(rules), "--log-interval-s", "0")
    batches = requests(run_spec(3, [1.0] * 10), chunk=5)  # run start, epochs 0-4, epochs 5-9

    def post(request: Any) -> None:
        answer = http.post(f"{collector.http}/v1/traces", data=request.SerializeToString(), timeout=30,
                           headers={"Content-Type": "application/x-protobuf"})
        assert answer.status_code == 200

    def epochs() -> int:
        return len(rows(collector.store, "SELECT 1 FROM epoch_metric WHERE run_id = ?", (run_id(3),)))

    collector.start()
    post(batches[0])
    post(batches[1])
    wait_for(lambda: epochs() == 5 and rows(collector.store, "SELECT 1 FROM alert"), what="first epochs, alert")
    assert collector.stop() == 0  # drains the webhook
    assert len(hook.received) == 1
    collector.start()  # same spool, store and ports
    post(batches[1])  # a client retrying what it is not sure was received
    post(batches[2])
    wait_for(lambda: epochs() == 10, what="all epochs after the restart")
    assert collector.stop() == 0
    assert len(hook.received) == 1, [body for _, body in hook.received]
    assert rows(collector.store, 'SELECT rule, "epoch" FROM alert') == [("loss-high", 0)]
    assert rows(collector.store, "SELECT COUNT(*) FROM alert_engine_fired") == [(1,)]
