"""Data-only stopping and model selection: the true model never chooses epochs or checkpoints.

Discrepancy principle (Morozov): fitting picks below their noise level only fits noise, which for this
problem shows up as artefacts in v; so stop as soon as the data RMS reaches the noise level.
Hold-out: train on most picks, watch the RMS on the rest, keep the best parameters and stop after
`patience` epochs without improvement.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Decision:
    stop: bool
    reason: str = ""
    improved: bool = False  # the hold-out rule found a new best: snapshot the parameters


class StoppingRule:
    def check(self, epoch: int, data_rms_s: float, holdout_rms_s: float | None) -> Decision:
        return Decision(stop=False)


class NoStopping(StoppingRule):
    pass


@dataclass
class Discrepancy(StoppingRule):
    noise_level_s: float
    factor: float = 1.0

    def check(self, epoch: int, data_rms_s: float, holdout_rms_s: float | None) -> Decision:
        target = self.factor * self.noise_level_s
        if data_rms_s <= target:
            return Decision(True, f"discrepancy principle: data RMS {data_rms_s:.4g} s <= "
                                  f"{self.factor:g} x noise level {self.noise_level_s:.4g} s")
        return Decision(False)


@dataclass
class Holdout(StoppingRule):
    patience: int
    best_rms_s: float = float("inf")
    best_epoch: int = -1

    def check(self, epoch: int, data_rms_s: float, holdout_rms_s: float | None) -> Decision:
        if holdout_rms_s is None:
            return Decision(False)
        if holdout_rms_s < self.best_rms_s:
            self.best_rms_s, self.best_epoch = holdout_rms_s, epoch
            return Decision(False, improved=True)
        if epoch - self.best_epoch >= self.patience:
            return Decision(True, f"hold-out RMS {self.best_rms_s:.4g} s at epoch {self.best_epoch} not improved "
                                  f"for {epoch - self.best_epoch} epochs")
        return Decision(False)


def make_rule(name: str, *, noise_level_s: float | None, factor: float, patience: int) -> StoppingRule:
    if name == "discrepancy":
        if not noise_level_s:
            raise ValueError("stopping: the discrepancy principle needs a noise level (noise_level_s / --noise-level)")
        return Discrepancy(noise_level_s, factor)
    if name == "holdout":
        return Holdout(patience)
    return NoStopping()
