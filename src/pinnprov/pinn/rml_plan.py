"""How an RML ensemble of N runs is trained: one unperturbed run, then N - 1 perturbed members warm-started from it.

Why this shape (randomize-then-optimize from the MAP point, Bardsley et al. 2014): a member's perturbed problem has
its minimum near the unperturbed one's, so starting there and optimising with a smaller, quickly annealed learning
rate reaches it in a fraction of a full run's steps; the ensemble costs one run plus N - 1 short ones instead of N
full runs. A member runs a fixed number of steps (no stopping rule): a rule that watches the loss stops a warm-started
member on the plateau of its first learning rate, before it has annealed, and its model is then noisier than
the run it started from (seen on the tuning cases: members stopped after 3,900 steps, R² 0.05-0.5 below the
unperturbed run). The unperturbed run comes first for a second reason: when the user states no pick noise and the
picks have no repeated pairs, its converged data misfit is the noise estimate the members perturb their picks with
(pinnprov/pinn/noise_estimate.py). It is also a member: the ensemble's mean and spread include it.

The defaults were chosen on the model suite's tuning cases only (docs/results/uncertainty.md).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from pinnprov.pinn.config import TrainConfig
from pinnprov.pinn.dataset import TraveltimeData
from pinnprov.pinn.noise_estimate import from_repeated_pairs

MAX_MEMBERS = 64


@dataclass(frozen=True)
class RmlPlan:
    """The sizes of an RML ensemble's draws and how its members train (see pinnprov/pinn/perturbation.py)."""

    members: int
    prior: float = 0.02  # std of the background's random field, a share of v0 (0.1 and 0.03 tried: see the docs)
    prior_length: float = 0.3  # its correlation length, a share of L
    prior_weight: float = 1.0  # log-std of the prior weight's factor
    member_lr: float = 1e-3  # a member's initial learning rate (the unperturbed run starts at the config's)
    member_decay_rate: float = 0.6  # per decay period of the config: a member anneals within its few steps
    member_epochs: int = 8000  # a member's steps: fixed (no stopping rule), so it ends annealed and its cost is known

    def __post_init__(self) -> None:
        if not 2 <= self.members <= MAX_MEMBERS:
            raise ValueError(f"ensemble: members must be in [2, {MAX_MEMBERS}], got {self.members}")
        for name in ("prior", "prior_weight"):
            if not 0 <= getattr(self, name) < float("inf"):
                raise ValueError(f"ensemble: {name} must be finite and >= 0, got {getattr(self, name)!r}")
        if not self.prior_length > 0:
            raise ValueError(f"ensemble: prior_length must be > 0, got {self.prior_length!r}")
        if not 0 < self.member_lr < 10:
            raise ValueError(f"ensemble: member_lr must be in (0, 10), got {self.member_lr!r}")
        if not 0 < self.member_decay_rate <= 1:
            raise ValueError(f"ensemble: member_decay_rate must be in (0, 1], got {self.member_decay_rate!r}")
        if self.member_epochs < 1:
            raise ValueError(f"ensemble: member_epochs must be at least 1, got {self.member_epochs!r}")

    def member_seeds(self, base_seed: int) -> list[int]:
        """The perturbation seed of members 1 .. N-1 (member 0 is the unperturbed run): distinct, never 0."""
        return [base_seed * MAX_MEMBERS + k for k in range(1, self.members)] if base_seed > 0 else \
            [k for k in range(1, self.members)]

    def member_config(self, base: TrainConfig, k: int, picks_sigma_s: float) -> TrainConfig:
        """Member k (1 .. N-1) of an ensemble around `base`: its draws, its learning rate and step bound."""
        if not 1 <= k < self.members:
            raise ValueError(f"ensemble: member {k} is not one of 1 .. {self.members - 1}")
        if not picks_sigma_s >= 0:
            raise ValueError(f"ensemble: pick noise must be >= 0 s, got {picks_sigma_s!r}")
        return base.replace(
            seed=base.seed + k, perturb_seed=self.member_seeds(base.seed)[k - 1], perturb_picks_s=float(picks_sigma_s),
            perturb_prior=self.prior, perturb_prior_length=self.prior_length, perturb_prior_weight=self.prior_weight,
            lr_initial=self.member_lr, lr_decay_rate=self.member_decay_rate, stopping="none",
            epochs=min(base.epochs, self.member_epochs),
        )


def picks_sigma(config: TrainConfig, data: TraveltimeData, pilot_metrics: Mapping[str, float]) -> tuple[float, str]:
    """The pick noise the members draw from, and where it came from: stated, repeated pairs, or the unperturbed fit.

    `pilot_metrics` are the unperturbed run's final metrics: its `noise_estimate_s` when it converged, else its data
    RMS (a fit stopped early misfits by more than the noise, so the members' spread then errs on the wide side).
    """
    if config.noise_level_s > 0:
        return config.noise_level_s, "stated (--noise-level)"
    repeated = from_repeated_pairs(data)
    if repeated is not None:
        return repeated.sigma_s, f"{repeated.pairs} repeated or reciprocal pairs"
    for key, source in (("noise_estimate_s", "the unperturbed run's converged misfit"),
                        ("data_rms_s", "the unperturbed run's final misfit (not converged)")):
        value = pilot_metrics.get(key)
        if value is not None and math.isfinite(value) and value > 0:
            return float(value), source
    raise ValueError("ensemble: no pick noise to perturb with: state it with --noise-level")
