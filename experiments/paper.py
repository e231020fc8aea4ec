"""The paper's study, reproduced: a sweep of activations x optimizers, one poor RMSProp run steered to a stop
at runtime from a query of the store, the PyGIMLi baseline, and a report (see paper_report.py).

The steering decision mirrors the paper's: once every running RMSProp run is past a warm-up, the one with the
worst latest total loss (Table 2's L) is stopped, with the user who runs the study as the PROV agent and the
evidence in the reason. It is taken once; if no RMSProp run is still running after its warm-up (e.g. all stopped
early by the data-only stopping rule), the report says so instead of pretending.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from experiments.grid import GridPoint, expand
from experiments.storeview import StoreView
from experiments.sweep import Sweep, SweepRun, SweepSpec

QUICK_ACTIVATIONS = ("tanh", "sigmoid")
FULL_ACTIVATIONS = ("tanh", "sine", "sigmoid", "relu")
OPTIMIZERS = ("adam", "rmsprop")
QUICK_EPOCHS = 8000  # ~20 s per run with the tuned XLA defaults: long enough to steer one at runtime
STEERED_OPTIMIZER = "rmsprop"  # the paper stopped RMSProp + Sigmoid
REFERENCE_OPTIMIZER = "adam"
WARMUP_FRACTION = 0.2
CHECK_EVERY_S = 1.0
Echo = Callable[[str], None]


def full_epochs() -> int:
    """The tuned default of `pinnprov train` (pinn.config.TrainConfig.epochs)."""
    from pinn.config import TrainConfig

    return int(TrainConfig.__dataclass_fields__["epochs"].default)


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

    @property
    def warmup_epochs(self) -> int:
        return max(1, int(self.epochs * WARMUP_FRACTION))

    def points(self) -> list[GridPoint]:
        # Optimizer first: with two processes the RMSProp runs train side by side, as in the paper's comparison.
        axes = {"optimizer": ",".join(self.optimizers), "activation": ",".join(self.activations), **self.extra_axes}
        return expand(axes, ["--epochs", str(self.epochs), *self.train_args])


@dataclass
class SteeringDecision:
    """What the driver decided, and why; `outcome` is filled in from the store after the run ended."""

    run_name: str = ""
    run_id: str = ""
    epoch: int = -1
    loss: float = math.nan
    compared: str = ""
    command_id: str = ""
    agent: str = ""
    reason: str = ""
    at: float = 0.0
    note: str = ""  # when no decision could be taken, why


class StopWorstRmsprop:
    """Sweep monitor: one query of the store per second until the decision is taken (then it costs nothing)."""

    def __init__(self, plan: PaperPlan, view: StoreView, echo: Echo) -> None:
        self.plan, self.view, self.echo = plan, view, echo
        self.decision = SteeringDecision()
        self.done = False
        self._last_check = 0.0

    def __call__(self, sweep: Sweep) -> None:
        if self.done or time.monotonic() - self._last_check < CHECK_EVERY_S:
            return
        self._last_check = time.monotonic()
        steered = [run for run in sweep.runs if run.point.as_dict().get("optimizer") == STEERED_OPTIMIZER]
        running = [run for run in steered if run.status == "running"]
        if not running:
            if steered and all(run.status not in ("pending", "running") for run in steered):
                self._give_up(f"no {STEERED_OPTIMIZER} run was still running after its warm-up")
            elif not steered:
                self._give_up(f"the grid has no {STEERED_OPTIMIZER} run")
            return
        progress = self.view.progress(self.plan.experiment) if self.view.exists() else {}
        # Still training according to the store (a process may still be scoring after its last epoch).
        training = [run for run in running if run.run_name not in progress
                    or progress[run.run_name].status == "running"]
        if not training:
            return  # the processes are finishing; the next check sees them ended
        if any(run.run_name not in progress or progress[run.run_name].epoch < self.plan.warmup_epochs
               for run in training):
            return  # wait until every running candidate is past the warm-up: compare like with like
        target = max(training, key=lambda run: _loss_key(progress[run.run_name].loss))
        self._stop(target, progress[target.run_name].epoch, progress[target.run_name].loss, sweep.runs, progress)

    def _give_up(self, note: str) -> None:
        self.done, self.decision.note = True, note
        self.echo(f"steering: {note}; nothing to stop")

    def _stop(self, target: SweepRun, epoch: int, loss: float, runs: Sequence[SweepRun], progress: dict) -> None:
        from contract.steering import new_command, user_agent

        compared = self._reference(epoch, runs, progress)
        reason = (f"pinnprov paper: worst latest total loss L={loss:.4g} at epoch {epoch} among the running "
                  f"{STEERED_OPTIMIZER} runs after a warm-up of {self.plan.warmup_epochs} epochs" +
                  (f"; {compared}" if compared else ""))
        command = new_command("stop", agent=user_agent(), reason=reason)
        info = self.view.find_run(target.run_name)
        self.done = True
        if info is None:
            self.decision.note = f"{target.run_name} is not in the store; nothing stopped"
            return
        try:
            self.view.steer(info.run_id, command)
        except ValueError as error:  # it ended between the query and the command
            self.decision.note = f"could not stop {target.run_name}: {error}"
            self.echo(f"steering: {self.decision.note}")
            return
        self.decision = SteeringDecision(target.run_name, info.run_id, epoch, loss, compared, command.command_id,
                                         command.agent, reason, time.time())
        self.echo(f"steering: stop {target.run_name} ({reason})")

    def _reference(self, epoch: int, runs: Sequence[SweepRun], progress: dict) -> str:
        """The best reference-optimizer run's loss at the same epoch, from the `epochs` query (if it got there)."""
        best: tuple[float, str] | None = None
        for run in runs:
            if run.point.as_dict().get("optimizer") != REFERENCE_OPTIMIZER or run.run_name not in progress:
                continue
            if progress[run.run_name].epoch < epoch:
                continue
            table = self.view.query("epochs", run=run.run_name, from_epoch=epoch, to_epoch=epoch)
            if table.rows:
                loss = table.rows[0][table.columns.index("loss")]
                if loss is not None and (best is None or loss < best[0]):
                    best = (float(loss), run.run_name)
        return f"best {REFERENCE_OPTIMIZER} run {best[1]} had L={best[0]:.4g} at that epoch" if best else ""


def _loss_key(loss: float) -> float:
    return math.inf if not math.isfinite(loss) else loss  # a diverged run is the worst


@dataclass
class PaperOutcome:
    plan: PaperPlan
    runs: list[SweepRun]
    decision: SteeringDecision
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
    monitor = StopWorstRmsprop(plan, view, echo)
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
    return PaperOutcome(plan, runs, monitor.decision, baseline_dir if code == 0 else None, error, started,
                        time.time() - started)
