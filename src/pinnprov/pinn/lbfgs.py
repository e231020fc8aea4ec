"""Optional L-BFGS phase after the first-order optimiser, compiled like the Adam loop.

Why our own: neither SciPy nor TensorFlow Probability is a dependency, and a TF implementation runs K
iterations per compiled call like the main loop. Classic two-loop recursion (Nocedal & Wright, Alg. 7.4)
over the last `memory` curvature pairs, initial scaling gamma = s.y / y.y, backtracking Armijo line search.
The collocation points are frozen during this phase: a line search needs one deterministic objective.
Each iteration is reported as one epoch; learning_rate keeps the last first-order rate (no rate applies) and
the accepted step length goes to extra["lbfgs_step"].
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import tensorflow as tf

from pinnprov.pinn.config import TrainConfig
from pinnprov.pinn.events import EventReplay
from pinnprov.pinn.losses import LEARNING_RATE, RECORD_FIELDS
from pinnprov.pinn.observer import RunStatus
from pinnprov.pinn.problem import Problem
from pinnprov.pinn.steering_apply import SteeringApplier
from pinnprov.pinn.stopping import StoppingRule, progress_of

ARMIJO_C1 = 1e-4
MAX_HALVINGS = 20


class LBFGS(tf.Module):
    def __init__(self, problem: Problem, memory: int) -> None:
        super().__init__(name="lbfgs")
        self.problem = problem
        self.params = list(problem.variables)
        self.sizes = [int(np.prod(v.shape)) for v in self.params]
        n = sum(self.sizes)
        self.memory = memory
        self.s = tf.Variable(tf.zeros([memory, n]), trainable=False)
        self.y = tf.Variable(tf.zeros([memory, n]), trainable=False)
        self.rho = tf.Variable(tf.zeros([memory]), trainable=False)
        self.count = tf.Variable(0, trainable=False)
        self.head = tf.Variable(0, trainable=False)
        self.frozen_rate = tf.Variable(0.0, trainable=False)

    def _flat(self) -> tf.Tensor:
        return tf.concat([tf.reshape(v, [-1]) for v in self.params], axis=0)

    def _assign(self, flat: tf.Tensor) -> None:
        for variable, part in zip(self.params, tf.split(flat, self.sizes), strict=True):
            variable.assign(tf.reshape(part, variable.shape))

    def _terms(self) -> dict[str, tf.Tensor]:
        sampler = self.problem.sampler
        return self.problem.loss(sampler.xs, sampler.xr, sampler.x_bc)

    def _value_and_gradient(self) -> tuple[dict[str, tf.Tensor], tf.Tensor]:
        with tf.GradientTape() as tape:
            terms = self._terms()
        gradients = tape.gradient(terms["objective"], self.params)
        return terms, tf.concat([tf.reshape(g, [-1]) for g in gradients], axis=0)

    def _direction(self, gradient: tf.Tensor) -> tf.Tensor:
        stored = tf.minimum(self.count, self.memory)
        q = gradient
        alphas = tf.TensorArray(tf.float32, size=stored)
        for j in tf.range(stored):
            idx = tf.math.floormod(self.head - 1 - j, self.memory)
            alpha = self.rho[idx] * tf.tensordot(self.s[idx], q, 1)
            q = q - alpha * self.y[idx]
            alphas = alphas.write(j, alpha)
        last = tf.math.floormod(self.head - 1, self.memory)
        gamma = tf.cond(stored > 0, lambda: tf.tensordot(self.s[last], self.y[last], 1)
                        / tf.tensordot(self.y[last], self.y[last], 1), lambda: tf.constant(1.0))
        r = gamma * q
        for jj in tf.range(stored):
            j = stored - 1 - jj
            idx = tf.math.floormod(self.head - 1 - j, self.memory)
            beta = self.rho[idx] * tf.tensordot(self.y[idx], r, 1)
            r = r + self.s[idx] * (alphas.read(j) - beta)
        return -r

    def _iteration(self) -> tf.Tensor:
        terms, gradient = self._value_and_gradient()
        f0 = terms["objective"]
        direction = self._direction(gradient)
        slope = tf.tensordot(gradient, direction, 1)
        if slope >= 0.0:  # not a descent direction (stale curvature): restart from steepest descent
            direction, slope = -gradient, -tf.tensordot(gradient, gradient, 1)
            self.count.assign(0)
        step = tf.where(self.count > 0, 1.0, tf.minimum(1.0, 1.0 / (tf.norm(gradient) + 1e-12)))
        x0 = self._flat()
        accepted = tf.constant(False)
        for _ in tf.range(MAX_HALVINGS):
            self._assign(x0 + step * direction)
            if self._terms()["objective"] <= f0 + ARMIJO_C1 * step * slope:
                accepted = tf.constant(True)
                break
            step = step * 0.5
        if not accepted:
            self._assign(x0)
            step = tf.constant(0.0)
        else:
            _, new_gradient = self._value_and_gradient()
            s = step * direction
            y = new_gradient - gradient
            sy = tf.tensordot(s, y, 1)
            if sy > 1e-10:
                self.s[self.head].assign(s)
                self.y[self.head].assign(y)
                self.rho[self.head].assign(1.0 / sy)
                self.head.assign(tf.math.floormod(self.head + 1, self.memory))
                self.count.assign_add(1)
        self.problem.step.assign_add(1)
        terms["learning_rate"] = self.frozen_rate
        record = tf.stack([tf.cast(terms[name], tf.float32) for name in RECORD_FIELDS])
        return tf.concat([record, [step]], axis=0)

    @tf.function(reduce_retracing=False)
    def run(self, k: int) -> tf.Tensor:
        records = tf.TensorArray(tf.float32, size=k, element_shape=[len(RECORD_FIELDS) + 1])
        for i in tf.range(k):
            records = records.write(i, self._iteration())
        return records.stack()


def run_lbfgs(problem: Problem, replay: EventReplay, steering: SteeringApplier, rule: StoppingRule,
              config: TrainConfig, on_improved: Callable[[], None] = lambda: None) -> tuple[RunStatus, str]:
    """Run config.lbfgs_steps iterations in chunks; returns (status, stop reason).

    `on_improved` is called when the hold-out rule finds new best parameters (the trainer snapshots them).
    """
    optimizer = LBFGS(problem, config.lbfgs_memory)
    optimizer.frozen_rate.assign(float(replay.last[LEARNING_RATE]) if replay.last is not None else 0.0)
    replay.schedule_active = False
    steering.lbfgs_phase = True
    done = 0
    while done < config.lbfgs_steps:
        k = min(config.steps_per_call, config.lbfgs_steps - done)
        call_start = time.time()
        records = optimizer.run(k).numpy()
        call_end = time.time()
        holdout = problem.holdout_rms_s()
        replay.chunk(records[:, :-1], call_start, call_end, holdout_rms_s=holdout,
                     extra_columns={"lbfgs_step": records[:, -1]})
        done += k
        if not np.all(np.isfinite(records[:, 0])):
            raise FloatingPointError(f"loss is not finite at epoch {replay.epochs - 1}")
        if steering.poll(replay.epochs):
            return "stopped", steering.stop_reason
        decision = rule.check(progress_of(replay.epochs - 1, records, holdout))
        if decision.improved:
            on_improved()
        if decision.stop:
            replay.adapted("stop", False, True, "trainer", decision.reason)
            return "completed", decision.reason
    return "completed", ""
