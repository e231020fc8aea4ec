"""The alert rule language: what a rule is, and the per-run state that decides when it holds.

Four kinds cover what PINN users ask for:

- `threshold`: metric op value ("total loss above 1e-2 after epoch 5000").
- `no_improvement`: no new best (by at least `min_delta`, relative) for `epochs` epochs
  ("data loss not improving for 2000 epochs").
- `relative_to_median`: metric op factor x the median of earlier values of the run (or of its experiment)
  ("epoch time 3x the run's median").
- `non_finite`: the metric (or `any` loss/timing value) became NaN or infinite (training diverged).

Common to all: a scope (all runs, one experiment, one run), an epoch window (`after_epoch`,
`before_epoch`) and `for_epochs`: the condition must hold over that many consecutive epoch *numbers*, so a
rule means the same whatever the capture interval. A rule fires once when it starts to hold, stays quiet
while it keeps holding, and re-arms when it stops holding.
"""

from __future__ import annotations

import bisect
import math
import operator
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from pinnprov.collector.alerts.actions import ActionSpec, LogSpec
from pinnprov.core.fields import LOSS_FIELDS, MEASURED_EPOCH_FIELDS
from pinnprov.store.records import EpochRecord

KINDS = ("threshold", "no_improvement", "relative_to_median", "non_finite")
METRICS: tuple[str, ...] = (
    *(field.name for field in LOSS_FIELDS),
    *(field.name for field in MEASURED_EPOCH_FIELDS if not field.component),
)
"""Epoch fields a rule can watch (every measured one of pinnprov/core/fields.py, the loss and its terms first);
`extra.<name>` watches a further per-epoch scalar."""
ALIASES: dict[str, str] = {
    **{field.component: field.name for field in LOSS_FIELDS},
    **{alias: field.name for field in MEASURED_EPOCH_FIELDS for alias in field.aliases},
}
"""Friendly names: the loss components and the fields' declared aliases (never `lr`: in the paper LR is the
*residual loss*)."""
COMPARISONS: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le,
}
SCOPES = ("all", "experiment", "run")


@dataclass(frozen=True)
class Scope:
    """Which runs a rule watches: all of them, one experiment's, or one run (by name or id)."""

    level: str = "all"
    name: str = ""

    def matches(self, run_id: str, run_name: str, experiment: str) -> bool:
        if self.level == "all":
            return True
        if self.level == "experiment":
            return experiment == self.name
        return self.name in (run_name, run_id)

    def describe(self) -> str:
        return "all runs" if self.level == "all" else f"{self.level} {self.name}"


@dataclass(frozen=True)
class Rule:
    name: str
    kind: str
    metric: str
    op: str = ">"
    threshold: float = 0.0  # threshold kind
    factor: float = 1.0  # relative_to_median
    epochs: int = 0  # no_improvement: epochs without a new best
    min_delta: float = 0.0  # no_improvement: relative improvement that counts as one
    window: int = 0  # relative_to_median: median of the last N earlier values (0: all of them)
    min_samples: int = 10  # relative_to_median: earlier values needed before judging
    baseline: str = "run"  # relative_to_median: median over the run, or over its experiment
    after_epoch: int = 0
    before_epoch: int | None = None
    for_epochs: int = 1
    scope: Scope = Scope()
    actions: tuple[ActionSpec, ...] = (LogSpec(),)
    message: str = ""  # template; fields: rule run_id run_name experiment epoch metric value threshold

    def value_of(self, epoch: EpochRecord) -> float:
        """The watched value of one epoch (NaN if an extra scalar is missing)."""
        return self.reader()(epoch)

    def reader(self) -> Callable[[EpochRecord], float]:
        """A function reading the watched value (built once per rule: it runs for every epoch)."""
        if self.metric.startswith("extra."):
            key = self.metric.removeprefix("extra.")
            return lambda epoch: float(epoch.extra.get(key, math.nan))
        if self.metric == "any":
            readers = [operator.attrgetter(name) for name in METRICS]
            return lambda epoch: next((v for v in (float(r(epoch)) for r in readers) if not math.isfinite(v)), 0.0)
        return operator.attrgetter(self.metric)

    def in_window(self, epoch: int) -> bool:
        return epoch >= self.after_epoch and (self.before_epoch is None or epoch <= self.before_epoch)


class Samples:
    """Earlier values kept sorted for an O(1) median (optionally only the last `window` of them)."""

    def __init__(self, window: int = 0) -> None:
        self.sorted: list[float] = []
        self.recent: deque[float] | None = deque() if window else None
        self.window = window

    def __len__(self) -> int:
        return len(self.sorted)

    def median(self) -> float:
        values, n = self.sorted, len(self.sorted)
        return values[n // 2] if n % 2 else 0.5 * (values[n // 2 - 1] + values[n // 2])

    def add(self, value: float) -> None:
        if not math.isfinite(value):
            return
        bisect.insort(self.sorted, value)
        if self.recent is not None:
            self.recent.append(value)
            if len(self.recent) > self.window:
                old = self.recent.popleft()
                del self.sorted[bisect.bisect_left(self.sorted, old)]


@dataclass
class RuleState:
    """One rule's memory for one run: firing flag, start of the current streak, best value so far."""

    firing: bool = False
    streak_start: int | None = None  # first epoch of the current run of epochs where the condition held
    best: float = math.inf
    best_epoch: int = -1


def evaluate(rule: Rule, state: RuleState, epoch: int, value: float, samples: Samples | None) -> tuple[bool, float]:
    """Update `state` with one epoch's value; returns (condition holds, the bound it was compared with)."""
    if rule.kind == "threshold":
        return (math.isfinite(value) and COMPARISONS[rule.op](value, rule.threshold)), rule.threshold
    if rule.kind == "non_finite":
        return (not math.isfinite(value)), math.nan
    if rule.kind == "no_improvement":
        if math.isfinite(value) and (state.best_epoch < 0 or value < state.best - rule.min_delta * abs(state.best)):
            state.best, state.best_epoch = value, epoch
        stalled = state.best_epoch >= 0 and epoch - state.best_epoch >= rule.epochs
        return stalled, state.best
    # relative_to_median: judge against the earlier values, then remember this one
    assert samples is not None
    holds, bound = False, math.nan
    if len(samples) >= rule.min_samples and math.isfinite(value):
        bound = rule.factor * samples.median()
        holds = COMPARISONS[rule.op](value, bound)
    samples.add(value)
    return holds, bound


def step(rule: Rule, state: RuleState, epoch: int, holds: bool) -> bool:
    """Advance the fire-once state machine; True exactly when the rule starts firing at this epoch."""
    if not holds or not rule.in_window(epoch):
        if state.firing and not holds:
            state.firing = False  # recovered: re-armed
        state.streak_start = None
        return False
    if state.streak_start is None:
        state.streak_start = epoch
    if state.firing or epoch - state.streak_start + 1 < rule.for_epochs:
        return False
    state.firing = True
    return True
