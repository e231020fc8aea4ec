"""One member of a randomized-maximum-likelihood (RML) ensemble: the picks and the prior it is trained on.

Why RML: training the same problem from N seeds gives members that agree on the answer the prior chooses, so their
spread says where the optimisation is fragile, not what the data leave open (on the model suite the seed spread was
one to two orders of magnitude smaller than the error). RML (Oliver, He and Reynolds 1996; "randomize then optimize",
Bardsley et al. 2014) draws each member's *problem* instead: the member fits the picks plus a draw of their noise and
a prior moved by a draw of its own uncertainty. For a linear-Gaussian problem the members are then exact samples of
the posterior; for the eikonal equation they are the standard approximation, and where the data constrain v the
members agree while where they do not the members follow their own prior draw, so the spread grows where the data
say nothing.

The prior here is the minimum-support functional towards a background r (pinnprov/pinn/regularizers.py). A member
moves it three ways, each seeded by `perturb_seed` (0 = an ordinary, unperturbed run):
- picks: t_i + sigma e_i, e_i ~ N(0, 1), sigma the pick noise (stated or estimated; pinnprov/pinn/noise_estimate.py);
- background: r becomes r + delta(x), delta a smooth Gaussian random field of standard deviation `perturb_prior`
  (a share of the velocity scale v0) and correlation length `perturb_prior_length` (a share of the half-width L of
  the domain), drawn as random Fourier features (Rahimi and Recht 2007): a few hundred cosines approximate a field
  with a squared-exponential covariance, cheap inside the compiled step, and sized by the user's domain;
- strength: the prior's weight times exp(s g), g ~ N(0, 1), s = `perturb_prior_weight`: how strongly anomalies are
  kept compact is itself uncertain, and it is what decides a disc's contrast where rays cannot.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

FEATURES = 256  # cosines of the random field: its variance is exact, its covariance within ~1/sqrt(FEATURES)
_STREAM = {"picks": 1, "field": 2, "weight": 3}  # independent random streams of one member


@dataclass(frozen=True)
class Perturbation:
    """What one RML member changes: a seed (0 = nothing) and the sizes of its draws."""

    seed: int = 0
    picks_s: float = 0.0  # std of the noise added to every pick (s)
    prior: float = 0.0  # std of the background's random field, a share of the velocity scale
    prior_length: float = 0.3  # its correlation length, a share of the domain's half-width L
    prior_weight: float = 0.0  # log-std of the prior weight's factor

    @property
    def active(self) -> bool:
        return self.seed != 0 and (self.picks_s > 0 or self.prior > 0 or self.prior_weight > 0)

    def rng(self, stream: str) -> np.random.Generator:
        return np.random.default_rng([self.seed, _STREAM[stream]])

    def perturbed_times(self, times_s: np.ndarray) -> np.ndarray:
        """The picks this member fits: t + sigma e (unchanged when inactive or sigma is 0)."""
        times_s = np.asarray(times_s, np.float64)
        if not self.active or self.picks_s <= 0:
            return times_s
        return times_s + self.picks_s * self.rng("picks").standard_normal(times_s.shape)

    def weight_factor(self) -> float:
        """The factor on the prior's weight: exp(s g)."""
        if not self.active or self.prior_weight <= 0:
            return 1.0
        return float(math.exp(self.prior_weight * self.rng("weight").standard_normal()))

    def field_features(self) -> tuple[np.ndarray, np.ndarray, float] | None:
        """(frequencies (2, F), phases (F,), amplitude) of delta(X) = amplitude sum_j cos(X w_j + b_j), X in units of L.

        With w ~ N(0, I / l^2), b ~ U(0, 2 pi) and amplitude prior * sqrt(2 / F), delta has mean 0, variance prior^2
        and covariance prior^2 exp(-|X - X'|^2 / (2 l^2)) as F grows. None when the background is not perturbed.
        """
        if not self.active or self.prior <= 0:
            return None
        rng = self.rng("field")
        frequencies = rng.standard_normal((2, FEATURES)) / self.prior_length
        phases = rng.uniform(0.0, 2.0 * math.pi, FEATURES)
        return frequencies, phases, self.prior * math.sqrt(2.0 / FEATURES)

    def field(self, points: np.ndarray) -> np.ndarray:
        """delta at nondimensional points (n, 2), NumPy (tests, figures); zeros when the background is not perturbed."""
        features = self.field_features()
        points = np.asarray(points, np.float64)
        if features is None:
            return np.zeros(len(points))
        frequencies, phases, amplitude = features
        values: np.ndarray = amplitude * np.cos(points @ frequencies + phases).sum(axis=1)
        return values
