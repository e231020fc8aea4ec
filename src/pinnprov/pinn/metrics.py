"""Scores of a velocity model against a reference: R^2 and RMSE (numpy only, no TensorFlow)."""

from __future__ import annotations

import numpy as np


def r2(predicted: np.ndarray, true: np.ndarray) -> float:
    """Coefficient of determination 1 - SS_res / SS_tot over all cells (as in the paper's Figure 2)."""
    predicted, true = np.asarray(predicted, np.float64).ravel(), np.asarray(true, np.float64).ravel()
    if predicted.shape != true.shape:
        raise ValueError(f"r2: shapes differ: {predicted.shape} vs {true.shape}")
    total = np.sum((true - true.mean()) ** 2)
    if total == 0:
        raise ValueError("r2: the reference is constant, R^2 is undefined")
    return float(1.0 - np.sum((true - predicted) ** 2) / total)


def rmse(predicted: np.ndarray, true: np.ndarray) -> float:
    """Root-mean-square difference, in the inputs' unit."""
    predicted, true = np.asarray(predicted, np.float64).ravel(), np.asarray(true, np.float64).ravel()
    if predicted.shape != true.shape:
        raise ValueError(f"rmse: shapes differ: {predicted.shape} vs {true.shape}")
    return float(np.sqrt(np.mean((true - predicted) ** 2)))


def traveltime_rms(predicted_s: np.ndarray, observed_s: np.ndarray) -> float:
    """RMS traveltime misfit in seconds."""
    return rmse(predicted_s, observed_s)
