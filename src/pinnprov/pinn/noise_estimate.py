"""The pick noise a data set shows by itself, for users who know no noise level (issue 12).

Two estimates, the first that applies:
- "repeated": pairs picked twice, as the same (source, receiver) or swapped (reciprocity: a first arrival's
  time does not depend on which end fired). Their difference carries the noise of two picks and nothing of
  the model, so sigma = sqrt(mean(d^2) / 2), from the median of d^2 (robust to a mispick) scaled to the mean of
  a chi-square with one degree of freedom. Model-free: the estimate to trust when a survey has such pairs.
- "residual": the data RMS of the converged fit. It mixes the noise with what the fit cannot explain (too
  low when the networks fit noise, too high when the regularisation smooths away structure); on the tuning
  cases it came to 0.66-0.98 of the noise model's sigma.
The default run (stopping "converged", pinnprov/pinn/stopping.py) needs neither; the estimate is reported so a user
can compare it with their pick uncertainty, and pass `--noise-level` to stop by the discrepancy principle.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pinnprov.pinn.dataset import TraveltimeData

CHI2_1_MEDIAN = 0.454936  # median of a chi-square variable with one degree of freedom
MIN_PAIRS = 5  # fewer repeated pairs than this say too little about sigma


@dataclass(frozen=True)
class NoiseEstimate:
    sigma_s: float
    method: str  # "repeated" or "residual"
    pairs: int = 0  # repeated pairs used (method "repeated")

    def describe(self) -> str:
        source = f"{self.pairs} repeated or reciprocal pairs" if self.method == "repeated" else "converged fit"
        return f"{self.sigma_s * 1e3:.4f} ms ({source})"


def repeated_pairs(data: TraveltimeData, tolerance_m: float = 1e-6) -> np.ndarray:
    """(k, 2) indices of picks of the same ray: same (source, receiver) or the two swapped; each pick used once."""
    def key(a: np.ndarray, b: np.ndarray) -> tuple[int, ...]:
        first, second = sorted((tuple(np.rint(a / tolerance_m).astype(np.int64)),
                                tuple(np.rint(b / tolerance_m).astype(np.int64))))
        return (*first, *second)

    waiting: dict[tuple[int, ...], int] = {}
    pairs = []
    for index in range(data.picks):
        ray = key(data.sources[index], data.receivers[index])
        if ray in waiting:
            pairs.append((waiting.pop(ray), index))
        else:
            waiting[ray] = index
    return np.asarray(pairs, dtype=np.int64).reshape(-1, 2)


def from_repeated_pairs(data: TraveltimeData) -> NoiseEstimate | None:
    """sigma from picks of the same ray, or None when the data have fewer than MIN_PAIRS of them."""
    pairs = repeated_pairs(data)
    if len(pairs) < MIN_PAIRS:
        return None
    differences = data.traveltimes[pairs[:, 0]] - data.traveltimes[pairs[:, 1]]
    # d = e1 - e2 ~ N(0, 2 sigma^2): d^2 / (2 sigma^2) is chi-square(1)
    sigma = float(np.sqrt(np.median(differences**2) / CHI2_1_MEDIAN / 2))
    return NoiseEstimate(sigma, "repeated", len(pairs))


def estimate(data: TraveltimeData, converged_data_rms_s: float | None) -> NoiseEstimate | None:
    """The best estimate available: repeated pairs if any, else the converged fit's misfit, else None."""
    repeated = from_repeated_pairs(data)
    if repeated is not None:
        return repeated
    if converged_data_rms_s is not None and np.isfinite(converged_data_rms_s):
        return NoiseEstimate(float(converged_data_rms_s), "residual")
    return None
