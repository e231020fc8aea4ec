"""Remote steering: the collector's /v1/steering handlers on a real SQLite store, the HttpCommandSource against
a real `pinnprov collector` process (bearer token, loopback), and a real training run steered through it."""

from __future__ import annotations

import contextlib
import io
import json
import socket
import threading
import time
from pathlib import Path

import pytest
from collector_process import Collector, rows, wait_for

from pinnprov.capture.steering_poller import HttpCommandSource, steering_endpoint
from pinnprov.collector.steering_http import handle_steering_ack, handle_steering_get, handle_steering_request
from pinnprov.core import steering
from pinnprov.store import steering_channel as channel
from pinnprov.store.access import open_store
from pinnprov.store.records import RunEndRecord, RunStartRecord
from pinnprov.store.sqlite_sink import SqliteSink
from pinnprov.wiring import command_source_for

TOKEN = "steering-token-for-tests"
RUNNING, FINISHED = "a" * 32, "b" * 32


def _make_store(path: Path) -> None:
    sink = SqliteSink(path)
    try:
        records = [RunStartRecord(run_id=r, record_id=f"{i + 1:016x}", run_name=f"run-{i}", experiment="x",
                                  started_at=time.time(), hyperparameters={})
                   for i, r in enumerate((RUNNING, FINISHED))]
        records.append(RunEndRecord(run_id=FINISHED, record_id=f"{9:016x}", ended_at=time.time(), status="completed",
                                    epochs=3))
        assert sink.export(records).ok
    finally:
        sink.shutdown()


@pytest.fixture()
def store(tmp_path: Path):
    _make_store(tmp_path / "prov.db")
    with open_store(f"sqlite:///{tmp_path / 'prov.db'}", read_only=False) as opened:
        yield opened


def _body(response: tuple[int, bytes]) -> tuple[int, dict]:
    return response[0], json.loads(response[1])


def test_get_lists_pending_commands_oldest_first_and_ack_consumes_them(store) -> None:
    first = steering.new_command("set_lr", 1e-4, agent="user:ana", reason="slower")
    second = steering.new_command("set_weight", 3.0, "data", agent="rule:plateau")
    channel.submit(store, RUNNING, first)
    channel.submit(store, RUNNING, second)
    status, body = _body(handle_steering_get(store, RUNNING))
    assert status == 200 and body["status"] == "running"
    assert [steering.command_from_json(c) for c in body["commands"]] == [first, second]
    ack = json.dumps({"command_id": first.command_id, "applied": True, "detail": "lr 1e-3 -> 1e-4"}).encode()
    assert _body(handle_steering_ack(store, RUNNING, ack)) == (200, {"acknowledged": first.command_id})
    assert _body(handle_steering_ack(store, RUNNING, ack)) == (200, {"acknowledged": first.command_id})  # idempotent
    status, body = _body(handle_steering_get(store, RUNNING))
    assert [c["command_id"] for c in body["commands"]] == [second.command_id]
    (row,) = [r for r in channel_rows(store) if r.command_id == first.command_id]
    assert (row.state, row.detail) == ("applied", "lr 1e-3 -> 1e-4") and row.acked_at is not None


def channel_rows(store) -> list:
    from pinnprov.store.access import list_commands

    return list_commands(store, RUNNING)


@pytest.mark.parametrize(
    ("run_id", "body", "status", "error"),
    [
        ("nothex", b"{}", 400, "run id must be 32 lowercase hex digits"),
        (RUNNING, b"not json", 400, "bad acknowledgement"),
        (RUNNING, b'{"command_id": "c"}', 400, "'applied' must be true or false"),
        (RUNNING, b'{"command_id": "nope", "applied": true}', 404, "has no steering command nope"),
        (RUNNING, b"x" * 70_000, 413, "larger than"),
    ],
)
def test_bad_acknowledgements_are_refused_with_a_reason(store, run_id, body, status, error) -> None:
    got_status, got = _body(handle_steering_ack(store, run_id, body))
    assert got_status == status and error in got["error"]


def test_unknown_and_finished_runs(store) -> None:
    assert _body(handle_steering_get(store, "c" * 32)) == (404, {"error": f"unknown run {'c' * 32}"})
    with pytest.raises(ValueError, match="has already ended \\(status completed\\)"):
        channel.submit(store, FINISHED, steering.new_command("stop"))
    with pytest.raises(ValueError, match="unknown run"):
        channel.submit(store, "c" * 32, steering.new_command("stop"))
    status, body = _body(handle_steering_get(store, FINISHED))
    assert status == 200 and body["status"] == "completed" and body["commands"] == []


def test_routing_methods_and_foreign_paths(store) -> None:
    assert handle_steering_request(store, "GET", "/v1/traces") is None
    assert handle_steering_request(store, "POST", f"/v1/steering/{RUNNING}")[0] == 405
    assert handle_steering_request(store, "GET", f"/v1/steering/{RUNNING}/ack")[0] == 405
    assert handle_steering_request(store, "GET", f"/v1/steering/{RUNNING}/x/y")[0] == 404
    assert handle_steering_request(store, "GET", f"/v1/steering/{RUNNING}?since=0")[0] == 200


def test_steering_endpoint_follows_the_otlp_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("PINNPROV_STEERING_ENDPOINT", "OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"):
        monkeypatch.delenv(name, raising=False)
    assert steering_endpoint("http://collector:4318/v1/traces") == "http://collector:4318"
    assert steering_endpoint("collector:4317") == "http://collector:4318"  # gRPC: same host, OTLP/HTTP port
    assert steering_endpoint("https://[::1]:4317") == "https://[::1]:4318"
    assert steering_endpoint("collector:4317", "https://other:9000") == "https://other:9000"
    monkeypatch.setenv("PINNPROV_STEERING_ENDPOINT", "steer.example:8443")
    assert steering_endpoint("collector:4317") == "http://steer.example:8443"
    with pytest.raises(ValueError, match="steering endpoint"):
        HttpCommandSource("ftp://x")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_a_dead_collector_never_raises_into_the_trainer_and_close_is_bounded() -> None:
    source = HttpCommandSource(f"http://127.0.0.1:{_free_port()}", interval_s=0.05, timeout_s=1)
    for epoch in range(50):
        assert source.poll(RUNNING, epoch) == []
        time.sleep(0.005)
    source.acknowledge(RUNNING, steering.new_command("stop"), True, "")
    started = time.monotonic()
    source.close(timeout_s=3)
    assert time.monotonic() - started < 10 and source.fetches == 0 and source.acknowledged == 0


@pytest.fixture(scope="module")
def collector(tmp_path_factory: pytest.TempPathFactory):
    workdir = tmp_path_factory.mktemp("collector")
    process = Collector(workdir, env={"PINNPROV_COLLECTOR_TOKEN": TOKEN})
    process.start()
    yield process
    assert process.stop() == 0, process.log.read_text()[-2000:]


@pytest.mark.slow
def test_http_source_with_token_delivers_each_command_once_and_acks(collector: Collector) -> None:
    _make_store_via(collector)
    with open_store(f"sqlite:///{collector.store}", read_only=False) as store:
        command = steering.new_command("scale_lr", 0.5, agent="user:ana")
        channel.submit(store, RUNNING, command)
    unauthorised = HttpCommandSource(collector.http, interval_s=0.05)
    assert unauthorised._request(unauthorised._url(RUNNING))[0] == 401
    source = HttpCommandSource(collector.http, {"authorization": f"Bearer {TOKEN}"}, interval_s=0.05)
    with source:
        received = wait_for(lambda: source.poll(RUNNING, 0), 30, what="command over HTTP")
        assert received == [command]
        wait_for(lambda: source.fetches >= 3, 30, what="more fetches")  # still pending in the store...
        assert source.poll(RUNNING, 1) == []  # ...but handed out only once
        source.acknowledge(RUNNING, command, True, "lr halved")
    assert source.acknowledged == 1
    state = rows(collector.store, "SELECT state, detail FROM steering_command WHERE command_id = ?",
                 (command.command_id,))
    assert state == [("applied", "lr halved")]


def _make_store_via(collector: Collector) -> None:
    """Put the two runs into the collector's store through OTLP (the collector owns the file's writes)."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from prov_builders import RunSpec, build_spans

    exporter = OTLPSpanExporter(endpoint=f"{collector.http}/v1/traces", headers={"authorization": f"Bearer {TOKEN}"})
    for run_id, name in ((RUNNING, "http-running"), (FINISHED, "http-finished")):
        end = {"pinn.run.status": "completed", "pinn.run.epochs": 0} if run_id == FINISHED else None
        assert exporter.export(build_spans(RunSpec(run_id=run_id, run_name=name, end=end))).name == "SUCCESS"
    exporter.shutdown()
    wait_for(lambda: len(rows(collector.store, "SELECT 1 FROM run")) == 2, 60, what="runs via the collector")


@pytest.mark.slow
def test_training_steered_through_the_collector_stops(collector: Collector, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("tensorflow")
    from pinnprov.cli import main as cli
    from pinnprov.pinn.benchmark import crosshole_benchmark
    from pinnprov.pinn.config import TrainConfig
    from pinnprov.pinn.trainer import configure_threads, train
    from pinnprov.wiring import open_capture

    for name in ("PINNPROV_STEERING_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_HEADERS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OTEL_METRICS_EXPORTER", "none")
    configure_threads(1)
    db, headers = collector.store, f"authorization=Bearer {TOKEN}"
    config = TrainConfig(tau_layers=2, tau_units=8, velocity_layers=2, velocity_units=8, collocation_count=200,
                         boundary_points=20, steps_per_call=20, stopping="none", threads=1, epochs=10_000_000,
                         run_name="http-steered", experiment="remote")
    failures: list[BaseException] = []
    give_up = threading.Event()

    class GuardedSource:
        """The real source; if the test's user thread fails, a local stop ends the run so nothing hangs."""

        def __init__(self, inner) -> None:
            self.inner = inner

        def poll(self, run_id: str, epoch: int) -> list:
            if give_up.is_set():
                return [steering.new_command("stop", reason="test gave up")]
            return self.inner.poll(run_id, epoch)

        def acknowledge(self, run_id: str, command, applied: bool, detail: str) -> None:
            self.inner.acknowledge(run_id, command, applied, detail)

    def user() -> None:
        try:
            wait_for(lambda: rows(db, "SELECT 1 FROM epoch_metric e JOIN run r USING (run_id) "
                                      "WHERE r.run_name = 'http-steered'"), 90, what="epochs via collector")
            with contextlib.redirect_stdout(io.StringIO()):
                assert cli(["steer", "http-steered", "--store", str(db), "--stop", "--reason", "remote stop"]) == 0
        except BaseException as error:  # noqa: BLE001
            failures.append(error)
            give_up.set()

    endpoint = f"{collector.http}/v1/traces"  # the path makes both the exporter and the poller use OTLP/HTTP
    with open_capture(otlp_endpoint=endpoint, headers=headers) as observers, \
            command_source_for(otlp_endpoint=endpoint, headers=headers, interval_s=0.2) as commands:
        assert isinstance(commands, HttpCommandSource)
        helper = threading.Thread(target=user, daemon=True)
        helper.start()
        result = train(config, crosshole_benchmark(), observers, GuardedSource(commands))
        helper.join(60)
    assert not failures, failures
    assert result.status == "stopped" and result.stop_reason == "remote stop"
    wait_for(lambda: rows(db, "SELECT status FROM run WHERE run_name = 'http-steered'") == [("stopped",)], 60,
             what="stopped status via the collector")
    # Only the user's stop: the schedule may also have recorded learning-rate steps by then.
    (agent, reason), = wait_for(lambda: rows(db, "SELECT a.agent, a.reason FROM adaptation a JOIN run r USING (run_id) "
                                                 "WHERE r.run_name = 'http-steered' AND a.parameter = 'stop'"), 60)
    assert agent.startswith("user:") and reason == "remote stop"
    assert rows(db, "SELECT state FROM steering_command c JOIN run r USING (run_id) "
                    "WHERE r.run_name = 'http-steered'") == [("applied",)]


def test_command_source_for_follows_the_capture_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pinnprov.capture.steering_poller import StoreCommandSource

    for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_HEADERS",
                 "OTEL_EXPORTER_OTLP_TRACES_HEADERS", "PINNPROV_STEERING_ENDPOINT", "PINNPROV_CAPTURE",
                 "PINNPROV_COLLECTOR_TOKEN", "OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PINNPROV_STORE", f"sqlite:///{tmp_path / 'env.db'}")
    embedded = command_source_for()
    assert isinstance(embedded, StoreCommandSource) and embedded.store_url == f"sqlite:///{tmp_path / 'env.db'}"
    assert command_source_for(store="sqlite:///x.db").store_url == "sqlite:///x.db"  # explicit beats environment
    monkeypatch.setenv("PINNPROV_COLLECTOR_TOKEN", "t0ken")
    remote = command_source_for(otlp_endpoint="collector.example:4317")
    assert isinstance(remote, HttpCommandSource) and remote.endpoint == "http://collector.example:4318"
    assert remote.headers == {"authorization": "Bearer t0ken"}  # the exporter's token rule
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "authorization=Bearer other")
    assert command_source_for(otlp_endpoint="http://c:4318").headers == {"authorization": "Bearer other"}
    monkeypatch.setenv("PINNPROV_CAPTURE", "0")
    off = command_source_for()
    assert off.poll(RUNNING, 0) == [] and not isinstance(off, StoreCommandSource | HttpCommandSource)
    monkeypatch.setenv("PINNPROV_STEERING_INTERVAL", "-1")
    monkeypatch.delenv("PINNPROV_CAPTURE")
    with pytest.raises(ValueError, match="steering poll interval"):
        command_source_for()


@pytest.mark.slow
def test_an_acknowledgement_survives_a_collector_restart(tmp_path: Path) -> None:
    process = Collector(tmp_path, env={"PINNPROV_COLLECTOR_TOKEN": TOKEN}).start()
    try:
        _make_store_via(process)
        with open_store(f"sqlite:///{process.store}", read_only=False) as store:
            command = steering.new_command("set_weight", 2.0, "data", agent="user:ana")
            channel.submit(store, RUNNING, command)
        source = HttpCommandSource(process.http, {"authorization": f"Bearer {TOKEN}"}, interval_s=0.05, timeout_s=2)
        assert wait_for(lambda: source.poll(RUNNING, 0), 30, what="command") == [command]
        assert process.stop() == 0
        source.acknowledge(RUNNING, command, True, "weight 1 -> 2")  # the collector is down now
        time.sleep(0.5)
        assert source.acknowledged == 0 and source.poll(RUNNING, 1) == []
        process.start()  # same ports
        wait_for(lambda: source.acknowledged == 1, 60, what="acknowledgement after restart")
        source.close()
        assert rows(process.store, "SELECT state, detail FROM steering_command") == [("applied", "weight 1 -> 2")]
    finally:
        process.stop()
