"""Steering through a MonetDB store (the real server of tests/monetdb_server.py): the run is
written by the real MonetDB sink, `pinnprov steer` queues the command, the real StoreCommandSource hands it out
once and acknowledges it, and a finished run is refused."""

from __future__ import annotations

import contextlib
import io
import secrets
import time

import pytest

pytestmark = pytest.mark.live


def test_steer_poll_and_acknowledge_on_monetdb(monetdb_url: str) -> None:
    from pinnprov.cli import main as cli
    from pinnprov.collector.sinks import open_sink
    from pinnprov.store.access import list_commands, open_store
    from pinnprov.store.records import RunEndRecord, RunStartRecord
    from pinnprov.wiring import store_command_source

    running, finished = secrets.token_hex(16), secrets.token_hex(16)
    tag = secrets.token_hex(3)
    sink = open_sink(monetdb_url)
    try:
        result = sink.export([
            RunStartRecord(running, secrets.token_hex(8), f"steer-live-{tag}", "live", time.time(), {}),
            RunStartRecord(finished, secrets.token_hex(8), f"steer-done-{tag}", "live", time.time(), {}),
            RunEndRecord(finished, secrets.token_hex(8), time.time(), "completed", 1),
        ])
        assert result.ok, result.detail
    finally:
        sink.shutdown()
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        assert cli(["steer", f"steer-live-{tag}", "--store", monetdb_url, "--set-lr", "1e-4"]) == 0
        assert cli(["steer", f"steer-done-{tag}", "--store", monetdb_url, "--stop"]) == 2
    assert "has already ended (status completed)" in err.getvalue()
    with store_command_source(monetdb_url, interval_s=0.1) as source:
        deadline = time.monotonic() + 30
        commands = []
        while not commands and time.monotonic() < deadline:
            commands = source.poll(running, 0)
            time.sleep(0.05)
        assert [(c.kind, c.value) for c in commands] == [("set_lr", 1e-4)]
        source.acknowledge(running, commands[0], True, "applied in test")
    with open_store(monetdb_url) as store:
        (row,) = list_commands(store, running)
    assert (row.state, row.detail) == ("applied", "applied in test")



def test_a_poller_connected_before_the_command_sees_it(monetdb_url: str) -> None:
    """The trainer's store connection is opened once; each poll must see commands committed since."""
    from pinnprov.collector.sinks import open_sink
    from pinnprov.store.access import insert_command
    from pinnprov.store.access import open_store as open_writable
    from pinnprov.store.records import RunStartRecord
    from pinnprov.wiring import store_command_source

    run = secrets.token_hex(16)
    sink = open_sink(monetdb_url)
    try:
        assert sink.export([RunStartRecord(run, secrets.token_hex(8), f"late-{run[:6]}", "live", time.time(), {})]).ok
    finally:
        sink.shutdown()
    with store_command_source(monetdb_url, interval_s=0.05) as source:
        assert source.poll(run, 0) == []
        time.sleep(0.2)  # the worker has read (and kept its connection)
        with open_writable(monetdb_url, read_only=False) as store:
            assert insert_command(store, command_id=secrets.token_hex(8), run_id=run, kind="stop", agent="user:t")
        deadline, commands = time.monotonic() + 30, []
        while not commands and time.monotonic() < deadline:
            commands = source.poll(run, 1)
            time.sleep(0.05)
    assert [c.kind for c in commands] == ["stop"]

TINY = {"lr_decay_rate": 0.99,  # the decay the assertions below assume
        "tau_layers": 2, "tau_units": 8, "velocity_layers": 2, "velocity_units": 8, "collocation_count": 200,
        "boundary_points": 20, "steps_per_call": 20, "stopping": "none", "threads": 1, "seed": 5,
        "lr_initial": 1e-3, "epochs": 10_000_000}


@pytest.mark.slow
def test_pinnprov_train_on_a_monetdb_store_is_steered_live(tmp_path, monetdb_url: str) -> None:
    """Embedded mode on MonetDB: `pinnprov train --store monetdb://` writes the store itself and polls it for
    commands; `pinnprov steer --store monetdb://` from another process changes the learning rate, then stops it."""
    import json
    import os
    import subprocess
    import sys

    pytest.importorskip("tensorflow")
    from collector_process import wait_for

    from pinnprov.store.access import open_store

    config = tmp_path / "tiny.json"
    config.write_text(json.dumps(TINY))
    env = {k: val for k, val in os.environ.items() if not k.startswith(("OTEL_", "PINNPROV_"))}
    env.update(TF_CPP_MIN_LOG_LEVEL="3", PYTHONUNBUFFERED="1", PINNPROV_SPOOL_DIR=str(tmp_path / "spool"))
    pinnprov = [sys.executable, "-m", "pinnprov"]
    trainer = subprocess.Popen([*pinnprov, "train", "--config", str(config), "--run-name", "steer-mdb",
                                "--no-progress", "--store", monetdb_url, "--out", str(tmp_path / "run")],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)

    def epochs() -> list[tuple[int, float]]:
        try:
            with open_store(monetdb_url) as store:
                return [tuple(r) for r in store.execute(
                    'SELECT e."epoch", e.learning_rate FROM epoch_metric e JOIN run r ON r.run_id = e.run_id '
                    "WHERE r.run_name = 'steer-mdb' ORDER BY e.\"epoch\"").rows]
        except ValueError:  # the trainer has not created the schema yet
            return []

    def steer(*flags: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*pinnprov, "steer", "steer-mdb", "--store", monetdb_url, *flags, "--wait", "60"],
                              capture_output=True, text=True, env=env, timeout=120)

    try:
        wait_for(lambda: len(epochs()) >= 20 or trainer.poll() is not None, 180, what="the first epochs")
        assert trainer.poll() is None, trainer.communicate()[1][-2000:]
        lowered = steer("--set-lr", "2.5e-4", "--reason", "live test")
        assert lowered.returncode == 0, lowered.stderr
        stopped = steer("--stop", "--reason", "enough")
        assert stopped.returncode == 0, stopped.stderr
        _, stderr = trainer.communicate(timeout=120)
    finally:
        if trainer.poll() is None:
            trainer.kill()
            trainer.communicate()
    assert trainer.returncode == 0, stderr[-2000:]
    rates = [lr for _, lr in epochs()]
    with open_store(monetdb_url) as store:
        (changed, new), = store.execute(
            "SELECT a.\"epoch\", a.new_value FROM adaptation a JOIN run r ON r.run_id = a.run_id "
            "WHERE r.run_name = 'steer-mdb' AND a.parameter = 'learning_rate' AND a.agent LIKE 'user:%'").rows
    assert float(new) == pytest.approx(2.5e-4, rel=1e-6) and 20 <= changed < len(rates)
    # the exponential decay (0.99 per 1000 steps) runs on, from the new value after the change (the tiny net does
    # ~1000 epochs/s, so thousands may pass before the command is applied)
    decayed = 0.99 ** (len(rates) / 1000 + 1)
    assert all(1e-3 * decayed < lr <= 1e-3 * (1 + 1e-6) for lr in rates[:changed])
    assert all(2.5e-4 * decayed < lr <= 2.5e-4 * (1 + 1e-6) for lr in rates[changed:])
    with open_store(monetdb_url) as store:
        run = store.execute("SELECT status, epochs, last_epoch FROM run WHERE run_name = 'steer-mdb'").rows
        adaptations = store.execute(
            "SELECT a.parameter, a.new_value, a.agent, a.reason FROM adaptation a JOIN run r ON r.run_id = a.run_id "
            "WHERE r.run_name = 'steer-mdb' AND a.agent LIKE 'user:%' ORDER BY a.at").rows
    assert run == [("stopped", len(rates), len(rates) - 1)]
    assert [(p, reason) for p, _, _, reason in adaptations] == [("learning_rate", "live test"), ("stop", "enough")]
    assert all(agent.startswith("user:") for _, _, agent, _ in adaptations)
