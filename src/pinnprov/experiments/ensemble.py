"""Ensemble statistics of velocity grids, and how well their spread predicts the error (NumPy only).

Why an ensemble: one PINN run gives one velocity model and no word on how far to trust each cell. Training the
same configuration from N seeds and taking the per-cell mean and standard deviation is the cheapest honest
uncertainty estimate there is (a "deep ensemble"): where the members agree the data constrain the model, where they
disagree they do not. Whether that spread *means* anything is measured, not assumed: `uncertainty_skill` is the
Spearman rank correlation between the std and the actual error on cases whose true model is known (> 0: the std
ranks the cells by how wrong they are; about 0: the std says nothing; < 0: it points the wrong way).

The interval: a cell's truth is treated as one more draw from the members' distribution, so the two-sided
prediction interval of level p is mean +- c t_{(1+p)/2, N-1} sqrt(1 + 1/N) std (Student's t: with 8 members the
std is itself uncertain, and a new draw scatters around the *estimated* mean). c = 1 is that interval as the members
give it; `SPREAD_INFLATION` is the factor chosen on the tuning cases so that the intervals cover what they claim
there (a recalibration, as forecast ensembles are recalibrated); it is reported on the test cases it never saw.
`coverage` is the share of cells whose truth lies inside.

All functions are pure NumPy, so the benchmark (bench/accuracy.py) and the `pinnprov train --ensemble` driver
compute the same numbers, and neither needs TensorFlow or SciPy.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from statistics import NormalDist

import numpy as np

__all__ = ["INTERVAL_LEVEL", "SPREAD_INFLATION", "coverage", "ensemble_stats", "interval", "rank_correlation",
           "ranks", "student_t_quantile", "uncertainty_skill"]

INTERVAL_LEVEL = 0.9
SPREAD_INFLATION = 2.6  # c: the median over the 6 tuning cases of the c that covers 90 % there (1.5-4.9)


def ensemble_stats(grids: Sequence[np.ndarray] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mean, std) per cell of N >= 2 equally shaped grids (a sequence, or one array stacked on axis 0).

    The std is the sample standard deviation (ddof = 1): with the few members an ensemble affords (2-10) the
    population formula would understate the spread by a factor sqrt((N-1)/N). A cell that is not finite in some
    member is NaN in both results: a diverged member is not silently averaged away.
    """
    stack = np.asarray(grids, dtype=np.float64) if not isinstance(grids, np.ndarray) else grids.astype(np.float64)
    if stack.ndim < 2:
        raise ValueError(f"grids: expected N grids of equal shape, got an array of shape {stack.shape}")
    if stack.shape[0] < 2:
        raise ValueError(f"grids: an ensemble needs at least 2 members, got {stack.shape[0]}")
    if stack[0].size == 0:
        raise ValueError("grids: the grids are empty")
    finite = np.all(np.isfinite(stack), axis=0)
    mean = np.where(finite, np.mean(np.where(np.isfinite(stack), stack, 0.0), axis=0), np.nan)
    std = np.where(finite, np.std(np.where(np.isfinite(stack), stack, 0.0), axis=0, ddof=1), np.nan)
    return mean, std


def uncertainty_skill(std: np.ndarray, abs_error: np.ndarray) -> float:
    """Spearman rank correlation between the per-cell std and the per-cell |prediction - truth|.

    Both arrays have the same shape (any); cells where either is not finite are left out. Returns NaN when the
    correlation is undefined (fewer than 2 usable cells, or one side constant, e.g. a std of zero everywhere).
    """
    std, abs_error = np.asarray(std, dtype=np.float64), np.asarray(abs_error, dtype=np.float64)
    if std.shape != abs_error.shape:
        raise ValueError(f"uncertainty_skill: shapes differ: std {std.shape} vs abs_error {abs_error.shape}")
    return rank_correlation(std.ravel(), abs_error.ravel())


def rank_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rho of two 1-D samples: Pearson's correlation of their ranks (ties get their average rank)."""
    a, b = np.asarray(a, dtype=np.float64).ravel(), np.asarray(b, dtype=np.float64).ravel()
    if a.shape != b.shape:
        raise ValueError(f"rank_correlation: lengths differ: {a.size} vs {b.size}")
    keep = np.isfinite(a) & np.isfinite(b)
    if np.count_nonzero(keep) < 2:
        return float("nan")
    ra, rb = ranks(a[keep]), ranks(b[keep])
    ra, rb = ra - ra.mean(), rb - rb.mean()
    scale = float(np.sqrt(np.sum(ra * ra) * np.sum(rb * rb)))
    if scale == 0.0:  # a constant side: no ordering to agree with
        return float("nan")
    return float(np.clip(np.sum(ra * rb) / scale, -1.0, 1.0))


def ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks of a 1-D array, tied values sharing the mean of the ranks they span (scipy's 'average')."""
    values = np.asarray(values, dtype=np.float64).ravel()
    order = np.argsort(values, kind="mergesort")
    ordered = values[order]
    starts_group = np.concatenate(([True], ordered[1:] != ordered[:-1]))
    group = np.cumsum(starts_group) - 1
    starts = np.flatnonzero(starts_group)
    ends = np.append(starts[1:], values.size)  # exclusive
    average = (starts + ends - 1) / 2.0 + 1.0
    result = np.empty(values.size, dtype=np.float64)
    result[order] = average[group]
    return result


def student_t_quantile(probability: float, dof: int) -> float:
    """Quantile of Student's t with `dof` degrees of freedom (Hill's 1970 expansion about the normal quantile).

    Within 0.004 of the exact value for dof >= 3 up to probability 0.975 (a 95 % two-sided interval) and within 0.01
    for dof >= 5 up to 0.995; dof 1 and 2 have closed forms. Pure Python, so this module needs no SciPy.
    """
    if not 0 < probability < 1:
        raise ValueError(f"probability must be in (0, 1), got {probability!r}")
    if dof < 1:
        raise ValueError(f"dof must be at least 1, got {dof!r}")
    if dof == 1:
        return math.tan(math.pi * (probability - 0.5))
    if dof == 2:
        a = 4 * probability * (1 - probability)
        return (2 * probability - 1) * math.sqrt(2 / a)
    z = NormalDist().inv_cdf(probability)
    n = float(dof)
    g1 = (z**3 + z) / 4
    g2 = (5 * z**5 + 16 * z**3 + 3 * z) / 96
    g3 = (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / 384
    g4 = (79 * z**9 + 776 * z**7 + 1482 * z**5 - 1920 * z**3 - 945 * z) / 92160
    return z + g1 / n + g2 / n**2 + g3 / n**3 + g4 / n**4


def interval(mean: np.ndarray, std: np.ndarray, members: int, level: float = INTERVAL_LEVEL,
             inflation: float = SPREAD_INFLATION) -> tuple[np.ndarray, np.ndarray]:
    """(low, high) per cell: mean -+ inflation t_{(1+level)/2, members-1} sqrt(1 + 1/members) std."""
    if members < 2:
        raise ValueError(f"interval: an ensemble needs at least 2 members, got {members}")
    if not 0 < level < 1:
        raise ValueError(f"interval: level must be in (0, 1), got {level!r}")
    if not inflation > 0:
        raise ValueError(f"interval: inflation must be > 0, got {inflation!r}")
    half = inflation * student_t_quantile((1 + level) / 2, members - 1) * math.sqrt(1 + 1 / members)
    mean, std = np.asarray(mean, np.float64), np.asarray(std, np.float64)
    return mean - half * std, mean + half * std


def coverage(low: np.ndarray, high: np.ndarray, truth: np.ndarray) -> float:
    """Share of cells whose truth lies in [low, high] (cells not finite on any side left out; NaN if none is)."""
    low, high, truth = (np.asarray(a, np.float64) for a in (low, high, truth))
    if not low.shape == high.shape == truth.shape:
        raise ValueError(f"coverage: shapes differ: {low.shape}, {high.shape}, {truth.shape}")
    keep = np.isfinite(low) & np.isfinite(high) & np.isfinite(truth)
    if not keep.any():
        return float("nan")
    return float(np.mean((truth[keep] >= low[keep]) & (truth[keep] <= high[keep])))
