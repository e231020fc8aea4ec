"""Every knob of a training run in one validated dataclass.

Why one dataclass: the CLI, config files, benchmarks and tests all build the same object, validation lives in
one place (a bad value raises ValueError naming the key), and `hyperparameters()` gives the flat dict of scalars
that provenance records at run start, as the one schema of fields (pinnprov/core/fields.py) names them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from pinnprov.core.fields import HYPERPARAMETERS
from pinnprov.pinn.observer import HyperparameterValue
from pinnprov.pinn.perturbation import Perturbation
from pinnprov.pinn.stopping import DEFAULT_HOLDOUT_FRACTION
from pinnprov.pinn.stopping import RULES as STOPPING_RULES

SOURCE_SAMPLING = ("sources", "interpolated", "domain")
COLLOCATION_REDRAW = ("step", "chunk", "never")
# config keys of earlier versions, mapped to today's key and value
_LEGACY_KEYS = {"collocation_resample": ("collocation_redraw", {True: "chunk", False: "never"})}


@dataclass(frozen=True)
class TrainConfig:
    """Hyperparameters of one run. Defaults were chosen on the model suite's tuning set (pinnprov/pinn/model_suite.py).

    Chosen by R^2 on the four tuning cases only (README "Accuracy beyond the benchmark"; the test set and the
    paper's benchmark are reported, never tuned on), each run stopping on its data alone: minimum-support
    prior on v with weight 5e-4 (2e-3, the earlier benchmark-tuned weight, erodes layered and smooth models as
    training goes on; 1e-3 and 2.5e-4 trade disc against layered cases), Adam from 3e-3 annealed by 0.9 per
    1000 steps (with 0.99 the answer kept moving: R^2 0.17-0.68 along one run), data weight 10, 1000
    collocation points drawn afresh at every step, convergence as the stopping rule, XLA, one thread.
    Smoothness and total-variation priors fit layered models best but lost about 0.25 of R^2 on discs.
    """

    # optimisation
    optimizer: str = "adam"
    activation: str = "tanh"
    velocity_activation: str = ""  # "" = same as `activation`
    epochs: int = 60000  # an upper bound: the converged rule stops the tuning cases at 24k-40k
    lr_schedule: str = "exponential_decay"
    lr_initial: float = 3e-3
    lr_decay_rate: float = 0.9  # annealed: x0.01 by 44k steps, so the optimisation settles instead of drifting
    lr_decay_steps: int = 1000
    lr_staircase: bool = False
    lr_report_every: int = 0  # schedule Adapted events every N steps; 0 = once per decay period
    lbfgs_steps: int = 0  # optional L-BFGS phase after the first optimiser
    lbfgs_memory: int = 20
    # loss
    weight_residual: float = 1.0
    weight_boundary: float = 1.0
    weight_data: float = 10.0
    regularizer: str = "support"  # prior on v, see pinn.regularizers; reported in EpochEnded.extra["regularizer"]
    weight_regularizer: float = 5e-4
    regularizer_beta: float = 0.1  # scale of the support / gradient-support / tv regularisers (nondimensional)
    data_loss: str = "relative"  # "relative": ((phi - t) / t)^2 ; "absolute": ((phi - t) / T)^2
    residual_form: str = "hamiltonian"  # see pinn.fee.RESIDUAL_FORMS
    # networks
    tau_layers: int = 8
    tau_units: int = 20
    velocity_layers: int = 8
    velocity_units: int = 20
    velocity_fourier_features: int = 0  # random Fourier features of xr for v (0 = raw coordinates)
    velocity_fourier_scale: float = 1.0
    velocity_min_m_s: float = 0.0  # output bounds of v; 0 = derived from the data's apparent velocities
    velocity_max_m_s: float = 0.0
    # collocation
    collocation_count: int = 1000
    collocation_redraw: str = "step"  # fresh collocation points every step, every chunk, or never (see sampling.py)
    source_sampling: str = "sources"  # collocation sources: shot points, between shots, or the whole domain
    reciprocity: bool = False  # also train on every pick with source and receiver swapped (phi is symmetric)
    ray_fraction: float = 0.0  # share of collocation receivers drawn near the straight rays of the picks
    ray_width: float = 0.05  # std of their offset from the ray (nondimensional, i.e. times L)
    boundary_points: int = 200  # extra points x where tau(x, x) = 1/v(x) is enforced besides the sources
    # stopping (data only: the true model never chooses epochs)
    stopping: str = "converged"  # needs no noise level; see pinnprov/pinn/stopping.py for the others
    noise_level_s: float = 0.0  # RMS pick uncertainty, sqrt(mean(sigma_i^2)); 0 = not known
    discrepancy_factor: float = 1.0
    holdout_fraction: float = 0.0  # 0 = DEFAULT_HOLDOUT_FRACTION when stopping is holdout, else none held out
    holdout_patience: int = 2000
    convergence_window: int = 2000  # epochs per window of the converged rule
    convergence_tolerance: float = 0.01  # stop when the last window's median loss is < 1 % below the one before
    time_budget_s: float = 900.0  # stop after this many wall seconds (0 = no limit)
    # randomized maximum likelihood: one ensemble member's draw (pinnprov/pinn/perturbation.py); seed 0 = none
    perturb_seed: int = 0
    perturb_picks_s: float = 0.0  # std of the noise added to every pick (s)
    perturb_prior: float = 0.0  # std of the random field added to the prior's background (share of v0)
    perturb_prior_length: float = 0.3  # its correlation length (share of the domain's half-width L)
    perturb_prior_weight: float = 0.0  # log-std of the factor on the prior's weight
    # execution
    seed: int = 1234
    steps_per_call: int = 100  # K optimiser steps per compiled call; observers/steering polled in between
    jit_compile: bool = True  # XLA: about 1.35x the steps/s of the plain graph for these small networks
    threads: int = 1  # TensorFlow intra/inter-op threads (one is fastest for small nets); 0 = TensorFlow's default
    experiment: str = "default"
    run_name: str = ""  # "" = "<optimizer>-<activation>-<yyyymmdd-hhmmss>-<4 hex>"

    def __post_init__(self) -> None:
        _validate(self)

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> TrainConfig:
        """Build from a dict (config file, JSON); an unknown key or a value of the wrong type is a ValueError."""
        known = {f.name: f for f in fields(cls)}
        kwargs: dict[str, Any] = {}
        for key, value in values.items():
            name = str(key).replace("-", "_")
            if name in _LEGACY_KEYS and isinstance(value, bool):
                name, value = _LEGACY_KEYS[name][0], _LEGACY_KEYS[name][1][value]
            if name not in known:
                raise ValueError(f"unknown config key {key!r}")
            kwargs[name] = _coerce(name, known[name].type, value)
        return cls(**kwargs)

    def replace(self, **changes: Any) -> TrainConfig:
        return dataclasses.replace(self, **changes)

    @property
    def held_out_fraction(self) -> float:
        """The share of picks held out: the configured one, or the default one when the hold-out rule needs it."""
        if self.stopping == "holdout" and self.holdout_fraction == 0:
            return DEFAULT_HOLDOUT_FRACTION
        return self.holdout_fraction

    @property
    def perturbation(self) -> Perturbation:
        return Perturbation(self.perturb_seed, self.perturb_picks_s, self.perturb_prior, self.perturb_prior_length,
                            self.perturb_prior_weight)

    @property
    def velocity_activation_name(self) -> str:
        return self.velocity_activation or self.activation

    def hyperparameters(self) -> dict[str, HyperparameterValue]:
        """Flat dict of scalars keyed by the recorded names of pinnprov/core/fields.py (the `pinn.hp.*` suffixes)."""
        return {hp.name: getattr(self, hp.key) for hp in HYPERPARAMETERS}


def _coerce(name: str, annotation: object, value: object) -> object:
    """Accept the obvious spellings from YAML/JSON (ints for floats); reject anything else naming the key."""
    kind = str(annotation)
    if kind == "bool":
        if isinstance(value, bool):
            return value
        raise ValueError(f"{name}: expected true or false, got {value!r}")
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise ValueError(f"{name}: expected an integer, got {value!r}")
        return value
    if kind == "float":
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"{name}: expected a number, got {value!r}")
        return float(value)
    if kind == "str":
        if not isinstance(value, str):
            raise ValueError(f"{name}: expected a string, got {value!r}")
        return value
    return value


def _validate(config: TrainConfig) -> None:
    from pinnprov.pinn.plugins import ACTIVATIONS, OPTIMIZERS, REGULARIZERS, RESIDUAL_FORMS, SCHEDULES

    def require(condition: bool, key: str, message: str) -> None:
        if not condition:
            raise ValueError(f"{key}: {message} (got {getattr(config, key)!r})")

    for f in fields(config):
        value = getattr(config, f.name)
        if isinstance(value, float) and value != value:  # NaN sneaks past every comparison below
            raise ValueError(f"{f.name}: must be a number, got NaN")
    ACTIVATIONS.check(config.activation)
    if config.velocity_activation:
        ACTIVATIONS.check(config.velocity_activation)
    OPTIMIZERS.check(config.optimizer)
    SCHEDULES.check(config.lr_schedule)
    require(config.epochs >= 1, "epochs", "must be at least 1")
    require(0 < config.lr_initial < 10, "lr_initial", "must be in (0, 10)")
    require(0 < config.lr_decay_rate <= 1, "lr_decay_rate", "must be in (0, 1]")
    require(config.lr_decay_steps >= 1, "lr_decay_steps", "must be at least 1")
    require(config.lr_report_every >= 0, "lr_report_every", "must be >= 0")
    require(config.lbfgs_steps >= 0, "lbfgs_steps", "must be >= 0")
    require(1 <= config.lbfgs_memory <= 200, "lbfgs_memory", "must be in [1, 200]")
    REGULARIZERS.check(config.regularizer)
    require(config.regularizer_beta > 0, "regularizer_beta", "must be > 0")
    for key in ("weight_residual", "weight_boundary", "weight_data", "weight_regularizer"):
        require(getattr(config, key) >= 0 and getattr(config, key) < float("inf"), key, "must be finite and >= 0")
    require(config.data_loss in ("relative", "absolute"), "data_loss", "must be relative or absolute")
    RESIDUAL_FORMS.check(config.residual_form)
    for key in ("tau_layers", "velocity_layers"):
        require(1 <= getattr(config, key) <= 64, key, "must be in [1, 64]")
    for key in ("tau_units", "velocity_units"):
        require(1 <= getattr(config, key) <= 4096, key, "must be in [1, 4096]")
    require(0 <= config.velocity_fourier_features <= 1024, "velocity_fourier_features", "must be in [0, 1024]")
    require(config.velocity_fourier_scale > 0, "velocity_fourier_scale", "must be > 0")
    require(config.velocity_min_m_s >= 0, "velocity_min_m_s", "must be >= 0")
    require(config.velocity_max_m_s >= 0, "velocity_max_m_s", "must be >= 0")
    if config.velocity_min_m_s and config.velocity_max_m_s:
        require(config.velocity_max_m_s > config.velocity_min_m_s, "velocity_max_m_s", "must exceed velocity_min_m_s")
    require(config.collocation_count >= 1, "collocation_count", "must be at least 1")
    require(config.collocation_redraw in COLLOCATION_REDRAW, "collocation_redraw",
            f"must be one of {COLLOCATION_REDRAW}")
    require(config.source_sampling in SOURCE_SAMPLING, "source_sampling", f"must be one of {SOURCE_SAMPLING}")
    require(0 <= config.ray_fraction <= 1, "ray_fraction", "must be in [0, 1]")
    require(config.ray_width > 0, "ray_width", "must be > 0")
    require(config.boundary_points >= 0, "boundary_points", "must be >= 0")
    require(config.stopping in STOPPING_RULES, "stopping", f"must be one of {STOPPING_RULES}")
    require(config.noise_level_s >= 0, "noise_level_s", "must be >= 0")
    if config.stopping == "discrepancy":
        require(config.noise_level_s > 0, "noise_level_s",
                "the discrepancy principle needs the picks' noise level (--noise-level, seconds)")
    require(config.discrepancy_factor > 0, "discrepancy_factor", "must be > 0")
    require(0 <= config.holdout_fraction < 1, "holdout_fraction", "must be in [0, 1)")
    require(config.holdout_patience >= 1, "holdout_patience", "must be at least 1")
    require(config.convergence_window >= config.steps_per_call, "convergence_window",
            "must be at least steps_per_call")
    require(0 < config.convergence_tolerance < 1, "convergence_tolerance", "must be in (0, 1)")
    require(config.time_budget_s >= 0, "time_budget_s", "must be >= 0")
    require(config.steps_per_call >= 1, "steps_per_call", "must be at least 1")
    require(0 <= config.threads <= 1024, "threads", "must be in [0, 1024]")
    require(config.perturb_seed >= 0, "perturb_seed", "must be >= 0 (0 = an unperturbed run)")
    for key in ("perturb_picks_s", "perturb_prior", "perturb_prior_weight"):
        require(0 <= getattr(config, key) < float("inf"), key, "must be finite and >= 0")
    require(config.perturb_prior_length > 0, "perturb_prior_length", "must be > 0")
    require(bool(config.experiment.strip()), "experiment", "must not be empty")
