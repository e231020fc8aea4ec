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
    from collector.records import RunEndRecord, RunStartRecord
    from collector.sinks import open_sink
    from collector.store import list_commands, open_store
    from pinnprov.capture import store_command_source
    from pinnprov.cli import main as cli

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
