"""An ensemble's products: the members' grids combined, scored when the truth is known, written and drawn.

Each member is an ordinary `pinnprov train` run that wrote its folder (velocity_pinn.npy, grid_x.npy, grid_z.npy,
result.json). Here those grids become the per-cell mean and standard deviation (pinnprov/experiments/ensemble.py), the
ensemble's folder gets velocity_mean.npy, velocity_std.npy, the grid, Figure 2 with a std panel and
ensemble.json, and the numbers the store keeps about the ensemble (its summary) are computed once, here.

The true model (`pinnprov.pinn.scoring.true_model`) only scores: R² of every member and of the mean, and how well the
std ranks the cells by their actual error (Spearman). It never chooses anything.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pinnprov.experiments.ensemble import INTERVAL_LEVEL, SPREAD_INFLATION

USABLE = ("completed", "stopped")  # a member stopped by a rule or a user still wrote its model


class EnsembleError(ValueError):
    """The members' outputs cannot be combined (too few, or different grids)."""


@dataclass
class Member:
    """One member run as the ensemble sees it."""

    run_name: str
    seed: int
    status: str
    out: Path
    run_id: str = ""
    error: str = ""
    r2: float | None = None

    @property
    def usable(self) -> bool:
        return self.status in USABLE and (self.out / "velocity_pinn.npy").is_file()


@dataclass
class EnsembleResult:
    members: list[Member]
    grid_x: np.ndarray
    grid_z: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    truth: np.ndarray | None = None
    r2: float | None = None
    rmse_m_s: float | None = None
    skill: float | None = None  # Spearman(std, |mean - truth|)
    low: np.ndarray | None = None  # the 90 % interval (pinnprov/experiments/ensemble.py `interval`)
    high: np.ndarray | None = None
    coverage: float | None = None  # share of cells whose truth lies in it
    noise: tuple[float, str] | None = None  # (pick sigma, where it came from) of an RML ensemble
    baseline: Any = None
    files: dict[str, str] = field(default_factory=dict)  # file name -> sha256

    @property
    def used(self) -> list[Member]:
        return [member for member in self.members if member.usable]

    def grids(self) -> dict[str, np.ndarray]:
        """The ensemble's models by kind, as the store keeps them (mean, std, p05, p95; exact, pygimli when known)."""
        kinds: dict[str, np.ndarray | None] = {
            "mean": self.mean, "std": self.std, "p05": self.low, "p95": self.high, "exact": self.truth,
            "pygimli": None if self.baseline is None else self.baseline.velocity_grid,
        }
        return {kind: grid for kind, grid in kinds.items() if grid is not None}

    def summary(self) -> dict[str, float]:
        """The ensemble's run_summary rows (NaN and unknown values left out)."""
        values: dict[str, float | None] = {
            "r2": self.r2, "rmse_m_s": self.rmse_m_s, "ensemble.members": float(len(self.used)),
            "ensemble.std_mean_m_s": _finite_mean(self.std), "ensemble.std_max_m_s": _finite_max(self.std),
            "ensemble.std_error_spearman": self.skill, "ensemble.coverage90": self.coverage,
            "ensemble.interval90_width_mean_m_s": None if self.low is None or self.high is None
            else _finite_mean(self.high - self.low),
            "ensemble.picks_sigma_s": None if self.noise is None else self.noise[0],
        }
        return {name: float(value) for name, value in values.items() if value is not None and math.isfinite(value)}


def member_from_folder(run_name: str, seed: int, status: str, out: Path, run_id: str = "", error: str = "") -> Member:
    """A member with its run id from its own result.json when it wrote one (the store's id otherwise)."""
    result = out / "result.json"
    if result.is_file():
        with contextlib.suppress(ValueError):  # a torn result.json: the store's id will do
            run_id = json.loads(result.read_text(encoding="utf-8")).get("run_id") or run_id
    return Member(run_name=run_name, seed=seed, status=status, out=out, run_id=run_id, error=error)


def combine(members: list[Member], data: Any, baseline: Any = None,
            noise: tuple[float, str] | None = None) -> EnsembleResult:
    """Mean, std and 90 % interval over the usable members; with a known true model, every R², the std's skill and
    the interval's coverage."""
    from pinnprov.experiments.ensemble import coverage, ensemble_stats, interval, uncertainty_skill
    from pinnprov.pinn.metrics import r2, rmse
    from pinnprov.pinn.scoring import true_model

    used = [member for member in members if member.usable]
    if len(used) < 2:
        raise EnsembleError(f"only {len(used)} of {len(members)} member(s) produced a model; an ensemble needs 2")
    grid_x, grid_z = np.load(used[0].out / "grid_x.npy"), np.load(used[0].out / "grid_z.npy")
    grids = []
    for member in used:
        if not (np.array_equal(np.load(member.out / "grid_x.npy"), grid_x)
                and np.array_equal(np.load(member.out / "grid_z.npy"), grid_z)):
            raise EnsembleError(f"member {member.run_name} was sampled on another grid than {used[0].run_name}")
        grids.append(np.load(member.out / "velocity_pinn.npy"))
    mean, std = ensemble_stats(grids)
    low, high = interval(mean, std, len(grids))
    result = EnsembleResult(members=members, grid_x=grid_x, grid_z=grid_z, mean=mean, std=std, low=low, high=high,
                            noise=noise, baseline=baseline)
    exact = true_model(data)
    if exact is not None:
        truth = np.asarray(exact(grid_x, grid_z), dtype=np.float64)
        for member, grid in zip(used, grids, strict=True):
            member.r2 = _or_none(lambda g=grid: r2(g, truth))
        result.truth = truth
        result.r2, result.rmse_m_s = _or_none(lambda: r2(mean, truth)), _or_none(lambda: rmse(mean, truth))
        skill = uncertainty_skill(std, np.abs(mean - truth))
        result.skill = skill if math.isfinite(skill) else None
        covered = coverage(low, high, truth)
        result.coverage = covered if math.isfinite(covered) else None
    return result


def write_outputs(out: Path, result: EnsembleResult, data: Any, identity: dict[str, Any]) -> list[Path]:
    """The ensemble's folder: grids as .npy, comparison.png (mean and std panels), ensemble.json."""
    from pinnprov.experiments.run_outputs import atomic_npy, atomic_text, json_default

    out.mkdir(parents=True, exist_ok=True)
    arrays = {"velocity_mean.npy": result.mean, "velocity_std.npy": result.std, "grid_x.npy": result.grid_x,
              "grid_z.npy": result.grid_z}
    if result.low is not None and result.high is not None:
        arrays.update({"velocity_p05.npy": result.low, "velocity_p95.npy": result.high})
    if result.truth is not None:
        arrays["velocity_true.npy"] = result.truth
    if result.baseline is not None:
        arrays["velocity_pygimli.npy"] = result.baseline.velocity_grid
    written = [atomic_npy(out / name, array) for name, array in arrays.items()]
    result.files = {name: sha256_of(out / name) for name in ("velocity_mean.npy", "velocity_std.npy",
                                                             "velocity_p05.npy", "velocity_p95.npy")
                    if name in arrays}
    written.append(figure(out / "comparison.png", result, data))
    document = {**identity, **ensemble_document(result), "dataset": data.identity().__dict__}
    written.append(atomic_text(out / "ensemble.json", json.dumps(document, indent=2, default=json_default) + "\n"))
    return written


def ensemble_document(result: EnsembleResult) -> dict[str, Any]:
    """ensemble.json's account of members, scores and products."""
    document: dict[str, Any] = {
        "size": len(result.members),
        "seeds": [member.seed for member in result.members],
        "members": [
            {"run_name": m.run_name, "run_id": m.run_id, "seed": m.seed, "status": m.status, "used": m.usable,
             "r2": m.r2, "out": str(m.out), **({"error": m.error} if m.error else {})}
            for m in result.members
        ],
        "mean": {"r2": result.r2, "rmse_m_s": result.rmse_m_s},
        "std": {"mean_m_s": _finite_mean(result.std), "max_m_s": _finite_max(result.std),
                "error_spearman": result.skill},
        "interval": {"level": INTERVAL_LEVEL, "inflation": SPREAD_INFLATION, "coverage": result.coverage,
                     "files": ["velocity_p05.npy", "velocity_p95.npy"]},
        **({"picks_sigma": {"s": result.noise[0], "source": result.noise[1]}} if result.noise else {}),
        "files": {name: {"sha256": digest} for name, digest in result.files.items()},
    }
    if result.baseline is not None:
        document["baseline"] = {"method": "pygimli", "r2": result.baseline.r2, "rmse_m_s": result.baseline.rmse_m_s}
    return document


def figure(path: Path, result: EnsembleResult, data: Any) -> Path:
    """Figure 2 of the ensemble: true model (if known), PyGIMLi (if run), the mean, and the std on its own scale."""
    from pinnprov.pinn.figures import VELOCITY_RANGE_M_S, benchmark_sensors, comparison_figure, grid_extent
    from pinnprov.pinn.scoring import is_benchmark

    panels: list[tuple[str, Any, float | None]] = []
    if result.truth is not None:
        panels.append(("True model", result.truth, None))
    if result.baseline is not None:
        panels.append(("PyGIMLi", result.baseline.velocity_grid, result.baseline.r2))
    panels.append((f"Ensemble mean ({len(result.used)} runs)", result.mean, result.r2))
    std_panel = ("Ensemble std", result.std)
    extent = grid_extent(result.grid_x, result.grid_z)
    if is_benchmark(data):
        return comparison_figure(path, panels, extent, sensors=benchmark_sensors(), velocity_range=VELOCITY_RANGE_M_S,
                                 std_panel=std_panel)
    sensors = (np.unique(data.sources, axis=0), np.unique(data.receivers, axis=0))
    return comparison_figure(path, panels, extent, sensors=sensors, velocity_range=None, std_panel=std_panel)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _or_none(score: Any) -> float | None:
    try:
        value = float(score())
    except ValueError:  # e.g. a constant reference: R² undefined
        return None
    return value if math.isfinite(value) else None


def _finite_mean(values: np.ndarray) -> float | None:
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if finite.size else None


def _finite_max(values: np.ndarray) -> float | None:
    finite = values[np.isfinite(values)]
    return float(finite.max()) if finite.size else None
