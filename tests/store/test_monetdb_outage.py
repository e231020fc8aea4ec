"""MonetDB goes away behind a running collector while `pinnprov train` sends it epochs, twice: a clean shutdown,
then SIGKILL of mserver5, each time back 20 s later on the same port.

Real processes throughout: a TensorFlow trainer (`pinnprov train --otlp-endpoint`), `pinnprov collector` with a
SQLite and a MonetDB store, and a MonetDB server of the test's own. While MonetDB is down the collector must
report it degraded (healthz, metrics) and keep running; once it is back every epoch must be in MonetDB exactly
once (the same as in SQLite), and MonetDB must still be up: the old sink's replay crashed it on every retry.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pymonetdb
import pytest
import requests
from collector_process import Collector, rows, wait_for
from monetdb_server import MonetdbServer

from pinnprov.store.monetdb_store import parse_monetdb_url

pytest.importorskip("tensorflow")
pytestmark = pytest.mark.slow

OUTAGE_S = 20.0
RUN = "monetdb-outage"
TINY = {"tau_layers": 2, "tau_units": 8, "velocity_layers": 2, "velocity_units": 8, "collocation_count": 200,
        "boundary_points": 20, "steps_per_call": 20, "stopping": "none", "threads": 1, "seed": 11,
        "epochs": 10_000_000}
_EPOCHS_SQL = ("SELECT e.\"epoch\" FROM epoch_metric e JOIN run r ON r.run_id = e.run_id "
               f"WHERE r.run_name = '{RUN}' ORDER BY e.\"epoch\"")


def _monetdb_epochs(url: str) -> list[int]:
    """The run's epochs in MonetDB; [] while it is down or the schema is not there yet."""
    try:
        conn = pymonetdb.connect(autocommit=True, connect_timeout=5, **parse_monetdb_url(url))
    except (OSError, pymonetdb.Error):
        return []
    try:
        cursor = conn.cursor()
        cursor.execute(_EPOCHS_SQL)
        return [row[0] for row in cursor.fetchall()]
    except pymonetdb.Error:
        return []
    finally:
        conn.close()


def _sqlite_epochs(collector: Collector) -> list[int]:
    return [row[0] for row in rows(collector.store, _EPOCHS_SQL.replace('"', ""))]


def _health(collector: Collector) -> dict[str, Any]:
    return dict(requests.get(f"{collector.http}/healthz", timeout=30).json())


def _trainer(tmp_path: Path, collector: Collector) -> subprocess.Popen[str]:
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps(TINY))
    env = {k: val for k, val in os.environ.items() if not k.startswith(("OTEL_", "PINNPROV_"))}
    env.update(TF_CPP_MIN_LOG_LEVEL="3", PYTHONUNBUFFERED="1", PINNPROV_SPOOL_DIR=str(tmp_path / "trainer-spool"))
    command = [sys.executable, "-m", "pinnprov", "train", "--config", str(config), "--run-name", RUN, "--no-progress",
               "--otlp-endpoint", f"http://{collector.grpc}", "--out", str(tmp_path / "run")]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def _outage(server: MonetdbServer, collector: Collector, how: Callable[[], None]) -> None:
    """Take MonetDB away with `how`, check the collector says so and keeps going, bring it back after OUTAGE_S."""
    before = len(_sqlite_epochs(collector))
    how()
    gone = time.monotonic()
    assert not server.alive()
    health = wait_for(lambda: (h := _health(collector))["status"] == "degraded" and h, 30, what="degraded")
    assert health["sinks_retrying"] == ["monetdb"]
    sink = collector.metrics()["sinks"]["monetdb"]
    assert sink["state"] == "retrying" and sink["last_error"], sink
    wait_for(lambda: len(_sqlite_epochs(collector)) > before + 20, 30, what="training goes on meanwhile")
    time.sleep(max(0.0, OUTAGE_S - (time.monotonic() - gone)))
    assert collector.proc is not None and collector.proc.poll() is None, "the collector exited"
    server.start()  # same directory, same port
    backlog = len(_sqlite_epochs(collector))  # what MonetDB missed; the trainer keeps adding to it
    wait_for(lambda: len(_monetdb_epochs(server.url)) >= backlog, 120, what="MonetDB catching up")
    wait_for(lambda: _health(collector)["status"] == "ok", 60, what="healthy again")


def test_monetdb_stopped_and_killed_during_training(tmp_path: Path,
                                                     monetdb_launch: Callable[[], MonetdbServer]) -> None:
    server = monetdb_launch()
    collector = Collector(tmp_path, "--store", server.url).start()
    try:
        _train_through_two_outages(tmp_path, server, collector)
    finally:
        stopped = collector.stop()
    assert stopped == 0
    log = collector.log.read_text()
    # Each outage is said once per batch in flight (two per sink), not once per retry; and it is said to be over.
    assert 2 <= log.count("sink monetdb unavailable") <= 4 and 2 <= log.count("sink monetdb is writing again") <= 4
    assert "Could not connect" not in log and "Traceback" not in log, log[-3000:]


def _train_through_two_outages(tmp_path: Path, server: MonetdbServer, collector: Collector) -> None:
    collector_pid = collector.proc.pid if collector.proc else 0
    trainer = _trainer(tmp_path, collector)
    try:
        wait_for(lambda: len(_monetdb_epochs(server.url)) >= 20 or trainer.poll() is not None, 180,
                 what="the first epochs in MonetDB")
        assert trainer.poll() is None, trainer.communicate()[1][-2000:]
        _outage(server, collector, server.stop)
        _outage(server, collector, server.kill)
        assert trainer.poll() is None, "the trainer ended before the second outage was over"
    finally:
        trainer.send_signal(signal.SIGINT)
        _, stderr = trainer.communicate(timeout=120)
    assert trainer.returncode == 130, stderr[-2000:]
    status = wait_for(lambda: rows(collector.store, "SELECT status, epochs FROM run WHERE run_name = ?", (RUN,)),
                      60, what="the run end in SQLite")
    # SQLite never went away: it holds every epoch the trainer captured (on SIGINT the run end's `epochs` can be
    # one less than the epochs captured: the interrupted chunk's last epoch is reported but not counted).
    captured = _sqlite_epochs(collector)
    assert status[0][1] > 100 and captured == list(range(len(captured))) and len(captured) >= status[0][1]
    stored = wait_for(lambda: (e := _monetdb_epochs(server.url)) and len(e) >= len(captured) and e, 120,
                      what="every epoch in MonetDB")
    assert stored == captured  # each exactly once, none missing
    assert server.alive() and _health(collector)["status"] == "ok"
    assert collector.proc is not None and collector.proc.pid == collector_pid and collector.proc.poll() is None
