"""Checkpoints: everything a run needs to continue where it stopped, written atomically at chunk boundaries.

A checkpoint holds both networks (every variable of tau and v, adaptive slopes included), the optimiser's state
(Adam moments and step count), the schedule position (step counter, steerable base rate, reported rate), the
collocation sampler's random state and current points, the steerable loss weights, the stopping rule's memory
and the hold-out rule's best parameters, plus the run's config, data set hash and elapsed seconds. One `.npz`
file: arrays under `var/<module>/<i>` and `best/<i>`, the rest as JSON under `meta`. It is written to a temp file,
fsynced and renamed, so a run killed while writing leaves the previous checkpoint intact.

When: `--checkpoint-every 10m` by default. Time, not epochs, because what a checkpoint bounds is lost *wall
time* (a node lost, a walltime reached), and epochs per second differ 10x between a laptop CPU and a GPU node;
a checkpoint of the benchmark networks costs milliseconds (bench/checkpoints.py), so every 10 min is free and
loses at most 10 min. `--checkpoint-every 2000` counts epochs instead (tests, reproducible placement).
Checkpoints are taken only in the first-order phase; an L-BFGS phase resumes from its start.
"""

from __future__ import annotations

import io
import json
import os
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from pinnprov.pinn.problem import Problem

SUFFIX = ".ckpt.npz"
FORMAT = 1
DEFAULT_EVERY = "10m"
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|min|h)\s*$")
_UNIT_S = {"s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}


@dataclass(frozen=True)
class CheckpointPolicy:
    """Where and how often a run writes checkpoints (`every_epochs` or `every_s`; `keep` newest files kept)."""

    directory: Path
    every_epochs: int = 0
    every_s: float = 0.0
    keep: int = 3

    @classmethod
    def parse(cls, directory: Path, every: str | int = DEFAULT_EVERY, keep: int = 3) -> CheckpointPolicy:
        """`2000` (epochs), `90s`, `10m`, `1h`, or `0`/`off` (none); anything else is a ValueError naming the key."""
        text = str(every).strip().lower()
        if text in ("0", "off", "none", "no"):
            return cls(directory, keep=keep)
        if text.isdigit():
            return cls(directory, every_epochs=int(text), keep=keep)
        match = _DURATION.match(text)
        if match is None or float(match.group(1)) <= 0:
            raise ValueError(f"checkpoint_every: expected epochs (2000) or a duration (90s, 10m, 1h), got {every!r}")
        return cls(directory, every_s=float(match.group(1)) * _UNIT_S[match.group(2)], keep=keep)

    @property
    def enabled(self) -> bool:
        return bool(self.every_epochs or self.every_s)


class CheckpointClock:
    """Says when the next checkpoint is due (by epochs crossed or by wall time since the last one)."""

    def __init__(self, policy: CheckpointPolicy, epochs: int) -> None:
        self.policy = policy
        self._last_epoch = epochs
        self._last_time = time.monotonic()

    def due(self, epochs: int) -> bool:
        p = self.policy
        if p.every_epochs:
            return epochs // p.every_epochs > self._last_epoch // p.every_epochs
        return bool(p.every_s) and time.monotonic() - self._last_time >= p.every_s

    def taken(self, epochs: int) -> None:
        self._last_epoch, self._last_time = epochs, time.monotonic()


@dataclass
class Checkpoint:
    """A checkpoint read back: arrays by name and its metadata."""

    path: Path
    arrays: dict[str, np.ndarray]
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def epochs(self) -> int:
        return int(self.meta["epochs"])

    @property
    def run_id(self) -> str:
        return str(self.meta["run_id"])

    @property
    def config(self) -> dict[str, Any]:
        return dict(self.meta["config"])

    @property
    def best(self) -> list[np.ndarray] | None:
        names = sorted((k for k in self.arrays if k.startswith("best/")), key=lambda k: int(k.split("/")[1]))
        return [self.arrays[k] for k in names] if names else None


def state_variables(problem: Problem) -> dict[str, Any]:
    """Every tf.Variable a run's future depends on, by a name stable for a given config (module/index)."""
    modules: tuple[tuple[str, Any], ...] = (
        ("tau", problem.tau), ("velocity", problem.velocity), ("loss", problem.loss), ("optimizer", problem.optimizer),
        ("sampler", problem.sampler), ("weights", problem.weights), ("lr", problem.learning_rate.base),
        ("step", problem.step), ("generator", problem.sampler.generator.state),
    )
    named: dict[str, Any] = {}
    seen: set[int] = set()
    for module_name, module in modules:
        variables = [module] if not hasattr(module, "variables") or module_name in ("lr", "step", "generator") \
            else list(module.variables)
        for index, variable in enumerate(variables):
            if id(variable) in seen:
                continue
            seen.add(id(variable))
            named[f"var/{module_name}/{index}"] = variable
    return named


def save(path: Path, problem: Problem, meta: Mapping[str, Any], best: list[np.ndarray] | None = None) -> Path:
    """Write a checkpoint atomically (temp file, fsync, rename; the directory is fsynced too)."""
    arrays = {name: variable.numpy() for name, variable in state_variables(problem).items()}
    for index, value in enumerate(best or ()):
        arrays[f"best/{index}"] = value
    buffer = io.BytesIO()
    np.savez(buffer, meta=np.frombuffer(json.dumps({"format": FORMAT, **meta}).encode(), dtype=np.uint8), **arrays)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with temporary.open("wb") as stream:
            stream.write(buffer.getbuffer())
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    try:
        directory = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
    except OSError:  # not every file system lets a directory be fsynced
        pass
    return path


def load(path: Path | str) -> Checkpoint:
    """Read a checkpoint file, or the newest checkpoint of a directory; ValueError when there is none."""
    path = Path(path)
    if path.is_dir():
        newest = latest_in(path)
        if newest is None:
            raise ValueError(f"resume: no checkpoint (*{SUFFIX}) in {path}")
        path = newest
    if not path.is_file():
        raise ValueError(f"resume: {path}: no such checkpoint")
    with np.load(path, allow_pickle=False) as archive:
        arrays = {name: archive[name] for name in archive.files}
    meta = json.loads(arrays.pop("meta").tobytes().decode())
    if meta.get("format") != FORMAT:
        raise ValueError(f"resume: {path}: checkpoint format {meta.get('format')!r} is not {FORMAT}")
    return Checkpoint(path, arrays, meta)


def restore(problem: Problem, checkpoint: Checkpoint) -> None:
    """Assign every state variable from `checkpoint`; ValueError if the networks' structure differs."""
    variables = state_variables(problem)
    stored = {k: v for k, v in checkpoint.arrays.items() if k.startswith("var/")}
    if set(stored) != set(variables):
        raise ValueError(f"resume: {checkpoint.path}: its variables do not match this configuration "
                         f"({len(stored)} stored, {len(variables)} expected)")
    for name, variable in variables.items():
        value = stored[name]
        if tuple(variable.shape) != value.shape:
            raise ValueError(f"resume: {checkpoint.path}: {name} has shape {value.shape}, expected "
                             f"{tuple(variable.shape)}")
        variable.assign(value)


def warm_start(problem: Problem, checkpoint: Checkpoint) -> None:
    """Start from a checkpoint's networks (and prior background) only: a fresh optimiser, schedule and step count.

    What an RML member needs (pinnprov/pinn/perturbation.py): it optimises its own perturbed problem from the
    unperturbed run's answer, so its loss weights, optimiser state and learning rate stay its own. The parameters the
    run reported (its `best` ones, when a hold-out chose them) are taken over the last ones.
    """
    names = {id(variable): name for name, variable in state_variables(problem).items()}
    best = checkpoint.best
    if best is not None and len(best) == len(problem.variables):
        values = list(best)
    else:
        try:
            values = [checkpoint.arrays[names[id(variable)]] for variable in problem.variables]
        except KeyError as missing:
            raise ValueError(f"warm start: {checkpoint.path}: no variable {missing} for this configuration") from None
    for variable, value in zip(problem.variables, values, strict=True):
        if tuple(variable.shape) != value.shape:
            raise ValueError(f"warm start: {checkpoint.path}: a variable has shape {value.shape}, this configuration "
                             f"needs {tuple(variable.shape)}")
        variable.assign(value)


def latest_in(directory: Path) -> Path | None:
    """The checkpoint with the most epochs in `directory` (names carry zero-padded epochs), or None."""
    files = sorted(directory.glob(f"*{SUFFIX}")) if directory.is_dir() else []
    return files[-1] if files else None


def file_name(epochs: int) -> str:
    return f"epoch-{epochs:09d}{SUFFIX}"


def prune(directory: Path, keep: int) -> None:
    """Delete all but the `keep` newest checkpoints (their entities stay in the store, with their hashes)."""
    if keep <= 0:
        return
    for old in sorted(directory.glob(f"*{SUFFIX}"))[:-keep]:
        old.unlink(missing_ok=True)
