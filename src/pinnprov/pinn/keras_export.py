"""The trained networks as Keras models (`.keras`): files a user can load with `keras.saving.load_model` alone.

Why Keras and physical units: the trained tau network is a traveltime surrogate and v a velocity model that
someone else may reuse without pinnprov. So each model takes coordinates in metres (the nondimensional scaling
is its first layer) and the velocity model returns m/s (the bounded output and v0 are its last layers):
  velocity.keras: (n, 2) [x, z] in m -> (n, 1) v in m/s
  tau.keras:      (n, 4) [xs, zs, xr, zr] in m -> (n, 1) tau_hat, the factor of the paper's Eq. (3)
                  (nondimensional; times |xr - xs| / v0 it is the traveltime)
The models are plain Dense stacks with the networks' own weights (copied, not retrained), so they agree with
the PINN to float32 round-off (tests/pinn/test_products.py). Networks Keras cannot express without pinnprov
(random Fourier features, the adaptive tanh's trainable slope) are saved as `.weights.npz` instead.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from pinnprov.pinn.networks import MLP
    from pinnprov.pinn.problem import Problem

_KERAS_ACTIVATIONS = {"tanh": "tanh", "sigmoid": "sigmoid", "relu": "relu", "swish": "silu", "sine": "sine"}


def _sine() -> Any:
    import keras

    @keras.saving.register_keras_serializable(package="pinnprov", name="sine")
    def sine(x: Any) -> Any:
        return keras.ops.sin(x)

    return sine


def _stack(mlp: MLP, inputs: int, activation: str, scale: np.ndarray, offset: np.ndarray, out_scale: float,
           out_offset: float, name: str) -> Any:
    import keras

    act: Any = _sine() if activation == "sine" else _KERAS_ACTIVATIONS[activation]
    x = inp = keras.Input((inputs,), name="points_m")
    x = keras.layers.Rescaling(scale.astype(np.float32), offset.astype(np.float32), name="nondimensional")(x)
    weights = [w.numpy() for w in mlp.weights]
    biases = [b.numpy() for b in mlp.biases]
    dense: list[tuple[Any, np.ndarray, np.ndarray]] = []
    for k, (w, b) in enumerate(zip(weights, biases, strict=True)):
        last = k == len(weights) - 1
        layer = keras.layers.Dense(w.shape[1], activation="sigmoid" if last else act, name=f"dense_{k}")
        x = layer(x)
        dense.append((layer, w, b))
    x = keras.layers.Rescaling(out_scale, out_offset, name="bounded_output")(x)
    model = keras.Model(inp, x, name=name)
    for layer, w, b in dense:
        layer.set_weights([w, b])
    return model


def exportable(problem: Problem) -> bool:
    """Whether both networks are plain Dense stacks Keras can hold (see the module docstring)."""
    config = problem.config
    return (config.activation in _KERAS_ACTIVATIONS and config.velocity_activation_name in _KERAS_ACTIVATIONS
            and not config.velocity_fourier_features)


def velocity_model(problem: Problem) -> Any:
    s = problem.scaling
    bound = problem.velocity.bound
    return _stack(problem.velocity.mlp, 2, problem.config.velocity_activation_name,
                  np.full(2, 1.0 / s.length_m), np.array([-s.centre_x, -s.centre_z]) / s.length_m,
                  s.velocity_m_s * (bound.upper - bound.lower), s.velocity_m_s * bound.lower, "velocity")


def tau_model(problem: Problem) -> Any:
    s = problem.scaling
    bound = problem.tau.bound
    centre = np.array([-s.centre_x, -s.centre_z, -s.centre_x, -s.centre_z]) / s.length_m
    return _stack(problem.tau.mlp, 4, problem.config.activation, np.full(4, 1.0 / s.length_m), centre,
                  bound.upper - bound.lower, bound.lower, "tau")


def save_networks(problem: Problem, directory: Path) -> list[tuple[str, Path]]:
    """Write tau and v into `directory`; returns (role, path) pairs."""
    from pinnprov.core.artifacts import ROLE_TAU_NETWORK, ROLE_VELOCITY_NETWORK

    directory.mkdir(parents=True, exist_ok=True)
    if not exportable(problem):
        written = []
        for role, network in ((ROLE_TAU_NETWORK, problem.tau), (ROLE_VELOCITY_NETWORK, problem.velocity)):
            path = directory / f"{network.name}.weights.npz"
            np.savez(path, **{f"{i}": v.numpy() for i, v in enumerate(network.variables)})
            written.append((role, path))
        return written
    tau_path, velocity_path = directory / "tau.keras", directory / "velocity.keras"
    tau_model(problem).save(tau_path)
    velocity_model(problem).save(velocity_path)
    return [(ROLE_TAU_NETWORK, tau_path), (ROLE_VELOCITY_NETWORK, velocity_path)]
