"""Data-only stopping and model selection: the true model never chooses epochs or checkpoints.

- converged (the default): stop when the training objective has stopped falling,
  i.e. the median loss of the last `window` epochs is less than `tolerance` below the median of the window
  before. The answer is then the minimiser the regularisation and the annealed learning rate settle on, not
  a snapshot of a moving optimisation, so it does not depend on the stopping moment (bench/trajectory.py
  measures R^2 at the stop and at 3x the stop). It needs no noise level: a user's data rarely comes with one.
  On the tuning cases it beat the discrepancy principle given the true sigma on the two discs (R^2 +0.03,
  +0.11) and came within 0.01 of it on the layered and smooth ones (README, "Accuracy").
- discrepancy (Morozov): fitting picks below their noise level only fits noise, so stop as soon as the data
  RMS reaches the noise level, the expected sigma of the picks (--noise-level).
- holdout: train on most picks, watch the RMS on the rest, keep the best parameters and stop after
  `patience` epochs without improvement.
Every rule is given one `Progress` per chunk of steps.
"""

from __future__ import annotations

import statistics
from collections import deque
from dataclasses import dataclass, field

import numpy as np

RULES = ("converged", "discrepancy", "holdout", "none")
DEFAULT_HOLDOUT_FRACTION = 0.1  # 10 picks of the paper's 100: enough to see overfitting, few enough to spare


@dataclass(frozen=True)
class Progress:
    """Where a run stands after a chunk of steps."""

    epoch: int  # last epoch of the chunk (0-based)
    data_rms_s: float  # data RMS at that epoch (training picks)
    loss: float  # median objective over the chunk (steps on fresh collocation points are noisy)
    holdout_rms_s: float | None = None


@dataclass
class Decision:
    stop: bool
    reason: str = ""
    improved: bool = False  # the hold-out rule found a new best: snapshot the parameters


class StoppingRule:
    def check(self, progress: Progress) -> Decision:
        return Decision(stop=False)

    def state(self) -> dict[str, object]:
        """What the rule remembers, as JSON-able values (a checkpoint keeps it, pinnprov/pinn/checkpoints.py)."""
        return {}

    def load_state(self, state: dict[str, object]) -> None:
        """Continue from `state()` of an earlier run (resume)."""


class NoStopping(StoppingRule):
    pass


@dataclass
class Discrepancy(StoppingRule):
    noise_level_s: float
    factor: float = 1.0

    def check(self, progress: Progress) -> Decision:
        target = self.factor * self.noise_level_s
        if progress.data_rms_s <= target:
            return Decision(True, f"discrepancy principle: data RMS {progress.data_rms_s:.4g} s <= "
                                  f"{self.factor:g} x noise level {self.noise_level_s:.4g} s")
        return Decision(False)


@dataclass
class Holdout(StoppingRule):
    patience: int
    best_rms_s: float = float("inf")
    best_epoch: int = -1

    def check(self, progress: Progress) -> Decision:
        if progress.holdout_rms_s is None:
            return Decision(False)
        if progress.holdout_rms_s < self.best_rms_s:
            self.best_rms_s, self.best_epoch = progress.holdout_rms_s, progress.epoch
            return Decision(False, improved=True)
        if progress.epoch - self.best_epoch >= self.patience:
            return Decision(True, f"hold-out RMS {self.best_rms_s:.4g} s at epoch {self.best_epoch} not improved "
                                  f"for {progress.epoch - self.best_epoch} epochs")
        return Decision(False)

    def state(self) -> dict[str, object]:
        return {"best_rms_s": self.best_rms_s if self.best_rms_s != float("inf") else None,
                "best_epoch": self.best_epoch}

    def load_state(self, state: dict[str, object]) -> None:
        best = state.get("best_rms_s")
        self.best_rms_s = float(best) if isinstance(best, int | float) else float("inf")
        epoch = state.get("best_epoch", -1)
        self.best_epoch = int(epoch) if isinstance(epoch, int | float) else -1


@dataclass
class Converged(StoppingRule):
    """Stop when the median loss of the last `window` epochs is within `tolerance` of the window before's."""

    window: int
    tolerance: float
    _losses: deque[tuple[int, float]] = field(default_factory=deque)

    def check(self, progress: Progress) -> Decision:
        self._losses.append((progress.epoch, progress.loss))
        while self._losses and self._losses[0][0] <= progress.epoch - 2 * self.window:
            self._losses.popleft()
        if self._losses[0][0] > progress.epoch - 2 * self.window + self.window // 10:
            return Decision(False)  # not yet two full windows of history
        recent = [loss for epoch, loss in self._losses if epoch > progress.epoch - self.window]
        before = [loss for epoch, loss in self._losses if epoch <= progress.epoch - self.window]
        if not recent or not before:
            return Decision(False)
        now, then = statistics.median(recent), statistics.median(before)
        if now >= then * (1 - self.tolerance):
            return Decision(True, f"converged: median loss of the last {self.window} epochs {now:.4g} is less "
                                  f"than {self.tolerance:.0%} below the {self.window} before ({then:.4g})")
        return Decision(False)

    def state(self) -> dict[str, object]:
        return {"losses": [[epoch, loss] for epoch, loss in self._losses]}

    def load_state(self, state: dict[str, object]) -> None:
        losses = state.get("losses", [])
        self._losses = deque((int(pair[0]), float(pair[1])) for pair in losses) if isinstance(losses, list) else deque()


def progress_of(epoch: int, records: np.ndarray, holdout_rms_s: float | None) -> Progress:
    """A chunk's Progress from its per-step records (RECORD_FIELDS columns)."""
    from pinnprov.pinn.losses import DATA_RMS, LOSS

    return Progress(epoch=epoch, data_rms_s=float(records[-1, DATA_RMS]),
                    loss=float(np.median(records[:, LOSS])), holdout_rms_s=holdout_rms_s)


def make_rule(name: str, *, noise_level_s: float | None, factor: float, patience: int, window: int,
              tolerance: float) -> StoppingRule:
    if name == "discrepancy":
        if not noise_level_s:
            raise ValueError("stopping: the discrepancy principle needs a noise level (noise_level_s / --noise-level)")
        return Discrepancy(noise_level_s, factor)
    if name == "holdout":
        return Holdout(patience)
    if name == "converged":
        return Converged(window, tolerance)
    if name == "none":
        return NoStopping()
    raise ValueError(f"stopping: unknown rule {name!r} (choose from {', '.join(RULES)})")
