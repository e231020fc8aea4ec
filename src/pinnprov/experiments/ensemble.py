"""Ensemble statistics of velocity grids, and how well their spread predicts the error (NumPy only).

Why an ensemble: one PINN run gives one velocity model and no word on how far to trust each cell. Training the
same configuration from N seeds and taking the per-cell mean and standard deviation is the cheapest honest
uncertainty estimate there is (a "deep ensemble"): where the members agree the data constrain the model, where they
disagree they do not. Whether that spread *means* anything is measured, not assumed: `uncertainty_skill` is the
Spearman rank correlation between the std and the actual error on cases whose true model is known (> 0: the std
ranks the cells by how wrong they are; about 0: the std says nothing; < 0: it points the wrong way).

Both functions are pure NumPy, so the benchmark (bench/accuracy.py) and the `pinnprov train --ensemble` driver
compute the same numbers, and neither needs TensorFlow or SciPy.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["ensemble_stats", "rank_correlation", "ranks", "uncertainty_skill"]


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
