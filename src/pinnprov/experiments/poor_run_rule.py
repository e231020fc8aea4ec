"""The paper study's steering as a standing rule over the experiment: every poor run is stopped, not one per wave.

The rule (the collector's `relative_to_median` idea, judged at one epoch so runs compare like with like): a
candidate run is poor when its total loss L at the warm-up epoch W is more than `factor` times the median L at
epoch W of the experiment's runs that reached W (itself included, at least `min_runs` of them). Each run is judged
once, as soon as its loss at W and enough others exist, whatever it does now; so the decision does not depend on
which runs happen to train side by side (2 local processes, or any number of Dask workers), and a run that got
to W before the median could be formed is judged, late, on its loss at W, and stopped where it then is.

It reads the store (Table 1 at epoch W, Table 2 for the running runs) and stops through the store, with the
user who runs the study as the PROV agent and the evidence in the reason; what it stopped and when is kept for
the report.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pinnprov.experiments.storeview import StoreView

Echo = Callable[[str], None]
CHECK_EVERY_S = 1.0


@dataclass
class SteeringDecision:
    """One stop the rule decided (or, with `note`, why nothing was stopped)."""

    run_name: str = ""
    run_id: str = ""
    epoch: int = -1  # the run's latest stored epoch when the stop was queued
    loss: float = math.nan  # its L at the warm-up epoch
    compared: str = ""  # the median and the runs it came from
    command_id: str = ""
    agent: str = ""
    reason: str = ""
    at: float = 0.0
    note: str = ""


@dataclass
class PoorRunRule:
    """Sweep monitor: one store query a second; judges each candidate once, at the warm-up epoch."""

    view: StoreView
    experiment: str
    warmup_epoch: int
    is_candidate: Callable[[Any], bool]  # a SweepRun of the steered optimizer
    echo: Echo
    factor: float = 3.0
    min_runs: int = 2
    decisions: list[SteeringDecision] = field(default_factory=list)
    judged: dict[str, str] = field(default_factory=dict)  # run name -> verdict
    _at_warmup: dict[str, float] = field(default_factory=dict)
    _last_check: float = 0.0

    @property
    def name(self) -> str:
        return (f"L at epoch {self.warmup_epoch} > {self.factor:g} x the median L at that epoch of the experiment's "
                f"runs (at least {self.min_runs})")

    def __call__(self, sweep: Any) -> None:
        if time.monotonic() - self._last_check < CHECK_EVERY_S:
            return
        self._last_check = time.monotonic()
        try:
            progress = self.view.progress(self.experiment)
        except FileNotFoundError:
            return
        for run in sweep.runs:
            row = progress.get(run.run_name)
            if row is not None and row.epoch >= self.warmup_epoch and run.run_name not in self._at_warmup:
                loss = self._loss_at_warmup(run.run_name)
                if loss is not None:
                    self._at_warmup[run.run_name] = loss
        if len(self._at_warmup) < self.min_runs:
            return
        median = statistics.median(_key(v) for v in self._at_warmup.values())
        for run in sweep.runs:
            if run.run_name in self.judged or run.run_name not in self._at_warmup or not self.is_candidate(run):
                continue
            row = progress.get(run.run_name)
            self._judge(run, self._at_warmup[run.run_name], median, row.epoch if row else -1,
                        row.status if row else "unknown")

    def _loss_at_warmup(self, run_name: str) -> float | None:
        """L of the first stored epoch at or after the warm-up (capture may skip epochs)."""
        table = self.view.query("epochs", run=run_name, from_epoch=self.warmup_epoch)
        if not table.rows:
            return None
        value = table.rows[0][table.columns.index("loss")]
        return math.inf if value is None else float(value)  # a NaN loss is stored NULL: the worst

    def _judge(self, run: Any, loss: float, median: float, epoch: int, status: str) -> None:
        from pinnprov.core.steering import new_command, user_agent

        compared = f"median L={median:.4g} of {len(self._at_warmup)} runs at epoch {self.warmup_epoch}"
        if _key(loss) <= self.factor * median:
            self.judged[run.run_name] = f"kept: L={loss:.4g} <= {self.factor:g} x {compared}"
            return
        if status != "running" or run.status != "running":
            self.judged[run.run_name] = f"poor (L={loss:.4g}) but already {status} when judged"
            self.echo(f"steering: {run.run_name} is poor ({self.judged[run.run_name]}); nothing to stop")
            return
        reason = (f"pinnprov paper standing rule: L={loss:.4g} at the warm-up epoch {self.warmup_epoch} is more than "
                  f"{self.factor:g} x the {compared}")
        command = new_command("stop", agent=user_agent(), reason=reason)
        info = self.view.find_run(run.run_name)
        self.judged[run.run_name] = "stopped"
        if info is None:
            self.judged[run.run_name] = "poor but not in the store"
            return
        try:
            self.view.steer(info.run_id, command)
        except ValueError as error:  # it ended between the query and the command
            self.judged[run.run_name] = f"poor, could not stop: {error}"
            self.echo(f"steering: could not stop {run.run_name}: {error}")
            return
        self.decisions.append(SteeringDecision(run.run_name, info.run_id, epoch, loss, compared, command.command_id,
                                               command.agent, reason, time.time()))
        self.echo(f"steering: stop {run.run_name} at epoch {epoch} ({reason})")

    def summary(self, runs: Sequence[Any]) -> SteeringDecision:
        """The first stop, or why there was none (the report lists every decision)."""
        if self.decisions:
            return self.decisions[0]
        candidates = [run.run_name for run in runs if self.is_candidate(run)]
        if not candidates:
            note = "the grid has no run the rule applies to"
        elif len(self._at_warmup) < self.min_runs:
            note = f"fewer than {self.min_runs} runs reached the warm-up epoch {self.warmup_epoch}"
        else:
            note = "no run was poor by the rule (" + "; ".join(f"{n}: {self.judged.get(n, 'not judged')}"
                                                             for n in candidates) + ")"
        return SteeringDecision(note=note)


def _key(loss: float) -> float:
    return math.inf if not math.isfinite(loss) else loss
