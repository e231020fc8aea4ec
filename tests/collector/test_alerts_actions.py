"""Alert actions for real: a webhook to a loopback HTTP server, a real subprocess, steering via a SQLite store.

Non-blocking is shown without timing: the webhook server holds the request until the test releases it,
and the pipeline call has already returned by then.
"""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from prov_builders import run_id
from test_alerts_engine import requests, run_spec

from pinnprov.collector.alerts import AlertEngine, StoreSteering, alert_id, load_rules
from pinnprov.collector.alerts.actions import ActionDispatcher
from pinnprov.collector.pipeline import Pipeline
from pinnprov.store.access import open_store, pending_commands
from pinnprov.store.sqlite_sink import SqliteSink


class Hook:
    """Loopback webhook receiver; `gate` (if set) holds every request until released."""

    def __init__(self, status: int = 200, gate: threading.Event | None = None) -> None:
        self.received: list[tuple[dict[str, str], Any]] = []
        self.arrived = threading.Event()
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                return

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                hook.received.append(({k.lower(): v for k, v in self.headers.items()}, json.loads(body)))
                hook.arrived.set()
                if gate is not None:
                    gate.wait(30)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hook_factory() -> Iterator[Any]:
    hooks: list[Hook] = []

    def make(**options: Any) -> Hook:
        hooks.append(Hook(**options))
        return hooks[-1]

    yield make
    for hook in hooks:
        hook.close()


def pipeline_with(tmp_path: Path, rules: list[dict[str, Any]], **options: Any) -> tuple[Pipeline, AlertEngine]:
    engine = AlertEngine(load_rules(rules), **options)
    return Pipeline([SqliteSink(tmp_path / "prov.db")], processors=[engine]), engine


def feed(pipeline: Pipeline, spec: Any) -> None:
    for request in requests(spec):
        assert pipeline.handle_traces(request).ok


def test_webhook_posts_the_alert_with_secret_headers_from_the_environment(
    tmp_path: Path, hook_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PINNPROV_TEST_HOOK_TOKEN", "t0ken")
    hook = hook_factory()
    rules = [{"name": "hi", "kind": "threshold", "metric": "loss", "threshold": 0.1, "actions": [
        {"type": "webhook", "url": hook.url, "timeout_s": 5,
         "headers": {"Authorization": "Bearer ${PINNPROV_TEST_HOOK_TOKEN}"}}]}]
    pipeline, engine = pipeline_with(tmp_path, rules)
    feed(pipeline, run_spec(1, [1.0, 1.0]))
    assert engine.dispatcher.drain(30)
    ((headers, body),) = hook.received
    assert headers["authorization"] == "Bearer t0ken" and headers["content-type"] == "application/json"
    assert body["rule"] == "hi" and body["run_name"] == "run-1" and body["epoch"] == 0
    assert body["alert_id"] == alert_id("hi", run_id(1), 0) and body["value"] == 1.0
    assert engine.dispatcher.counters.get("actions.webhook.ok") == 1
    pipeline.shutdown()
    with open_store(f"sqlite:///{tmp_path / 'prov.db'}") as store:
        assert store.execute("SELECT actions FROM alert").rows[0][0] == "webhook"
    engine.close()


def test_slow_webhook_never_blocks_ingestion_and_a_full_backlog_drops(tmp_path: Path, hook_factory: Any) -> None:
    gate = threading.Event()
    hook = hook_factory(gate=gate)
    rules = [{"name": "hi", "kind": "threshold", "metric": "loss", "threshold": 0.1,
              "actions": [{"type": "webhook", "url": hook.url, "timeout_s": 60}]}]
    pipeline, engine = pipeline_with(tmp_path, rules, dispatcher=ActionDispatcher(workers=1, max_pending=1))
    feed(pipeline, run_spec(1, [1.0, 0.01, 1.0]))  # fires at 0 and again at 2
    assert hook.arrived.wait(30)  # the first POST is being held by the server ...
    assert not gate.is_set()  # ... and yet every request above has been handled
    assert engine.dispatcher.counters.get("actions.dropped") == 1  # the second firing found the backlog full
    gate.set()
    assert engine.dispatcher.drain(30)
    assert len(hook.received) == 1
    pipeline.shutdown()
    engine.close()


def test_webhook_errors_and_timeouts_are_counted_not_raised(tmp_path: Path, hook_factory: Any) -> None:
    failing = hook_factory(status=500)
    gate = threading.Event()
    hanging = hook_factory(gate=gate)
    rules = [{"name": "hi", "kind": "threshold", "metric": "loss", "threshold": 0.1, "actions": [
        {"type": "webhook", "url": failing.url}, {"type": "webhook", "url": hanging.url, "timeout_s": 0.5}]}]
    pipeline, engine = pipeline_with(tmp_path, rules)
    feed(pipeline, run_spec(1, [1.0]))
    assert engine.dispatcher.drain(30)
    gate.set()
    assert engine.dispatcher.counters.get("actions.webhook.failed") == 2
    pipeline.shutdown()
    engine.close()


def test_command_runs_without_a_shell_with_the_alert_in_argv_and_env(tmp_path: Path) -> None:
    out = tmp_path / "fired.txt"
    script = "import os, sys; open(sys.argv[1], 'w').write(os.environ['PINNPROV_ALERT_RULE'] + ' ' + sys.argv[2])"
    rules = [{"name": "hi", "kind": "threshold", "metric": "loss", "threshold": 0.1, "actions": [
        {"type": "command", "argv": [sys.executable, "-c", script, str(out), "{run_name}@{epoch} $(touch x); ls"],
         "timeout_s": 60}]}]
    pipeline, engine = pipeline_with(tmp_path, rules)
    feed(pipeline, run_spec(1, [1.0]))
    assert engine.dispatcher.drain(60)
    assert out.read_text() == "hi run-1@0 $(touch x); ls"  # passed literally: no shell
    assert engine.dispatcher.counters.get("actions.command.ok") == 1
    pipeline.shutdown()
    engine.close()


def test_command_timeout_and_failure_are_counted(tmp_path: Path) -> None:
    rules = [{"name": "hi", "kind": "threshold", "metric": "loss", "threshold": 0.1, "actions": [
        {"type": "command", "argv": [sys.executable, "-c", "import time; time.sleep(60)"], "timeout_s": 0.5},
        {"type": "command", "argv": [sys.executable, "-c", "raise SystemExit(3)"]}]}]
    pipeline, engine = pipeline_with(tmp_path, rules)
    feed(pipeline, run_spec(1, [1.0]))
    assert engine.dispatcher.drain(60)
    assert engine.dispatcher.counters.get("actions.command.failed") == 2
    pipeline.shutdown()
    engine.close()


def test_steer_queues_one_command_per_firing_in_the_store(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'prov.db'}"
    rules = [{"name": "slow", "kind": "threshold", "metric": "loss", "threshold": 0.1,
              "actions": [{"type": "steer", "command": "scale_lr", "value": 0.5}]}]
    pipeline, engine = pipeline_with(tmp_path, rules, steer=StoreSteering(url))
    spec = run_spec(1, [1.0, 1.0])
    feed(pipeline, spec)
    feed(pipeline, spec)  # replay: no second command
    assert engine.dispatcher.drain(60)
    assert engine.dispatcher.counters.get("actions.steer.ok") == 1
    with open_store(url) as store:
        (command,) = pending_commands(store, run_id(1))
    assert (command.kind, command.value, command.agent) == ("scale_lr", 0.5, "rule:slow")
    assert command.command_id == alert_id("slow", run_id(1), 0)
    assert command.reason == "run run-1 epoch 0: loss = 1 > 0.1"
    pipeline.shutdown()
    engine.close()


def test_steer_without_a_channel_or_for_a_finished_run_fails_loudly_but_safely(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'prov.db'}"
    rules = [{"name": "stop", "kind": "threshold", "metric": "loss", "threshold": 0.1,
              "actions": [{"type": "steer", "command": "stop"}]}]
    spec = run_spec(2, [0.01, 1.0], ended=True)
    plain = Pipeline([SqliteSink(tmp_path / "prov.db")])
    feed(plain, spec)  # the store already holds the run, completed
    plain.shutdown()
    pipeline, engine = pipeline_with(tmp_path, rules, steer=StoreSteering(url, wait_for_run_s=1))
    feed(pipeline, spec)  # a fresh engine (e.g. after a collector restart) fires for the finished run
    assert engine.dispatcher.drain(60)
    assert engine.dispatcher.counters.get("actions.steer.failed") == 1
    pipeline.shutdown()
    engine.close()
    no_channel = AlertEngine(load_rules(rules))
    no_channel(list(run_spec_records()))
    assert no_channel.dispatcher.drain(30)
    assert no_channel.dispatcher.counters.get("actions.steer.failed") == 1
    no_channel.close()


def run_spec_records() -> list[Any]:
    from pinnprov.collector.translate import translate_traces

    return [record for request in requests(run_spec(3, [1.0])) for record in translate_traces(request).records]
