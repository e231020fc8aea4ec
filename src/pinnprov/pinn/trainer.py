"""Training loop: compiled chunks of optimiser steps, events to observers, steering at chunk boundaries.

`train(config, data, observers, commands)` is the one entry point. Per chunk of K steps it: refreshes the
collocation points, runs the compiled loop, replays the K per-step records to the observers as epochs
(elapsed_s = call time / K, start/end interpolated), reports learning-rate decay as Adapted events, polls
steering commands, and asks the data-only stopping rule whether to stop.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pinnprov.core.artifacts import sha256_file
from pinnprov.pinn import checkpoints as ckpt
from pinnprov.pinn.config import TrainConfig
from pinnprov.pinn.dataset import TraveltimeData
from pinnprov.pinn.events import EventReplay
from pinnprov.pinn.losses import LEARNING_RATE, LOSS
from pinnprov.pinn.noise_estimate import NoiseEstimate, estimate
from pinnprov.pinn.observer import (
    HyperparameterValue,
    ObserverFanout,
    Resumption,
    RunEnded,
    RunStarted,
    RunStatus,
    TrainingObserver,
)
from pinnprov.pinn.products import DEFAULT_SNAPSHOT_EVERY, RunProducts
from pinnprov.pinn.runinfo import new_run_id, new_run_name
from pinnprov.pinn.scoring import Scored, score
from pinnprov.pinn.steering import CommandSource, NoCommands
from pinnprov.pinn.steering_apply import SteeringApplier
from pinnprov.pinn.stopping import Decision, make_rule, progress_of

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    run_id: str
    run_name: str
    status: RunStatus
    epochs: int
    seconds: float
    metrics: dict[str, float]
    velocity_grid: np.ndarray  # m/s on the scoring grid (rows = depth)
    grid_x: np.ndarray
    grid_z: np.ndarray
    velocity: object  # callable (x, z) -> v in m/s, numpy in and out
    hyperparameters: Mapping[str, HyperparameterValue] = field(default_factory=dict)
    history: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))  # per-epoch records (see RECORD_FIELDS)
    stop_reason: str = ""
    noise_estimate: NoiseEstimate | None = None  # the pick noise the data show (pinnprov/pinn/noise_estimate.py)
    artifacts: list[tuple[str, Path]] = field(default_factory=list)  # (role, path) of files the trainer wrote


def configure_threads(threads: int) -> None:
    """Pin TensorFlow's thread pools (must happen before TensorFlow runs its first op)."""
    if threads <= 0:
        return
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    except RuntimeError:
        current = tf.config.threading.get_intra_op_parallelism_threads()
        if current != threads:
            log.warning("TensorFlow already initialised with %s threads; threads=%s not applied", current, threads)


def train(
    config: TrainConfig,
    data: TraveltimeData,
    observers: Sequence[TrainingObserver] = (),
    commands: CommandSource | None = None,
    *,
    checkpoints: ckpt.CheckpointPolicy | None = None,
    resume: ckpt.Checkpoint | None = None,
    resumed_by: tuple[str, str] = ("", ""),
    snapshot_every: int = DEFAULT_SNAPSHOT_EVERY,
    networks_dir: Path | None = None,
    warm_start: ckpt.Checkpoint | None = None,
) -> TrainResult:
    """Train the inverse FEE PINN on `data`; events go to `observers`, steering comes from `commands`.

    `checkpoints` writes checkpoints (pinnprov/pinn/checkpoints.py); `resume` continues from one as a new run
    (`resumed_by`: agent and reason recorded with the relation); every `snapshot_every` epochs the velocity model
    on the scoring grid goes to observers that take snapshots; `networks_dir` receives tau and v in Keras format.
    Checkpoints and networks are reported to observers as ArtifactWritten events. `warm_start` starts the networks
    from a checkpoint's (an RML ensemble member from the unperturbed run's answer) with this run's own optimiser.
    """
    configure_threads(config.threads)
    import tensorflow as tf

    from pinnprov.pinn.problem import Problem
    from pinnprov.pinn.stepper import make_chunk

    fanout = ObserverFanout(observers)
    commands = commands or NoCommands()
    run_id = new_run_id()
    run_name = config.run_name or new_run_name(config.optimizer, config.activation)
    # Only the user's statement counts as a noise level: a synthetic data set's noise_rms_s is its generator's
    # knowledge, and a default that needed it would not carry over to anyone's own picks.
    noise_level = config.noise_level_s
    rule_name = config.stopping
    hyperparameters = dict(config.hyperparameters())
    hyperparameters.update({"stopping.rule": rule_name, "stopping.noise_level_s": float(noise_level),
                            "stopping.holdout_fraction": config.held_out_fraction,
                            "run.epochs_total": config.epochs + config.lbfgs_steps})
    started = time.time()
    resumed: Resumption | None = None
    if resume is not None:
        if resume.meta.get("dataset_sha256") != data.identity().sha256:
            raise ValueError(f"resume: {resume.path} was trained on data set {resume.meta.get('dataset_sha256')}, "
                             f"not on {data.identity().sha256} ({data.identity().name})")
        started -= float(resume.meta.get("seconds", 0.0))  # the time budget counts the earlier run's time too
        resumed = Resumption(run_id=resume.run_id, epoch=resume.epochs,
                             checkpoint_sha256=sha256_file(resume.path), agent=resumed_by[0] or "trainer",
                             reason=resumed_by[1] or f"resumed from {resume.path.name}")
        hyperparameters["run.resumed_from"] = resume.run_id
    if warm_start is not None:
        if resume is not None:
            raise ValueError("warm start: a resumed run continues its own checkpoint, it cannot also warm-start")
        if warm_start.meta.get("dataset_sha256") != data.identity().sha256:
            raise ValueError(f"warm start: {warm_start.path} was trained on another data set")
        hyperparameters["run.warm_start_from"] = warm_start.run_id
    tf.random.set_seed(config.seed)
    problem = Problem(config, data)
    if warm_start is not None:
        ckpt.warm_start(problem, warm_start)
    hyperparameters.update({"network.velocity.min_m_s": problem.v_min_m_s,
                            "network.velocity.max_m_s": problem.v_max_m_s,
                            "scaling.length_m": problem.scaling.length_m,
                            "scaling.velocity_m_s": problem.scaling.velocity_m_s})
    if config.perturbation.active:
        hyperparameters["rml.prior_weight_factor"] = problem.prior_weight_factor
    fanout.on_run_start(RunStarted(run_id=run_id, run_name=run_name, experiment=config.experiment,
                                   started_at=time.time(), hyperparameters=hyperparameters, dataset=data.identity(),
                                   resumed=resumed))
    replay = EventReplay(fanout, problem.learning_rate, config)
    steering = SteeringApplier(problem, replay, commands, run_id)
    rule = make_rule(rule_name, noise_level_s=noise_level, factor=config.discrepancy_factor,
                     patience=config.holdout_patience, window=config.convergence_window,
                     tolerance=config.convergence_tolerance)
    status: RunStatus = "completed"
    stop_reason = ""
    best: list[np.ndarray] | None = None
    if resume is not None:
        ckpt.restore(problem, resume)
        replay.epochs = resume.epochs
        replay.reported_lr = float(resume.meta.get("reported_lr", replay.reported_lr))
        rule.load_state(dict(resume.meta.get("rule", {})))
        best = resume.best
    products = RunProducts(fanout, run_id, config, data, problem, started, snapshot_every, checkpoints,
                           replay.epochs)
    try:
        products.exact_model()
        chunk = make_chunk(problem, "xla" if config.jit_compile else "graph")
        while replay.epochs < config.epochs:
            k = min(config.steps_per_call, config.epochs - replay.epochs)
            if config.collocation_redraw == "chunk" and replay.epochs > 0:
                problem.sampler.resample()
            call_start = time.time()
            records = chunk(k)
            call_end = time.time()
            holdout = problem.holdout_rms_s()
            replay.chunk(records, call_start, call_end, holdout_rms_s=holdout)
            if not np.all(np.isfinite(records[:, 0])):
                raise FloatingPointError(f"loss is not finite at epoch {replay.epochs - 1}")
            decision: Decision = rule.check(progress_of(replay.epochs - 1, records, holdout))
            if decision.improved:
                best = problem.snapshot()
            products.chunk_done(replay, rule, best)
            if steering.poll(replay.epochs):
                status, stop_reason = "stopped", steering.stop_reason
                break
            if not decision.stop and config.time_budget_s and time.time() - started >= config.time_budget_s:
                decision = Decision(True, f"time budget of {config.time_budget_s:g} s reached")
            if decision.stop:
                stop_reason = decision.reason
                replay.adapted("stop", False, True, "trainer", decision.reason)
                break
        products.checkpoint(replay, rule, best, final=True)
        if status == "completed" and not stop_reason and config.lbfgs_steps:
            from pinnprov.pinn.lbfgs import run_lbfgs

            replay.adapted("optimizer", config.optimizer, "lbfgs", "trainer",
                           f"scheduled L-BFGS phase of {config.lbfgs_steps} steps after {replay.epochs} epochs")
            def snapshot() -> None:
                nonlocal best
                best = problem.snapshot()

            status, stop_reason = run_lbfgs(problem, replay, steering, rule, config, snapshot)
        if best is not None:
            problem.restore(best)  # hold-out selection: the parameters with the lowest held-out RMS
        scored = score(problem, data)
        products.snapshot(replay.epochs, scored.grid_v)
        if networks_dir is not None:
            products.networks(networks_dir, replay.epochs)
        metrics = _summary(scored, problem, replay, started)
        converged = stop_reason.startswith("converged")
        noise = estimate(data, scored.data_rms_s if converged else None)
        if noise is not None:
            metrics["noise_estimate_s"] = noise.sigma_s
    except BaseException as error:
        fanout.on_run_end(RunEnded(status="failed", at=time.time(), epochs=replay.epochs,
                                   error=f"{type(error).__name__}: {error}"))
        raise
    fanout.on_run_end(RunEnded(status=status, at=time.time(), epochs=replay.epochs, summary=metrics))
    return TrainResult(
        run_id=run_id, run_name=run_name, status=status, epochs=replay.epochs, seconds=metrics["seconds"],
        metrics=metrics, velocity_grid=scored.grid_v, grid_x=scored.grid_x, grid_z=scored.grid_z,
        velocity=problem.velocity_m_s, hyperparameters=hyperparameters, history=replay.history(),
        stop_reason=stop_reason, noise_estimate=noise, artifacts=products.written,
    )


def _summary(scored: Scored, problem: object, replay: EventReplay, started: float) -> dict[str, float]:
    metrics = {"data_rms_s": scored.data_rms_s, "epochs": float(replay.epochs), "seconds": time.time() - started}
    if scored.r2 is not None and scored.rmse_m_s is not None:
        metrics["r2"] = scored.r2
        metrics["rmse_m_s"] = scored.rmse_m_s
    if scored.holdout_rms_s is not None:
        metrics["holdout_rms_s"] = scored.holdout_rms_s
    if replay.last is not None:
        metrics["loss"] = float(replay.last[LOSS])
        metrics["learning_rate"] = float(replay.last[LEARNING_RATE])
    return {key: value for key, value in metrics.items() if math.isfinite(value)}
