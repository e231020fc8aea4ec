"""The run API (`pinnprov.start_run`) end to end: a plain loop, a real embedded SQLite store written through the real
OpenTelemetry SDK and the collector's pipeline, `pinnprov steer` and `pinnprov query` typed as a user would, and a
real `tf.GradientTape` PINN loop. No mocks."""

from __future__ import annotations

import contextlib
import io
import math
import threading
import time
from pathlib import Path

import pytest
from collector_process import rows, wait_for

import pinnprov
from pinnprov.cli import main as cli
from pinnprov.core.steering import user_agent

_ENDPOINTS = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
              "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "PINNPROV_CAPTURE", "PINNPROV_CAPTURE_EVERY", "PINNPROV_STORE",
              "PINNPROV_STEERING_ENDPOINT")


@pytest.fixture(autouse=True)
def _embedded_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests write an embedded store: no collector endpoint or capture setting from the environment."""
    for name in _ENDPOINTS:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "prov.db"


def _run(db: Path, name: str, **kwargs: object) -> pinnprov.Run:
    kwargs.setdefault("spool_dir", db.parent / "spool")
    kwargs.setdefault("steering_interval_s", 0.1)
    return pinnprov.start_run(name=name, store=f"sqlite:///{db}", **kwargs)  # type: ignore[arg-type]


def _cli(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli(list(args))
    return code, out.getvalue(), err.getvalue()


def _steer(db: Path, run: str, *flags: str) -> str:
    """`pinnprov steer RUN ...` as typed in another terminal; the new command's id."""
    code, out, err = _cli("steer", run, "--store", f"sqlite:///{db}", *flags)
    assert code == 0, err
    return out.split(" as command ")[1].split()[0]


def _in_store(db: Path, name: str) -> bool:
    return bool(rows(db, "SELECT 1 FROM run WHERE run_name = ?", (name,)))


def test_a_plain_loop_records_every_epoch_with_its_losses_and_the_run_identity(db: Path) -> None:
    stats = pinnprov.CaptureStats()
    hyperparameters = {"optimizer": "adam", "lr.initial": 1e-3, "layers": 4, "width": 32, "fourier": True}
    with _run(db, "site-3", experiment="tomo", hyperparameters=hyperparameters, stats=stats,
              dataset={"name": "site-3 picks", "sha256": "ab" * 32, "source": "picks/site3.csv"}) as run:
        for epoch in range(200):
            run.log_epoch(epoch, loss=1.0 / (epoch + 1), loss_bc=0.1 / (epoch + 1), loss_residual=0.5 / (epoch + 1),
                          loss_data=0.4 / (epoch + 1), learning_rate=1e-3 * 0.99**epoch, data_rms_s=2e-3)
            if epoch == 149:
                run.log_adaptation("optimizer", "adam", "lbfgs", reason="loss plateaued")
        run.log_summary(r2=0.97, rmse_m_s=12.5)
    assert run.status == "completed" and run.epochs_logged == 200 and run.dropped == 0
    assert not any(stats.failed.values()) and not any(stats.dropped.values())

    # what a user reads back: `pinnprov query epochs` (the CLI) and the same through the public API
    code, out, err = _cli("query", "epochs", "--run", "site-3", "--store", f"sqlite:///{db}", "--format", "csv")
    assert code == 0, err
    lines = out.strip().splitlines()
    assert len(lines) == 201 and "loss_bc" in lines[0] and "learning_rate" in lines[0]
    with pinnprov.open_store(f"sqlite:///{db}") as store:
        run_id = pinnprov.resolve_run(store, "site-3")
        table = pinnprov.run_query(store, "epochs", pinnprov.QueryOptions(run_id=run_id, every=1))
        hp = pinnprov.run_query(store, "hyperparameters", pinnprov.QueryOptions(run_id=run_id))
    assert run_id == run.run_id
    epochs = [dict(zip(table.columns, row, strict=True)) for row in table.rows]
    assert [row["epoch"] for row in epochs] == list(range(200))
    for row in epochs:
        n = row["epoch"] + 1
        assert row["loss"] == pytest.approx(1.0 / n) and row["loss_bc"] == pytest.approx(0.1 / n)
        assert row["loss_residual"] == pytest.approx(0.5 / n) and row["loss_data"] == pytest.approx(0.4 / n)
        assert row["learning_rate"] == pytest.approx(1e-3 * 0.99 ** (n - 1))
        assert row["elapsed_s"] >= 0
    recorded = {row[hp.columns.index("name")]: row[hp.columns.index("value")] for row in hp.rows}
    assert recorded == {"optimizer": "adam", "lr.initial": "0.001", "layers": "4", "width": "32", "fourier": "true"}
    ((name, experiment, status, count, ds_name, ds_sha, ds_source),) = rows(
        db, "SELECT run_name, experiment, status, epochs, dataset_name, dataset_sha256, dataset_source FROM run")
    assert (name, experiment, status, count) == ("site-3", "tomo", "completed", 200)
    assert (ds_name, ds_sha, ds_source) == ("site-3 picks", "ab" * 32, "picks/site3.csv")
    assert rows(db, "SELECT COUNT(*) FROM epoch_extra WHERE name = 'data_rms_s'") == [(200,)]
    assert dict(rows(db, "SELECT name, value FROM run_summary")) == {"r2": 0.97, "rmse_m_s": 12.5}
    assert rows(db, "SELECT epoch, parameter, old_value, new_value, agent, reason, command_id FROM adaptation") == [
        (150, "optimizer", "adam", "lbfgs", "trainer", "loss plateaued", None)]


def test_bad_values_are_dropped_and_counted_and_training_goes_on(db: Path) -> None:
    np = pytest.importorskip("numpy")
    with _run(db, "bad-values", hyperparameters={"ok": 1, "nan_hp": math.nan, "object_hp": object()}) as run:
        for epoch in range(10):
            run.log_epoch(
                epoch,
                loss=math.nan if epoch == 3 else np.float32(0.5),  # NumPy scalars are numbers
                loss_bc=0.1,
                learning_rate="fast" if epoch == 5 else np.array(1e-3),  # a 0-d array is a number too
                rms=math.inf if epoch == 7 else 0.25,
                note="a string",
                vector=np.ones(3),
            )
        run.log_epoch("seven", loss=1.0)  # not an epoch number: the epoch is dropped, nothing raises
        run.log_epoch(-1, loss=1.0)
    assert run.status == "completed" and run.epochs_logged == 10 and run.dropped_epochs == 2
    assert run.dropped_by_name == {"loss": 1, "learning_rate": 1, "rms": 1, "note": 10, "vector": 10, "epoch": 2,
                                   "hyperparameter nan_hp": 1, "hyperparameter object_hp": 1}
    assert run.dropped == sum(run.dropped_by_name.values())

    stored = {epoch: (loss, lr, nonfinite) for epoch, loss, lr, nonfinite in rows(
        db, "SELECT epoch, loss, learning_rate, nonfinite FROM epoch_metric")}
    assert sorted(stored) == list(range(10))
    assert stored[0][:2] == (0.5, pytest.approx(1e-3))
    assert "loss=nan" not in stored[0][2].split(",")  # (omitted components are NaN, "not measured", too)
    assert stored[3][0] is None and "loss=nan" in stored[3][2].split(",")  # the divergence is kept as a fact
    assert stored[5][1] is None  # "fast" is no learning rate: not measured
    extras = rows(db, "SELECT epoch, name, value FROM epoch_extra ORDER BY epoch")
    assert {name for _, name, _ in extras} == {"rms"} and [e for e, _, _ in extras] == [0, 1, 2, 3, 4, 5, 6, 8, 9]
    assert rows(db, "SELECT name FROM run_hyperparameter") == [("ok",)]


def test_an_exception_inside_the_with_block_marks_the_run_failed_and_is_re_raised(db: Path) -> None:
    with pytest.raises(FloatingPointError, match="loss exploded"), _run(db, "doomed") as run:
        for epoch in range(3):
            run.log_epoch(epoch, loss=1.0, learning_rate=1e-3)
        raise FloatingPointError("loss exploded")
    assert run.status == "failed"
    assert rows(db, "SELECT status, epochs, error FROM run") == [("failed", 3, "FloatingPointError: loss exploded")]
    assert rows(db, "SELECT COUNT(*) FROM epoch_metric") == [(3,)]


def test_steering_from_the_cli_reaches_the_loop_and_is_recorded_as_an_adaptation(db: Path) -> None:
    """`pinnprov steer --set-lr` while the loop runs: the loop sees the command, applies it and says so; the store
    records the adaptation with the user as its agent and the command as applied."""
    lr, applied_at, command_id = 1e-3, None, ""
    with _run(db, "steer-me", hyperparameters={"lr.initial": lr}) as run:
        deadline = time.monotonic() + 60
        epoch = 0
        while time.monotonic() < deadline and (applied_at is None or epoch < applied_at + 5):
            run.log_epoch(epoch, loss=1.0 / (epoch + 1), learning_rate=lr)
            if not command_id and _in_store(db, "steer-me"):
                command_id = _steer(db, "steer-me", "--set-lr", "1e-4", "--reason", "loss oscillates")
            for command in run.commands():
                assert (command.kind, command.value, command.command_id) == ("set_lr", 1e-4, command_id)
                lr = command.value
                command.applied()
                applied_at = epoch + 1
            epoch += 1
            time.sleep(0.005)
        assert applied_at is not None, "the command never reached the loop"
    assert rows(db, "SELECT state FROM steering_command WHERE command_id = ?", (command_id,)) == [("applied",)]
    ((at_epoch, parameter, old, new, agent, reason, recorded_id),) = rows(
        db, "SELECT epoch, parameter, old_value, new_value, agent, reason, command_id FROM adaptation")
    assert (at_epoch, parameter, agent, reason, recorded_id) == (
        applied_at, "learning_rate", user_agent(), "loss oscillates", command_id)
    assert (float(old), float(new)) == (1e-3, 1e-4)
    lrs = dict(rows(db, "SELECT epoch, learning_rate FROM epoch_metric"))
    assert lrs[applied_at - 1] == pytest.approx(1e-3) and lrs[applied_at] == pytest.approx(1e-4)
    code, out, _ = _cli("query", "adaptations", "--run", "steer-me", "--store", f"sqlite:///{db}", "--format", "csv")
    assert code == 0 and "loss oscillates" in out and user_agent() in out


def test_a_refused_command_is_stored_as_refused_and_an_applied_stop_ends_the_run_stopped(db: Path) -> None:
    refused_id = stop_id = ""
    with _run(db, "refuser") as run:
        deadline = time.monotonic() + 60
        epoch = 0
        while not run.should_stop and time.monotonic() < deadline:
            run.log_epoch(epoch, loss=1.0, learning_rate=1e-3)
            if not refused_id and _in_store(db, "refuser"):
                refused_id = _steer(db, "refuser", "--set-weight", "residual=10")
            for command in run.commands():
                if command.kind == "set_weight":
                    command.refused("this loop has no loss weights")
                    stop_id = _steer(db, "refuser", "--stop", "--reason", "enough")
                elif command.kind == "stop":
                    command.applied()
            epoch += 1
            time.sleep(0.005)
        assert run.should_stop, "the stop never reached the loop"
    assert run.status == "stopped"
    states = dict(rows(db, "SELECT command_id, state || ': ' || COALESCE(detail, '') FROM steering_command"))
    assert states[refused_id] == "refused: this loop has no loss weights"
    assert states[stop_id].startswith("applied")
    assert rows(db, "SELECT parameter, agent, reason, command_id FROM adaptation") == [
        ("stop", user_agent(), "enough", stop_id)]
    assert rows(db, "SELECT status, epochs FROM run") == [("stopped", epoch)]


def test_log_epoch_from_two_threads_at_once_loses_nothing(db: Path) -> None:
    per_thread = 1000
    with _run(db, "two-threads") as run:
        start = threading.Barrier(2)

        def log(parity: int) -> None:
            start.wait()
            for i in range(per_thread):
                epoch = 2 * i + parity
                run.log_epoch(epoch, loss=float(epoch), loss_data=float(parity), learning_rate=1e-3, thread=parity)

        threads = [threading.Thread(target=log, args=(parity,)) for parity in (0, 1)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert run.epochs_logged == 2 * per_thread and run.dropped == 0
    stored = rows(db, "SELECT epoch, loss, loss_data FROM epoch_metric ORDER BY epoch")
    assert [epoch for epoch, _, _ in stored] == list(range(2 * per_thread))
    assert all(loss == epoch and data == epoch % 2 for epoch, loss, data in stored)


def test_a_run_without_capture_is_a_no_op(db: Path) -> None:
    with _run(db, "off", enabled=False) as run:
        run.log_epoch(0, loss=1.0)
        assert run.commands() == []
    assert run.status == "completed" and not db.exists()


def test_a_bad_data_set_is_refused_before_the_run_starts(db: Path) -> None:
    with pytest.raises(ValueError, match="unknown key"):
        _run(db, "x", dataset={"name": "picks", "rows": 3})
    assert not db.exists()


@pytest.mark.slow
def test_a_tf_gradient_tape_pinn_loop_end_to_end(db: Path) -> None:
    """A small real PINN (u' = cos x on [0, pi], u(0) = 0, a few observations of sin x) trained with
    tf.GradientTape; the learning rate is a tf.Variable that the loop changes when a steering command says so."""
    tf = pytest.importorskip("tensorflow")
    tf.random.set_seed(1)
    model = tf.keras.Sequential([tf.keras.Input((1,)), tf.keras.layers.Dense(16, activation="tanh"),
                                 tf.keras.layers.Dense(1)])
    optimizer = tf.keras.optimizers.Adam(1e-2)
    x_r = tf.reshape(tf.linspace(0.0, math.pi, 64), (-1, 1))
    x_d = tf.constant([[0.5], [1.5], [2.5]])
    u_d = tf.sin(x_d)

    @tf.function
    def step() -> tuple[tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor]:
        with tf.GradientTape() as tape:
            with tf.GradientTape() as inner:
                inner.watch(x_r)
                u = model(x_r)
            residual = tf.reduce_mean((inner.gradient(u, x_r) - tf.cos(x_r)) ** 2)
            boundary = tf.reduce_mean(model(tf.zeros((1, 1))) ** 2)
            data = tf.reduce_mean((model(x_d) - u_d) ** 2)
            loss = residual + boundary + data
        optimizer.apply_gradients(zip(tape.gradient(loss, model.trainable_variables), model.trainable_variables,
                                      strict=True))
        return loss, boundary, residual, data

    command_id, applied_at = "", None
    hyperparameters = {"optimizer": "adam", "lr.initial": 1e-2, "width": 16, "collocation_points": 64}
    with _run(db, "tape", experiment="run-api", hyperparameters=hyperparameters,
              dataset={"name": "sin-obs", "source": "synthetic"}) as run:
        epoch, deadline = 0, time.monotonic() + 60
        while (epoch < 100 or applied_at is None or epoch < applied_at + 5) and time.monotonic() < deadline:
            loss, boundary, residual, data = step()
            run.log_epoch(epoch, loss=loss, loss_bc=boundary, loss_residual=residual, loss_data=data,
                          learning_rate=optimizer.learning_rate)  # tensors and a tf.Variable, read once
            if not command_id and epoch >= 20 and _in_store(db, "tape"):
                command_id = _steer(db, "tape", "--scale-lr", "0.5", "--reason", "smoother")
            for command in run.commands():
                if command.kind == "scale_lr":
                    old = float(optimizer.learning_rate.numpy())
                    optimizer.learning_rate.assign(old * command.value)
                    command.applied(old_value=old, new_value=float(optimizer.learning_rate.numpy()))
                    applied_at = epoch + 1
                else:
                    command.refused(f"{command.kind} is not supported by this loop")
            epoch += 1
        assert applied_at is not None
    assert run.dropped == 0 and run.status == "completed"
    stored = dict(rows(db, "SELECT epoch, learning_rate FROM epoch_metric"))
    assert sorted(stored) == list(range(epoch))
    assert stored[applied_at - 1] == pytest.approx(1e-2) and stored[applied_at] == pytest.approx(5e-3)
    losses = rows(db, "SELECT loss, loss_bc, loss_residual, loss_data FROM epoch_metric ORDER BY epoch")
    assert all(None not in row for row in losses) and losses[-1][0] < losses[0][0]
    ((parameter, new, recorded_id),) = rows(db, "SELECT parameter, new_value, command_id FROM adaptation")
    assert (parameter, recorded_id) == ("learning_rate", command_id) and float(new) == pytest.approx(5e-3)
    assert rows(db, "SELECT dataset_name, dataset_source FROM run") == [("sin-obs", "synthetic")]
    wait_for(lambda: rows(db, "SELECT state FROM steering_command") == [("applied",)], 10, what="ack stored")


def test_a_name_taken_in_the_store_gets_a_suffix(db: Path) -> None:
    """Run names are unique per store: running the same script twice records both runs, the second as name-2."""
    names = []
    for _ in range(3):
        with _run(db, "again") as run:
            run.log_epoch(0, loss=1.0)
        names.append(run.name)
    assert names == ["again", "again-2", "again-3"]
    assert sorted(rows(db, "SELECT run_name, epochs FROM run")) == [("again", 1), ("again-2", 1), ("again-3", 1)]


@pytest.mark.slow
def test_through_a_collector_steering_works_and_no_epoch_is_lost_while_it_is_down(tmp_path: Path) -> None:
    """A real `pinnprov collector` process: the run API sends OTLP to it and polls its steering endpoint; the
    collector is killed mid-run and restarted on the same ports, and every epoch still reaches its store."""
    from collector_process import Collector

    home = tmp_path / "collector-home"
    home.mkdir()
    collector = Collector(home).start()
    store = collector.store
    try:
        lr, command_id, applied_at = 1e-3, "", None
        with pinnprov.start_run(name="via-collector", experiment="otlp", otlp_endpoint=collector.grpc,
                                spool_dir=tmp_path / "trainer-spool", export_timeout_s=1.0, schedule_delay_ms=100,
                                steering_endpoint_url=collector.http, steering_interval_s=0.1,
                                shutdown_timeout_s=30) as run:
            epoch, deadline = 0, time.monotonic() + 90
            while applied_at is None and time.monotonic() < deadline:
                run.log_epoch(epoch, loss=1.0 / (epoch + 1), learning_rate=lr)
                if not command_id and _in_store(store, "via-collector"):
                    command_id = _steer(store, "via-collector", "--set-lr", "5e-4", "--reason", "via the collector")
                for command in run.commands():
                    lr = command.value
                    command.applied()
                    applied_at = epoch + 1
                epoch += 1
                time.sleep(0.01)
            assert applied_at is not None, "the command never reached the loop through the collector"
            wait_for(lambda: rows(store, "SELECT state FROM steering_command") == [("applied",)], 30,
                     what="acknowledgement through the collector")
            collector.kill()
            for _ in range(50):  # the collector is down: these go to the trainer's disk spool
                run.log_epoch(epoch, loss=1.0 / (epoch + 1), learning_rate=lr)
                epoch += 1
                time.sleep(0.01)
            time.sleep(1.5)  # let the exporter fail over to the spool
            collector.start()
            for _ in range(20):
                run.log_epoch(epoch, loss=1.0 / (epoch + 1), learning_rate=lr)
                epoch += 1
                time.sleep(0.01)
        total = epoch
        # What the exporter could not deliver waits in the trainer's spool (as for `pinnprov train`): delivered on
        # the next start, or now by `pinnprov flush`.
        code, _, err = _cli("flush", "--spool", str(tmp_path / "trainer-spool"), "--endpoint", collector.grpc)
        assert code == 0, err
        wait_for(lambda: rows(store, "SELECT COUNT(*), MAX(epoch) FROM epoch_metric") == [(total, total - 1)], 60,
                 what=f"all {total} epochs in the collector's store")
        assert rows(store, "SELECT run_name, experiment, status, epochs FROM run") == [
            ("via-collector", "otlp", "completed", total)]
        assert rows(store, "SELECT parameter, agent, reason, command_id FROM adaptation") == [
            ("learning_rate", user_agent(), "via the collector", command_id)]
    finally:
        collector.stop()
