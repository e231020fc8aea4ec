"""ProvenanceCallback with a real `model.fit`: spans on the real SDK, and rows in a real embedded SQLite store."""

from __future__ import annotations

import math
import os
import sqlite3
import time
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
keras = pytest.importorskip("keras")
np = pytest.importorskip("numpy")
tf = pytest.importorskip("tensorflow")

from opentelemetry.sdk.resources import Resource  # noqa: E402
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter  # noqa: E402
from opentelemetry.trace import StatusCode  # noqa: E402

from pinnprov.capture.observer import ProvenanceObserver  # noqa: E402
from pinnprov.capture.provider import batch_processor, build_tracer_provider  # noqa: E402
from pinnprov.core import vocabulary as v  # noqa: E402
from pinnprov.core.steering import SteeringCommand, new_command  # noqa: E402
from pinnprov.integrations.keras import ProvenanceCallback  # noqa: E402
from pinnprov.pinn.observer import Adapted, EpochEnded, RunEnded, RunStarted, TrainingObserver  # noqa: E402
from pinnprov.store.access import list_commands, open_store  # noqa: E402
from pinnprov.store.steering_channel import run_status, submit  # noqa: E402
from pinnprov.wiring import CaptureStats, open_capture, store_command_source  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    try:
        tf.config.threading.set_intra_op_parallelism_threads(1)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:
        pass  # already initialised by an earlier test in this process


def _data(n: int = 64) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    x = rng.normal(size=(n, 3)).astype("float32")
    return x, (x @ np.array([[1.0], [-2.0], [0.5]], dtype="float32")).astype("float32")


def _model(learning_rate: object = 1e-2) -> keras.Model:
    keras.utils.set_random_seed(3)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(8, activation="tanh"), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss="mse", metrics=["mae"])
    return model


def _capture() -> tuple[ProvenanceObserver, InMemorySpanExporter, object]:
    exporter = InMemorySpanExporter()
    provider = build_tracer_provider([batch_processor(exporter)], Resource.create({}))
    return ProvenanceObserver(provider), exporter, provider


def _spans(provider: object, exporter: InMemorySpanExporter, name: str) -> list:
    provider.force_flush()  # type: ignore[attr-defined]
    return [s for s in exporter.get_finished_spans() if s.name == name]


def test_fit_records_hyperparameters_epochs_and_completion() -> None:
    observer, exporter, provider = _capture()
    schedule = keras.optimizers.schedules.ExponentialDecay(0.01, decay_steps=10, decay_rate=0.9)
    model = _model(schedule)
    callback = ProvenanceCallback(observer, experiment="keras-test", hyperparameters={"batch_size": 16})
    x, y = _data()
    history = model.fit(x, y, epochs=3, batch_size=16, verbose=0, callbacks=[callback])

    (start,) = _spans(provider, exporter, v.RUN_START_SPAN)
    hp = {k.removeprefix(v.HYPERPARAMETER_PREFIX): val for k, val in start.attributes.items()
          if k.startswith(v.HYPERPARAMETER_PREFIX)}
    assert hp == {
        "optimizer": "adam", "lr.schedule": "exponential_decay", "lr.initial": 0.01, "lr.decay_rate": 0.9,
        "lr.decay_steps": 10, "lr.staircase": False, "epochs": 3, "steps_per_epoch": 4,
        "network.parameters": model.count_params(), "batch_size": 16,
    }
    assert start.attributes[v.EXPERIMENT] == "keras-test"
    assert format(start.context.trace_id, "032x") == start.attributes[v.RUN_ID]

    epochs = sorted(_spans(provider, exporter, v.EPOCH_SPAN), key=lambda s: s.attributes[v.EPOCH])
    assert [s.attributes[v.EPOCH] for s in epochs] == [0, 1, 2]
    for span, loss, mae in zip(epochs, history.history["loss"], history.history["mae"], strict=True):
        assert span.attributes[v.LOSS_TOTAL] == pytest.approx(loss, rel=1e-6)
        assert span.attributes[v.EPOCH_EXTRA_PREFIX + "mae"] == pytest.approx(mae, rel=1e-6)
        assert math.isnan(span.attributes[v.LOSS_BOUNDARY])  # not measured, never invented as 0
        assert span.end_time > span.start_time
    # The schedule decays per step: epoch 2 ends after 12 steps -> 0.01 * 0.9 ** 1.2.
    assert epochs[2].attributes[v.LEARNING_RATE] == pytest.approx(0.01 * 0.9**1.2, rel=1e-5)
    assert not _spans(provider, exporter, v.ADAPTATION_SPAN)  # schedule decay is a hyperparameter, not an adaptation
    (root,) = _spans(provider, exporter, v.RUN_SPAN)
    assert root.attributes[v.RUN_STATUS] == "completed" and root.attributes[v.RUN_EPOCHS] == 3
    assert root.attributes[v.SUMMARY_PREFIX + "loss"] == pytest.approx(history.history["loss"][-1], rel=1e-6)


class PinnLikeModel(keras.Model):
    """A toy physics-informed fit: data misfit, a boundary condition y(0) = 0 and a residual dy/dx0 = 1."""

    def __init__(self) -> None:
        super().__init__()
        self.net = keras.Sequential([keras.layers.Dense(8, activation="tanh"), keras.layers.Dense(1)])

    def call(self, x: tf.Tensor) -> tf.Tensor:
        return self.net(x)

    def train_step(self, batch: tuple[tf.Tensor, tf.Tensor]) -> dict[str, tf.Tensor]:
        x, y = batch
        with tf.GradientTape() as tape:
            with tf.GradientTape() as inner:
                inner.watch(x)
                prediction = self(x, training=True)
            slope = inner.gradient(prediction, x)[:, 0]
            data = tf.reduce_mean((prediction - y) ** 2)
            boundary = tf.reduce_mean(self(tf.zeros((1, 3)), training=True) ** 2)
            residual = tf.reduce_mean((slope - 1.0) ** 2)
            total = data + boundary + residual
        self.optimizer.apply(tape.gradient(total, self.trainable_variables), self.trainable_variables)
        return {"loss": total, "l_bc": boundary, "l_r": residual, "l_d": data}


def test_loss_components_are_mapped_and_a_stopped_run_says_so() -> None:
    observer, exporter, provider = _capture()
    keras.utils.set_random_seed(5)
    model = PinnLikeModel()
    model.compile(optimizer=keras.optimizers.RMSprop(1e-3))
    mapping = {"loss": "total", "l_bc": "boundary", "l_r": "residual", "l_d": "data"}
    stop = keras.callbacks.EarlyStopping(monitor="loss", patience=0, min_delta=1e9)  # "no improvement" at once
    x, y = _data()
    history = model.fit(x, y, epochs=5, batch_size=64, verbose=0,
                        callbacks=[ProvenanceCallback(observer, loss_components=mapping), stop])

    epochs = sorted(_spans(provider, exporter, v.EPOCH_SPAN), key=lambda s: s.attributes[v.EPOCH])
    assert len(epochs) == len(history.history["loss"]) == 2
    for span, index in zip(epochs, range(2), strict=True):
        for key, attribute in (("loss", v.LOSS_TOTAL), ("l_bc", v.LOSS_BOUNDARY), ("l_r", v.LOSS_RESIDUAL),
                               ("l_d", v.LOSS_DATA)):
            assert span.attributes[attribute] == pytest.approx(history.history[key][index], rel=1e-6)
        assert not any(k.startswith(v.EPOCH_EXTRA_PREFIX) for k in span.attributes)
        assert span.attributes[v.LEARNING_RATE] == pytest.approx(1e-3)
    (start,) = _spans(provider, exporter, v.RUN_START_SPAN)
    assert start.attributes[v.HP_OPTIMIZER] == "rmsprop" and start.attributes[v.HP_LR_INITIAL] == pytest.approx(1e-3)
    assert start.attributes[v.HP_LR_SCHEDULE] == "constant"
    (root,) = _spans(provider, exporter, v.RUN_SPAN)
    assert root.attributes[v.RUN_STATUS] == "stopped" and root.attributes[v.RUN_EPOCHS] == 2


def test_bad_component_names_are_refused() -> None:
    observer, _, _ = _capture()
    with pytest.raises(ValueError, match="boundry"):
        ProvenanceCallback(observer, loss_components={"l_bc": "boundry"})


def test_learning_rate_changed_by_another_callback_is_an_adaptation() -> None:
    observer, exporter, provider = _capture()
    halve = keras.callbacks.LearningRateScheduler(lambda epoch, lr: lr if epoch == 0 else lr * 0.5)
    x, y = _data()
    _model(0.01).fit(x, y, epochs=3, batch_size=32, verbose=0, callbacks=[halve, ProvenanceCallback(observer)])
    adaptations = sorted(_spans(provider, exporter, v.ADAPTATION_SPAN), key=lambda s: s.attributes[v.EPOCH])
    assert [s.attributes[v.EPOCH] for s in adaptations] == [1, 2]
    assert adaptations[0].attributes[v.ADAPTATION_OLD] == pytest.approx(0.01)
    assert adaptations[0].attributes[v.ADAPTATION_NEW] == pytest.approx(0.005)
    assert adaptations[1].attributes[v.ADAPTATION_NEW] == pytest.approx(0.0025)
    assert adaptations[0].attributes[v.ADAPTATION_PARAMETER] == "learning_rate"
    epochs = sorted(_spans(provider, exporter, v.EPOCH_SPAN), key=lambda s: s.attributes[v.EPOCH])
    assert [s.attributes[v.LEARNING_RATE] for s in epochs] == pytest.approx([0.01, 0.005, 0.0025])


class _Explode(keras.callbacks.Callback):
    def on_epoch_end(self, epoch: int, logs: object = None) -> None:
        if epoch == 1:
            raise RuntimeError("disk on fire")


def test_a_failing_fit_is_recorded_as_failed_by_the_context_manager() -> None:
    observer, exporter, provider = _capture()
    x, y = _data()
    with pytest.raises(RuntimeError, match="disk on fire"), ProvenanceCallback(observer) as callback:
        _model().fit(x, y, epochs=4, batch_size=32, verbose=0, callbacks=[callback, _Explode()])
    (root,) = _spans(provider, exporter, v.RUN_SPAN)
    assert root.attributes[v.RUN_STATUS] == "failed"
    assert root.attributes[v.RUN_ERROR] == "RuntimeError: disk on fire"
    assert root.attributes[v.RUN_EPOCHS] == 2  # the callback ran before _Explode on epoch 1
    assert root.status.status_code is StatusCode.ERROR


def test_embedded_store_holds_the_epochs_of_a_fit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PINNPROV_SPOOL_DIR", str(tmp_path / "spool"))
    store = tmp_path / "keras.sqlite"
    stats = CaptureStats()
    x, y = _data()
    model = _model()
    with open_capture(store=f"sqlite:///{store}", stats=stats) as observers:
        callback = ProvenanceCallback(observers, run_name="keras-embedded")
        history = model.fit(x, y, epochs=4, batch_size=32, verbose=0, callbacks=[callback])
    assert stats.closed_in_time and stats.spans_ended == 6
    assert stats.exported == {f"sqlite:///{store}": 6}
    with sqlite3.connect(store) as conn:
        (run_id, status, epochs, optimizer) = conn.execute(
            "SELECT run_id, status, epochs, optimizer FROM run WHERE run_name = 'keras-embedded'"
        ).fetchone()
        rows = conn.execute(
            "SELECT epoch, loss, loss_bc, learning_rate FROM epoch_metric WHERE run_id = ? ORDER BY epoch", (run_id,)
        ).fetchall()
        mae = conn.execute(
            "SELECT value FROM epoch_extra WHERE run_id = ? AND name = 'mae' ORDER BY epoch", (run_id,)
        ).fetchall()
    assert (status, epochs, optimizer) == ("completed", 4, "adam")
    assert [r[0] for r in rows] == [0, 1, 2, 3]
    assert [r[1] for r in rows] == pytest.approx(history.history["loss"], rel=1e-6)
    assert [r[2] for r in rows] == [None] * 4  # unmeasured component: NULL in the store
    assert [r[3] for r in rows] == pytest.approx([0.01] * 4)
    assert [r[0] for r in mae] == pytest.approx(history.history["mae"], rel=1e-6)


# --- steering: commands from a CommandSource, applied at epoch ends ----------------------------------------------

class _ScriptedCommands:
    """An in-test CommandSource: hands out scripted commands at given epochs and records acknowledgements."""

    def __init__(self, script: dict[int, list[SteeringCommand]]) -> None:
        self.script = script
        self.polls: list[tuple[str, int]] = []
        self.acks: list[tuple[str, SteeringCommand, bool, str]] = []

    def poll(self, run_id: str, epoch: int) -> list[SteeringCommand]:
        self.polls.append((run_id, epoch))
        return self.script.pop(epoch, [])

    def acknowledge(self, run_id: str, command: SteeringCommand, applied: bool, detail: str) -> None:
        self.acks.append((run_id, command, applied, detail))


class _RecordingObserver(TrainingObserver):
    def __init__(self) -> None:
        self.adaptations: list[Adapted] = []
        self.epochs: list[EpochEnded] = []
        self.ended: list[RunEnded] = []

    def on_run_start(self, event: RunStarted) -> None:
        pass

    def on_epoch_end(self, event: EpochEnded) -> None:
        self.epochs.append(event)

    def on_adaptation(self, event: Adapted) -> None:
        self.adaptations.append(event)

    def on_run_end(self, event: RunEnded) -> None:
        self.ended.append(event)


def test_steering_commands_set_the_learning_rate_and_stop_the_fit() -> None:
    set_lr = SteeringCommand("c-lr", "set_lr", 0.002, agent="user:ana", reason="too noisy")
    weight = SteeringCommand("c-w", "set_weight", 2.0, parameter="residual", agent="user:ana")
    stop = SteeringCommand("c-stop", "stop", agent="user:bo", reason="good enough")
    source = _ScriptedCommands({1: [set_lr, weight], 3: [stop]})
    observer = _RecordingObserver()
    callback = ProvenanceCallback(observer, commands=source)
    model = _model(0.01)
    x, y = _data()
    history = model.fit(x, y, epochs=10, batch_size=32, verbose=0, callbacks=[callback])

    assert len(history.history["loss"]) == 4  # epochs 0..3, stopped after epoch 3
    assert [run_id for run_id, _ in source.polls] == [source.polls[0][0]] * 4
    assert [epoch for _, epoch in source.polls] == [0, 1, 2, 3]
    assert float(keras.ops.convert_to_numpy(model.optimizer.learning_rate)) == pytest.approx(0.002)
    assert [e.learning_rate for e in observer.epochs] == pytest.approx([0.01, 0.01, 0.002, 0.002])

    lr_change, stopped = observer.adaptations  # no second, "trainer" adaptation for the same LR change
    assert (lr_change.parameter, lr_change.agent, lr_change.command_id, lr_change.reason, lr_change.epoch) == (
        "learning_rate", "user:ana", "c-lr", "too noisy", 2)
    assert lr_change.old_value == pytest.approx(0.01) and lr_change.new_value == pytest.approx(0.002)
    assert (stopped.parameter, stopped.old_value, stopped.new_value, stopped.agent, stopped.command_id) == (
        "stop", False, True, "user:bo", "c-stop")

    acks = {command.command_id: (applied, detail) for _, command, applied, detail in source.acks}
    assert acks["c-lr"][0] is True and acks["c-stop"][0] is True
    assert acks["c-w"][0] is False and "loss weights" in acks["c-w"][1]
    (end,) = observer.ended
    assert end.status == "stopped" and end.epochs == 4


def test_lr_commands_are_refused_under_a_schedule_and_a_failing_source_never_breaks_fit() -> None:
    class Broken(_ScriptedCommands):
        def poll(self, run_id: str, epoch: int) -> list[SteeringCommand]:
            super().poll(run_id, epoch)
            if epoch == 0:
                raise ConnectionError("store gone")
            return [SteeringCommand(f"c{epoch}", "scale_lr", 0.5)]

        def acknowledge(self, run_id: str, command: SteeringCommand, applied: bool, detail: str) -> None:
            super().acknowledge(run_id, command, applied, detail)
            raise ConnectionError("still gone")

    source = Broken({})
    observer = _RecordingObserver()
    schedule = keras.optimizers.schedules.ExponentialDecay(0.01, decay_steps=10, decay_rate=0.9)
    x, y = _data()
    _model(schedule).fit(x, y, epochs=3, batch_size=32, verbose=0,
                         callbacks=[ProvenanceCallback(observer, commands=source)])
    assert [applied for _, _, applied, _ in source.acks] == [False, False]
    assert "LearningRateSchedule" in source.acks[0][3]
    assert not observer.adaptations
    assert observer.ended[0].status == "completed"


class _SubmitStop(keras.callbacks.Callback):
    """Plays the user: once the run is in the store, submits a stop through the steering channel."""

    def __init__(self, store_url: str, callback: ProvenanceCallback) -> None:
        super().__init__()
        self.store_url, self.callback, self.submitted = store_url, callback, False

    def on_epoch_end(self, epoch: int, logs: object = None) -> None:
        time.sleep(0.02)  # leaves the exporter and the steering worker time to run
        if self.submitted:
            return
        with open_store(self.store_url, read_only=False) as store:
            if run_status(store, self.callback.run_id or "") is None:
                return  # the run-start span has not reached the store yet
            submit(store, self.callback.run_id, new_command("stop", agent="user:carol", reason="seen enough"))
        self.submitted = True


def test_a_stop_submitted_to_the_store_stops_the_fit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PINNPROV_SPOOL_DIR", str(tmp_path / "spool"))
    url = f"sqlite:///{tmp_path / 'steer.sqlite'}"
    x, y = _data()
    with open_capture(store=url, schedule_delay_ms=20) as observers, \
            store_command_source(url, interval_s=0.05) as source:
        callback = ProvenanceCallback(observers, run_name="keras-steered", commands=source)
        history = _model().fit(x, y, epochs=300, batch_size=64, verbose=0,
                               callbacks=[_SubmitStop(url, callback), callback])
    assert len(history.history["loss"]) < 300
    with sqlite3.connect(tmp_path / "steer.sqlite") as conn:
        run_id, status = conn.execute("SELECT run_id, status FROM run WHERE run_name = 'keras-steered'").fetchone()
        rows = conn.execute(
            "SELECT parameter, agent, reason, command_id FROM adaptation WHERE run_id = ?", (run_id,)
        ).fetchall()
    assert status == "stopped"
    ((parameter, agent, reason, command_id),) = rows
    assert (parameter, agent, reason) == ("stop", "user:carol", "seen enough") and command_id
    with open_store(url) as store:
        (command,) = list_commands(store, run_id)
    assert command.command_id == command_id and command.state == "applied"  # acknowledged on close()
