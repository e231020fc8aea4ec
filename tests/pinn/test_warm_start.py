"""Warm start (checkpoints.py `warm_start`, `train(..., warm_start=)`): an RML member starts from the pilot's answer.

One short pilot run writes its final checkpoint; members start from its networks with their own optimiser, weights
and perturbed problem. With one step at a learning rate of 1e-9 a warm-started member's velocity grid is the
pilot's to well under 1 m/s, while a cold start from the member's own seed is hundreds of m/s away from both.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pinnprov.pinn import checkpoints as ckpt
from pinnprov.pinn import model_suite
from pinnprov.pinn.benchmark import crosshole_benchmark
from pinnprov.pinn.config import TrainConfig
from pinnprov.pinn.dataset import TraveltimeData
from pinnprov.pinn.problem import Problem
from pinnprov.pinn.rml_plan import RmlPlan
from pinnprov.pinn.trainer import TrainResult, configure_threads, train

configure_threads(1)

PILOT = TrainConfig(tau_layers=2, tau_units=8, velocity_layers=2, velocity_units=8, collocation_count=100,
                    boundary_points=20, epochs=300, steps_per_call=100, convergence_window=300,
                    convergence_tolerance=1e-6, lr_initial=1e-2, lr_decay_steps=100, threads=1, jit_compile=False,
                    seed=5, time_budget_s=0.0)


@pytest.fixture(scope="module")
def data() -> TraveltimeData:
    return crosshole_benchmark()


@pytest.fixture(scope="module")
def pilot(data: TraveltimeData, tmp_path_factory: pytest.TempPathFactory) -> tuple[TrainResult, Path]:
    directory = tmp_path_factory.mktemp("pilot")
    result = train(PILOT, data, checkpoints=ckpt.CheckpointPolicy.parse(directory, "10m"))
    return result, directory


def member(k: int = 1) -> TrainConfig:
    config = RmlPlan(members=4, member_lr=1e-9).member_config(PILOT, k, 2e-5)
    return config.replace(epochs=1, steps_per_call=1, convergence_window=1)


def test_the_pilot_writes_a_final_checkpoint_even_when_none_was_due(pilot: tuple[TrainResult, Path]) -> None:
    result, directory = pilot
    checkpoint = ckpt.load(directory)
    assert checkpoint.epochs == result.epochs == 300
    assert checkpoint.meta["final"] is True and checkpoint.run_id == result.run_id
    assert len(list(directory.glob(f"*{ckpt.SUFFIX}"))) == 1  # 10 min never passed: only the final one


def test_a_warm_started_member_starts_from_the_pilots_velocity(pilot: tuple[TrainResult, Path],
                                                               data: TraveltimeData) -> None:
    result, directory = pilot
    checkpoint = ckpt.load(directory)
    config = member()
    warm = train(config, data, warm_start=checkpoint)
    cold = train(config, data)
    assert warm.epochs == cold.epochs == 1
    warm_gap = np.max(np.abs(warm.velocity_grid - result.velocity_grid))
    cold_gap = np.max(np.abs(cold.velocity_grid - result.velocity_grid))
    assert warm_gap < 1.0  # m/s, on velocities of 1500-4000 m/s
    assert cold_gap > 50.0 and cold_gap > 100 * warm_gap
    assert warm.hyperparameters["run.warm_start_from"] == result.run_id
    assert "run.warm_start_from" not in cold.hyperparameters
    assert warm.hyperparameters["rml.prior_weight_factor"] == config.perturbation.weight_factor()
    assert "rml.prior_weight_factor" not in result.hyperparameters


def test_warm_start_takes_the_networks_but_keeps_the_members_own_optimiser_and_weights(
        pilot: tuple[TrainResult, Path], data: TraveltimeData) -> None:
    _, directory = pilot
    checkpoint = ckpt.load(directory)
    config = member(2).replace(weight_data=3.0)
    problem = Problem(config, data)
    ckpt.warm_start(problem, checkpoint)
    names = {id(v): name for name, v in ckpt.state_variables(problem).items()}
    stored = checkpoint.best or [checkpoint.arrays[names[id(v)]] for v in problem.variables]
    for variable, value in zip(problem.variables, stored, strict=True):
        np.testing.assert_array_equal(variable.numpy(), value)
    assert any(v is problem.loss.reference for v in problem.variables)  # the prior's background comes along
    assert int(problem.step.numpy()) == 0
    moments = [v for name, v in ckpt.state_variables(problem).items() if name.startswith("var/optimizer/")]
    assert moments and not any(np.any(v.numpy()) for v in moments)  # Adam's m, v and t start afresh
    assert any(np.any(checkpoint.arrays[name]) for name in checkpoint.arrays if name.startswith("var/optimizer/"))
    assert float(problem.learning_rate.base.numpy()) == pytest.approx(1e-9)
    assert float(problem.weights.data.numpy()) == 3.0
    assert float(problem.weights.regularizer.numpy()) == pytest.approx(
        config.weight_regularizer * config.perturbation.weight_factor(), rel=1e-6)


def test_warm_start_refuses_another_data_set_or_another_network(pilot: tuple[TrainResult, Path]) -> None:
    _, directory = pilot
    checkpoint = ckpt.load(directory)
    other = model_suite.case("fast-small").data()
    with pytest.raises(ValueError, match="warm start: .* another data set"):
        train(member(), other, warm_start=checkpoint)
    with pytest.raises(ValueError, match="warm start"):
        ckpt.warm_start(Problem(member().replace(tau_units=9), crosshole_benchmark()), checkpoint)
    with pytest.raises(ValueError, match="warm start"):
        ckpt.warm_start(Problem(member().replace(velocity_layers=3), crosshole_benchmark()), checkpoint)


def test_warm_start_and_resume_exclude_each_other(pilot: tuple[TrainResult, Path], data: TraveltimeData) -> None:
    _, directory = pilot
    checkpoint = ckpt.load(directory)
    with pytest.raises(ValueError, match="cannot also warm-start"):
        train(PILOT, data, resume=checkpoint, warm_start=checkpoint)
