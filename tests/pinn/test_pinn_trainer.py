"""The trainer: losses fall, R^2 rises, runs are reproducible, observers see the right events in order,
steering commands apply with Adapted events, failures are reported and re-raised, bad observers are isolated."""

from __future__ import annotations

import numpy as np
import pytest

from pinnprov.core.steering import SteeringCommand
from pinnprov.pinn.benchmark import crosshole_benchmark
from pinnprov.pinn.config import TrainConfig
from pinnprov.pinn.losses import RECORD_FIELDS
from pinnprov.pinn.observer import Adapted, EpochEnded, RunEnded, RunStarted
from pinnprov.pinn.trainer import configure_threads, train

configure_threads(1)

SMALL = dict(tau_layers=3, tau_units=16, velocity_layers=3, velocity_units=16, collocation_count=300,
             steps_per_call=50, stopping="none", threads=1, jit_compile=False, regularizer="none", weight_data=1.0,
             lr_initial=1e-3)


def small(**overrides: object) -> TrainConfig:
    return TrainConfig(**{**SMALL, **overrides})


class Recorder:
    def __init__(self) -> None:
        self.events: list[object] = []

    def on_run_start(self, event: RunStarted) -> None:
        self.events.append(event)

    def on_epoch_end(self, event: EpochEnded) -> None:
        self.events.append(event)

    def on_adaptation(self, event: Adapted) -> None:
        self.events.append(event)

    def on_run_end(self, event: RunEnded) -> None:
        self.events.append(event)

    def of(self, kind: type) -> list:
        return [e for e in self.events if isinstance(e, kind)]


class Exploding(Recorder):
    def on_epoch_end(self, event: EpochEnded) -> None:
        raise RuntimeError("observer bug")


class Scripted:
    """A CommandSource handing out commands at given epochs and recording acknowledgements."""

    def __init__(self, script: dict[int, list[SteeringCommand]]) -> None:
        self.script = dict(script)
        self.polls: list[int] = []
        self.acks: list[tuple[str, bool, str]] = []

    def poll(self, run_id: str, epoch: int) -> list[SteeringCommand]:
        self.polls.append(epoch)
        due = [e for e in self.script if e <= epoch]
        return [command for e in sorted(due) for command in self.script.pop(e)]

    def acknowledge(self, run_id: str, command: SteeringCommand, applied: bool, detail: str) -> None:
        self.acks.append((command.command_id, applied, detail))


@pytest.fixture(scope="module")
def data():
    return crosshole_benchmark()


@pytest.fixture(scope="module")
def inverse_run(data):
    recorder = Recorder()
    result = train(small(epochs=600, seed=3), data, [recorder])
    return result, recorder


def test_short_run_lowers_every_loss_component_and_raises_r2(inverse_run, data) -> None:
    from pinnprov.pinn.problem import Problem
    from pinnprov.pinn.scoring import score

    result, _ = inverse_run
    history = result.history
    first, last = history[:20].mean(axis=0), history[-20:].mean(axis=0)
    for column, name in enumerate(("loss", "loss_boundary", "loss_residual", "loss_data")):
        assert last[column] < first[column], name
    start = score(Problem(small(epochs=600, seed=3), data), data)  # same seed: the run's starting model
    assert result.metrics["r2"] > start.r2 + 0.02
    assert result.velocity_grid.shape == (44, 32)
    assert result.metrics["data_rms_s"] < start.data_rms_s


def test_run_summary_and_hyperparameters_are_the_schema_fields(inverse_run) -> None:
    from pinnprov.core.fields import DERIVED_HYPERPARAMETERS, HYPERPARAMETERS, SUMMARY_FIELDS

    _, recorder = inverse_run
    (start,) = recorder.of(RunStarted)
    (end,) = recorder.of(RunEnded)
    assert set(start.hyperparameters) == {hp.name for hp in (*HYPERPARAMETERS, *DERIVED_HYPERPARAMETERS)}
    unknown = set(end.summary) - {field.name for field in SUMMARY_FIELDS}
    assert unknown == set(), f"summary metrics missing from pinnprov/core/fields.py SUMMARY_FIELDS: {unknown}"


def test_observers_receive_events_in_order(inverse_run) -> None:
    result, recorder = inverse_run
    events = recorder.events
    assert isinstance(events[0], RunStarted) and isinstance(events[-1], RunEnded)
    assert len(recorder.of(RunStarted)) == 1 and len(recorder.of(RunEnded)) == 1
    epochs = recorder.of(EpochEnded)
    assert [e.epoch for e in epochs] == list(range(600)) == list(range(result.epochs))
    assert all(a.ended_at <= b.started_at + 1e-6 for a, b in zip(epochs[:-1], epochs[1:], strict=True))
    assert all(e.elapsed_s > 0 and e.ended_at > e.started_at for e in epochs)
    end = events[-1]
    assert end.status == "completed" and end.epochs == 600 and end.summary["r2"] == result.metrics["r2"]
    start = events[0]
    assert len(start.run_id) == 32 and int(start.run_id, 16) >= 0
    assert start.run_name.startswith("adam-tanh-")
    assert all(isinstance(v, str | int | float | bool) for v in start.hyperparameters.values())
    assert start.dataset.picks == 100


def test_hyperparameter_keys_match_the_vocabulary() -> None:
    from pinnprov.core import vocabulary

    names = [getattr(vocabulary, n) for n in dir(vocabulary) if n.startswith("HP_")]
    keys = small().hyperparameters()
    for name in names:
        assert name.removeprefix(vocabulary.HYPERPARAMETER_PREFIX) in keys, name


def test_schedule_adaptations_once_per_decay_period(data) -> None:
    recorder = Recorder()
    train(small(epochs=250, lr_decay_steps=100, lr_decay_rate=0.5), data, [recorder])
    schedule = [e for e in recorder.of(Adapted) if e.agent == "schedule"]
    assert [e.epoch for e in schedule] == [100, 200]
    assert [(e.old_value, e.new_value) for e in schedule] == [(0.001, 0.0005), (0.0005, 0.00025)]
    lr = {e.epoch: e.learning_rate for e in recorder.of(EpochEnded)}
    assert lr[0] == 0.001 and lr[100] == 0.0005 and lr[249] < lr[200]
    # a constant schedule never changes the rate, so it reports nothing
    recorder = Recorder()
    train(small(epochs=120, lr_schedule="constant", lr_decay_steps=50), data, [recorder])
    assert not recorder.of(Adapted)


def test_same_seed_same_losses(data) -> None:
    first = train(small(epochs=100, seed=11), data).history
    second = train(small(epochs=100, seed=11), data).history
    np.testing.assert_allclose(first, second, rtol=1e-6, atol=0)
    other = train(small(epochs=100, seed=12), data).history
    assert not np.allclose(first, other)


def test_steering_changes_lr_weights_and_stops(data) -> None:
    commands = Scripted({
        100: [SteeringCommand("c1", "set_lr", 5e-4, agent="user:ana", reason="slower")],
        150: [SteeringCommand("c2", "scale_lr", 0.5, agent="rule:plateau"),
              SteeringCommand("c3", "set_weight", 2.0, parameter="data", agent="user:ana")],
        200: [SteeringCommand("c4", "set_weight", 1.0, parameter="nonsense"),
              SteeringCommand("c5", "stop", agent="user:bob", reason="enough")],
    })
    recorder = Recorder()
    result = train(small(epochs=1000, lr_schedule="constant"), data, [recorder], commands)
    assert result.status == "stopped" and result.epochs == 200 and result.stop_reason == "enough"
    assert recorder.events[-1].status == "stopped" and recorder.events[-1].epochs == 200
    adapted = {e.command_id: e for e in recorder.of(Adapted)}
    assert set(adapted) == {"c1", "c2", "c3", "c5"}  # c4 refused: no event
    assert (adapted["c1"].parameter, adapted["c1"].old_value, adapted["c1"].new_value) == ("learning_rate", 0.001,
                                                                                           0.0005)
    assert adapted["c1"].agent == "user:ana" and adapted["c1"].reason == "slower" and adapted["c1"].epoch == 100
    assert adapted["c2"].new_value == 0.00025 and adapted["c2"].agent == "rule:plateau"
    assert (adapted["c3"].parameter, adapted["c3"].old_value, adapted["c3"].new_value) == ("loss_weight.data", 1.0,
                                                                                           2.0)
    assert adapted["c5"].parameter == "stop" and adapted["c5"].agent == "user:bob"
    lr = {e.epoch: e.learning_rate for e in recorder.of(EpochEnded)}
    assert lr[99] == 0.001 and lr[100] == 0.0005 and lr[150] == 0.00025
    acks = {cid: (applied, detail) for cid, applied, detail in commands.acks}
    assert all(acks[c][0] for c in ("c1", "c2", "c3", "c5")) and not acks["c4"][0]
    assert "nonsense" in acks["c4"][1]
    assert commands.polls[:4] == [50, 100, 150, 200]


def test_failing_observer_and_command_source_never_stop_training(data) -> None:
    class BrokenSource:
        def poll(self, run_id: str, epoch: int) -> list:
            raise ConnectionError("steering server down")

        def acknowledge(self, *args: object) -> None:
            raise AssertionError("never called")

    good = Recorder()
    result = train(small(epochs=100), data, [Exploding(), good], BrokenSource())
    assert result.status == "completed" and result.epochs == 100
    assert len(good.of(EpochEnded)) == 100 and good.events[-1].status == "completed"


def test_failure_is_reported_then_reraised(data) -> None:
    class Bomb(Scripted):
        def poll(self, run_id: str, epoch: int) -> list:
            return [SteeringCommand("x", "set_lr", 1e-3)]

        def acknowledge(self, run_id: str, command: SteeringCommand, applied: bool, detail: str) -> None:
            raise KeyboardInterrupt  # not an Exception: must not be swallowed like a broken source

    recorder = Recorder()
    with pytest.raises(KeyboardInterrupt):
        train(small(epochs=200), data, [recorder], Bomb({}))
    end = recorder.events[-1]
    assert isinstance(end, RunEnded) and end.status == "failed" and end.error.startswith("KeyboardInterrupt")
    assert end.epochs == 50


def test_discrepancy_principle_stops_on_data_alone(data) -> None:
    recorder = Recorder()
    # a noise level the short run reaches quickly, to exercise the rule (the benchmark's own is 0.0146 ms)
    result = train(small(epochs=2000, stopping="discrepancy", noise_level_s=6e-4), data, [recorder])
    assert result.status == "completed" and result.epochs < 2000
    assert "discrepancy principle" in result.stop_reason
    stop = recorder.of(Adapted)[-1]
    assert stop.parameter == "stop" and stop.agent == "trainer"
    assert recorder.of(EpochEnded)[-1].extra["data_rms_s"] <= 6e-4


def test_holdout_selection_keeps_best_parameters(data) -> None:
    result = train(small(epochs=300, stopping="holdout", holdout_fraction=0.2, holdout_patience=100), data)
    assert result.hyperparameters["stopping.rule"] == "holdout"
    assert "holdout_rms_s" in result.metrics
    held = [row for row in result.history]  # every epoch recorded
    assert len(held) == result.epochs


def test_lbfgs_phase_follows_adam(data) -> None:
    recorder = Recorder()
    result = train(small(epochs=100, lbfgs_steps=60, lbfgs_memory=10), data, [recorder])
    assert result.epochs == 160 and result.status == "completed"
    switch = [e for e in recorder.of(Adapted) if e.parameter == "optimizer"]
    assert len(switch) == 1 and (switch[0].old_value, switch[0].new_value, switch[0].epoch) == ("adam", "lbfgs", 100)
    epochs = recorder.of(EpochEnded)
    assert "lbfgs_step" in epochs[120].extra and "lbfgs_step" not in epochs[50].extra
    losses = result.history[:, 0]
    assert losses[100:].min() < losses[99]  # L-BFGS improves on where Adam stopped
    objective = result.history[100:, RECORD_FIELDS.index("objective")]
    assert np.all(np.diff(objective) <= 1e-7)  # Armijo: the objective never increases


@pytest.mark.parametrize("optimizer,activation", [("rmsprop", "sigmoid"), ("adam", "sine"), ("adam", "relu"),
                                                  ("adam", "adaptive_tanh")])
def test_registry_choices_train(data, optimizer: str, activation: str) -> None:
    result = train(small(epochs=100, optimizer=optimizer, activation=activation), data)
    assert result.run_name.startswith(f"{optimizer}-{activation}-")
    assert result.history[-10:, 0].mean() < result.history[:10, 0].mean()


def test_xla_mode_matches_graph(data) -> None:
    # points drawn outside the compiled step, so both modes see the same ones: XLA's random generator inside a
    # compiled loop gives another stream than the graph kernel's (per-step draws are reproducible per mode)
    graph = train(small(epochs=60, collocation_redraw="chunk"), data).history
    xla = train(small(epochs=60, jit_compile=True, collocation_redraw="chunk"), data).history
    np.testing.assert_allclose(graph[:, 0], xla[:, 0], rtol=1e-3)


def test_per_step_draws_are_reproducible_under_xla(data) -> None:
    first = train(small(epochs=60, jit_compile=True), data).history
    second = train(small(epochs=60, jit_compile=True), data).history
    np.testing.assert_array_equal(first[:, 0], second[:, 0])
    chunked = train(small(epochs=60, jit_compile=True, collocation_redraw="chunk"), data).history
    assert not np.array_equal(first[1:, 0], chunked[1:, 0])  # the draws really happen per step


def test_time_budget_stops_the_run(data) -> None:
    recorder = Recorder()
    result = train(small(epochs=10**6, time_budget_s=1.0), data, [recorder])
    assert result.status == "completed" and result.epochs < 10**6 and result.epochs % 50 == 0
    assert "time budget" in result.stop_reason
    assert recorder.of(Adapted)[-1].parameter == "stop"


def test_default_rule_without_a_noise_level_stops_on_convergence(data) -> None:
    # a small learning rate annealed fast: the loss flattens within a few thousand steps
    result = train(small(epochs=6000, stopping="converged", convergence_window=500, convergence_tolerance=0.02,
                         lr_initial=3e-3, lr_decay_rate=0.5, lr_decay_steps=300), data)
    assert result.hyperparameters["stopping.rule"] == "converged"
    assert result.stop_reason.startswith("converged") and 1000 <= result.epochs < 6000
    # no repeated pairs in the benchmark: the converged fit's misfit is the noise estimate, and it is reported
    assert result.noise_estimate is not None and result.noise_estimate.method == "residual"
    assert result.metrics["noise_estimate_s"] == pytest.approx(result.metrics["data_rms_s"])


def test_no_noise_estimate_from_a_run_that_did_not_converge(data) -> None:
    result = train(small(epochs=2000, stopping="discrepancy", noise_level_s=6e-4), data)
    assert "discrepancy principle" in result.stop_reason and "noise_estimate_s" not in result.metrics


def test_holdout_from_the_rule_alone_holds_out_a_tenth(data) -> None:
    result = train(small(epochs=200, stopping="holdout", holdout_patience=100), data)
    assert result.hyperparameters["stopping.holdout_fraction"] == 0.1
    assert "holdout_rms_s" in result.metrics
