"""The two networks of the paper's Figure 1: tau(xs, xr) and v(xr), on nondimensional coordinates.

Both end in a scaled sigmoid, so outputs stay in a physical range from the first step: v_hat in
[v_min, v_max] / v0 and tau_hat (an average slowness along the ray, times v0) in [v0 / v_max, v0 / v_min].
Both are centred on their homogeneous value (v_hat = tau_hat = 1) at the start: the output bias is set
so, and the last layer's random weights add a spread around it. The starting model is thus near the
medium whose velocity is the data's median apparent velocity.
"""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf

from pinnprov.pinn.plugins import ACTIVATIONS


class MLP(tf.Module):
    """Fully connected network with Glorot-normal weights from a numpy seed (reproducible, TF-version-proof)."""

    def __init__(self, inputs: int, layers: int, units: int, activation: str, seed: int, name: str,
                 output_bias: float = 0.0) -> None:
        super().__init__(name=name)
        rng = np.random.default_rng(seed)
        sizes = [inputs] + [units] * layers + [1]
        factory = ACTIVATIONS.get(activation)
        self.weights: list[tf.Variable] = []
        self.biases: list[tf.Variable] = []
        self.activations = [factory() for _ in range(layers)]
        for k, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
            std = math.sqrt(2.0 / (fan_in + fan_out))
            self.weights.append(tf.Variable(rng.normal(0.0, std, (fan_in, fan_out)).astype(np.float32), name=f"w{k}"))
            bias = np.full((fan_out,), output_bias if k == layers else 0.0, dtype=np.float32)
            self.biases.append(tf.Variable(bias, name=f"b{k}"))

    def __call__(self, x: tf.Tensor) -> tf.Tensor:
        for weight, bias, activation in zip(self.weights[:-1], self.biases[:-1], self.activations, strict=True):
            x = activation(tf.matmul(x, weight) + bias)
        return tf.matmul(x, self.weights[-1]) + self.biases[-1]


def _logit(p: float) -> float:
    return math.log(p / (1.0 - p))


class BoundedOutput(tf.Module):
    """lower + (upper - lower) * sigmoid(z), starting at `start` (a value inside the range)."""

    def __init__(self, lower: float, upper: float) -> None:
        super().__init__()
        self.lower, self.upper = float(lower), float(upper)

    def start_bias(self, start: float) -> float:
        return _logit((start - self.lower) / (self.upper - self.lower))

    def __call__(self, z: tf.Tensor) -> tf.Tensor:
        return self.lower + (self.upper - self.lower) * tf.sigmoid(z)


class VelocityNetwork(tf.Module):
    """v_hat(X_r): nondimensional velocity at nondimensional points (n, 2) -> (n,)."""

    def __init__(self, layers: int, units: int, activation: str, seed: int, v_min_hat: float, v_max_hat: float,
                 fourier_features: int = 0, fourier_scale: float = 1.0) -> None:
        super().__init__(name="velocity")
        self.bound = BoundedOutput(v_min_hat, v_max_hat)
        self.fourier: tf.Tensor | None = None
        inputs = 2
        if fourier_features:
            # Random Fourier features (Tancik et al. 2020): a fixed, seeded frequency matrix; its scale sets
            # the finest detail v can represent easily, i.e. acts as a smoothness prior on the model.
            rng = np.random.default_rng(seed + 7919)
            self.fourier = tf.constant(rng.normal(0.0, fourier_scale, (2, fourier_features)).astype(np.float32))
            inputs = 2 * fourier_features + 2
        self.mlp = MLP(inputs, layers, units, activation, seed, "v_mlp", self.bound.start_bias(1.0))

    def __call__(self, xr: tf.Tensor) -> tf.Tensor:
        features = xr
        if self.fourier is not None:
            angles = (math.pi * xr) @ self.fourier
            features = tf.concat([xr, tf.sin(angles), tf.cos(angles)], axis=1)
        return self.bound(self.mlp(features))[:, 0]


class TauNetwork(tf.Module):
    """tau_hat(X_s, X_r): nondimensional traveltime factor for source/receiver pairs (n, 2), (n, 2) -> (n,)."""

    def __init__(self, layers: int, units: int, activation: str, seed: int, v_min_hat: float,
                 v_max_hat: float) -> None:
        super().__init__(name="tau")
        self.bound = BoundedOutput(1.0 / v_max_hat, 1.0 / v_min_hat)
        self.mlp = MLP(4, layers, units, activation, seed + 1, "tau_mlp", self.bound.start_bias(1.0))

    def __call__(self, xs: tf.Tensor, xr: tf.Tensor) -> tf.Tensor:
        return self.bound(self.mlp(tf.concat([xs, xr], axis=1)))[:, 0]
