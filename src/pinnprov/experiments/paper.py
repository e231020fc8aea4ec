"""The paper's study, reproduced: a sweep of activations x optimizers, the poor RMSProp runs steered to a stop
at runtime from queries of the store, the PyGIMLi baseline, and a report (see paper_report.py).

Steering is a standing rule over the experiment (pinnprov/experiments/poor_run_rule.py): every RMSProp run whose total
loss at the warm-up epoch is more than `steer_factor` times the median at that epoch of the experiment's runs is
stopped, with the user who runs the study as the PROV agent and the evidence in the reason. The paper stopped one
poor RMSProp run; a rule judged once per wave stopped the worst of the runs alive at that moment and missed worse
ones trained later, so each run is judged on its own loss at the warm-up. If no run is poor, the report says so.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from pinnprov.experiments.grid import GridPoint, expand
from pinnprov.experiments.poor_run_rule import PoorRunRule, SteeringDecision
from pinnprov.experiments.storeview import StoreView
from pinnprov.experiments.sweep import Sweep, SweepRun, SweepSpec

__all__ = ["PaperOutcome", "PaperPlan", "SteeringDecision", "run_study"]

QUICK_ACTIVATIONS = ("tanh", "sigmoid")
FULL_ACTIVATIONS = ("tanh", "sine", "sigmoid", "relu")
OPTIMIZERS = ("adam", "rmsprop")
QUICK_EPOCHS = 8000  # ~20 s per run with the tuned XLA defaults: long enough to steer one at runtime
STEERED_OPTIMIZER = "rmsprop"  # the paper stopped RMSProp + Sigmoid
WARMUP_FRACTION = 0.2
STEER_FACTOR = 3.0  # "poor": an order of magnitude is what the paper's stopped run and the missed ones differed by
Echo = Callable[[str], None]


def full_epochs() -> int:
    """The tuned default of `pinnprov train` (pinn.config.TrainConfig.epochs)."""
    from pinnprov.pinn.config import TrainConfig

    default = TrainConfig.__dataclass_fields__["epochs"].default
    assert isinstance(default, int)  # a plain default, not a default_factory
    return default


@dataclass(frozen=True)
class PaperPlan:
    out: Path
    store: str
    experiment: str
    quick: bool
    epochs: int
    activations: tuple[str, ...]
    optimizers: tuple[str, ...]
    parallel: int
    train_args: tuple[str, ...] = ()
    extra_axes: dict[str, str] = field(default_factory=dict)
    baseline_args: tuple[str, ...] = ()
    name_tag: str = ""
    steer_factor: float = STEER_FACTOR

    @property
    def warmup_epochs(self) -> int:
        return max(1, int(self.epochs * WARMUP_FRACTION))

    def points(self) -> list[GridPoint]:
        # Optimizer first: with two processes the RMSProp runs train side by side, as in the paper's comparison.
        axes = {"optimizer": ",".join(self.optimizers), "activation": ",".join(self.activations), **self.extra_axes}
        return expand(axes, ["--epochs", str(self.epochs), *self.train_args])


@dataclass
class PaperOutcome:
    plan: PaperPlan
    runs: list[SweepRun]
    decision: SteeringDecision
    decisions: list[SteeringDecision]
    rule: str
    judged: dict[str, str]
    baseline_dir: Path | None
    baseline_error: str
    started_at: float
    wall_s: float


def _start_baseline(plan: PaperPlan) -> tuple[subprocess.Popen[bytes], Path, Path]:
    out = plan.out / "baseline"
    log = plan.out / "logs" / "baseline.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    command = [sys.executable, "-m", "pinnprov", "baseline", "--out", str(out), *plan.baseline_args]
    with log.open("wb") as handle:
        process = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   env=env)  # noqa: S603 - our own interpreter and arguments
    return process, out, log


def run_study(plan: PaperPlan, echo: Echo = print) -> PaperOutcome:
    """Run everything the report needs; the baseline inverts in its own process while the sweep trains."""
    started = time.time()
    view = StoreView(plan.store)
    spec = SweepSpec(experiment=plan.experiment, points=plan.points(), store=plan.store, out_dir=plan.out,
                     parallel=plan.parallel, name_tag=plan.name_tag or "p")
    baseline, baseline_dir, baseline_log = _start_baseline(plan)
    echo(f"baseline: PyGIMLi inversion started (pid {baseline.pid}, log {baseline_log})")
    monitor = PoorRunRule(view, plan.experiment, plan.warmup_epochs,
                          lambda run: run.point.as_dict().get("optimizer") == STEERED_OPTIMIZER, echo,
                          factor=plan.steer_factor)
    try:
        runs = Sweep(spec, view, echo).run(monitor=monitor)
    except BaseException:
        baseline.terminate()
        raise
    code = baseline.wait()
    error = ""
    if code != 0:
        lines = [line for line in baseline_log.read_text(errors="replace").splitlines() if line.strip()]
        error = f"{lines[-1] if lines else 'no output'} (exit status {code})"
        echo(f"baseline: failed: {error}")
    else:
        echo("baseline: done")
    return PaperOutcome(plan, runs, monitor.summary(runs), monitor.decisions, monitor.name, monitor.judged,
                        baseline_dir if code == 0 else None, error, started,
                        time.time() - started)
