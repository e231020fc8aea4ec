"""The hot loop: K optimiser steps per call, compiled once, returning one record per step.

Why chunks: a Python round trip per step costs more than a small network's step, so the loop over K steps
runs inside one tf.function (optionally XLA-compiled) and hands back a (K, len(RECORD_FIELDS)) tensor; the
trainer replays it to observers as K epochs. Steering and observers act at chunk boundaries.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import tensorflow as tf

from pinnprov.pinn.losses import RECORD_FIELDS
from pinnprov.pinn.problem import Problem

MODES = ("eager", "graph", "xla")


def _one_step(problem: Problem) -> tf.Tensor:
    sampler = problem.sampler
    if problem.config.collocation_redraw == "step":
        # Fresh points at every step: each reported residual is measured on points the networks have not been
        # fitted to, so the loss curve has no saw-tooth (with one draw per chunk, the first steps of each chunk
        # report the loss on new points and the rest on points the step is overfitting).
        sampler.resample()
    with tf.GradientTape() as tape:
        terms = problem.loss(sampler.xs, sampler.xr, sampler.x_bc)
    gradients = tape.gradient(terms["objective"], problem.variables)
    rate = problem.learning_rate(problem.step)
    problem.optimizer.apply(gradients, rate)
    problem.step.assign_add(1)
    terms["learning_rate"] = rate
    return tf.stack([tf.cast(terms[name], tf.float32) for name in RECORD_FIELDS])


def make_chunk(problem: Problem, mode: str = "graph") -> Callable[[int], np.ndarray]:
    """A function running `k` steps and returning their records as a numpy array (k, fields)."""
    if mode not in MODES:
        raise ValueError(f"mode: must be one of {MODES} (got {mode!r})")

    if mode == "eager":
        def eager_chunk(k: int) -> np.ndarray:
            return np.stack([_one_step(problem).numpy() for _ in range(k)])

        return eager_chunk

    def loop(k: int) -> tf.Tensor:
        # k is a Python int: a static trip count keeps the TensorArray shape static for XLA. At most two
        # traces happen per run (the chunk size and the final remainder).
        records = tf.TensorArray(tf.float32, size=k, element_shape=[len(RECORD_FIELDS)])
        for i in tf.range(k):
            records = records.write(i, _one_step(problem))
        return records.stack()

    compiled = tf.function(loop, jit_compile=(mode == "xla"), reduce_retracing=False)

    def graph_chunk(k: int) -> np.ndarray:
        records: np.ndarray = compiled(k).numpy()  # TensorFlow is untyped
        return records

    return graph_chunk
