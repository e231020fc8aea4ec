"""Collocation points for the residual and the boundary condition, drawn by a seeded generator.

Sources: the data's own source positions ("sources": the inverse problem only needs tau for shots that were
fired), points on the segments between two shots ("interpolated": for shots along a borehole, sources anywhere
along it, so tau must be a consistent eikonal solution for a continuum of shots, which constrains v more than
ten isolated fields do), or anywhere in the domain ("domain", what a general forward solver needs).
Receivers: uniform over the domain, optionally a fraction concentrated along the straight rays between the
picked pairs, where the data actually constrain v. Points are tf.Variables refreshed in place, so the
compiled step never retraces.

When: by default a fresh draw at every optimiser step, inside the compiled loop (config collocation_redraw
"step"). Then every reported residual is an unbiased estimate of the same quantity, the mean residual over
the domain, so loss curves are comparable from epoch to epoch; with one draw per chunk ("chunk") the networks
fit the current points for 100 steps and each chunk's first step shows a spike on the new points
(bench/loss_curves.py measures both). Redrawing costs a few random draws per step, nothing next to the step.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf


class CollocationSampler(tf.Module):
    def __init__(self, *, count: int, box: tuple[float, float, float, float], shot_points: np.ndarray,
                 source_sampling: str, boundary_points: int, seed: int, ray_fraction: float = 0.0,
                 ray_width: float = 0.05, pair_sources: np.ndarray | None = None,
                 pair_receivers: np.ndarray | None = None) -> None:
        super().__init__(name="collocation")
        self.count = count
        self.lower = tf.constant([box[0], box[2]], tf.float32)
        self.upper = tf.constant([box[1], box[3]], tf.float32)
        self.shots = tf.constant(np.unique(np.asarray(shot_points, np.float32), axis=0), tf.float32)
        self.source_sampling = source_sampling
        self.rays = int(round(ray_fraction * count)) if pair_sources is not None else 0
        self.ray_width = float(ray_width)
        if self.rays:
            self.pair_sources = tf.constant(pair_sources, tf.float32)
            self.pair_receivers = tf.constant(pair_receivers, tf.float32)
        # Boundary points: every shot, plus random source points when collocation sources are not only shots.
        self.extra_boundary = boundary_points if source_sampling != "sources" else 0
        self.generator = tf.random.Generator.from_seed(seed)
        self.xs = tf.Variable(tf.zeros([count, 2]), trainable=False, name="xs")
        self.xr = tf.Variable(tf.zeros([count, 2]), trainable=False, name="xr")
        self.x_bc = tf.Variable(tf.zeros([len(self.shots) + self.extra_boundary, 2]), trainable=False, name="x_bc")
        self.resample()

    def _uniform(self, n: int) -> tf.Tensor:
        return self.lower + (self.upper - self.lower) * self.generator.uniform([n, 2])

    def _shots(self, n: int) -> tf.Tensor:
        index = self.generator.uniform([n], 0, tf.shape(self.shots)[0], dtype=tf.int32)
        return tf.gather(self.shots, index)

    def _sources(self, n: int) -> tf.Tensor:
        if self.source_sampling == "domain":
            return self._uniform(n)
        if self.source_sampling == "interpolated":
            first, second = self._shots(n), self._shots(n)
            return first + self.generator.uniform([n, 1]) * (second - first)
        return self._shots(n)

    @tf.function
    def resample(self) -> None:
        uniform = self.count - self.rays
        sources = self._sources(uniform)
        receivers = self._uniform(uniform)
        if self.rays:
            index = self.generator.uniform([self.rays], 0, tf.shape(self.pair_sources)[0], dtype=tf.int32)
            start, end = tf.gather(self.pair_sources, index), tf.gather(self.pair_receivers, index)
            along = self.generator.uniform([self.rays, 1])
            jitter = self.ray_width * self.generator.normal([self.rays, 2])
            near_ray = tf.clip_by_value(start + along * (end - start) + jitter, self.lower, self.upper)
            sources = tf.concat([sources, start], axis=0)
            receivers = tf.concat([receivers, near_ray], axis=0)
        self.xs.assign(sources)
        self.xr.assign(receivers)
        if self.extra_boundary:
            self.x_bc.assign(tf.concat([self.shots, self._sources(self.extra_boundary)], axis=0))
        else:
            self.x_bc.assign(self.shots)
