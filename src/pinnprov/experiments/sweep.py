"""Run a grid of configurations as parallel `pinnprov train` processes into one store under one experiment.

Why subprocesses: each run gets its own TensorFlow (pinned to one thread, which is faster for these small
networks than sharing a pool), a crash or an out-of-memory kill takes down one run only, and every run is
captured exactly as a user's `pinnprov train` would be. The driver reads progress back from the store (that is
what provenance is for), not from the children's output, so the same loop works for the paper driver's
steering decisions (`monitor`).

A run that dies before its provenance says how it ended (bad arguments, a crash before the first epoch, a
kill) is marked failed in the store by the driver, with its last error line, so the experiment's tables show
every configuration that was attempted.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from pinnprov.experiments.grid import GridPoint
from pinnprov.experiments.storeview import StoreView
from pinnprov.experiments.sweep_outcome import Echo, SweepRun, echo_progress, finalise_exit

__all__ = ["Echo", "Sweep", "SweepRun", "SweepSpec", "default_parallel", "new_name_tag", "train_command"]
STOP_GRACE_S = 30.0


def default_parallel(configurations: int) -> int:
    """As many processes as this process may use cores (each pinned to one TensorFlow thread)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, configurations))


@dataclass(frozen=True)
class SweepSpec:
    """What to run: grid points, where to store, how many at once, where the logs go."""

    experiment: str
    points: Sequence[GridPoint]
    store: str
    out_dir: Path  # each run writes its outputs to out_dir/<run name>, its log to out_dir/logs/<run name>.log
    parallel: int
    otlp_endpoint: str | None = None
    name_tag: str = ""  # suffix that keeps run names unique when an experiment is run again
    python: str = sys.executable
    progress_every_s: float = 5.0

    def run_name(self, point: GridPoint) -> str:
        tag = self.name_tag or "x"
        return f"{self.experiment}-{point.label}-{tag}"


def new_name_tag() -> str:
    return secrets.token_hex(2)


def train_command(spec: SweepSpec, point: GridPoint, run_name: str) -> list[str]:
    command = [spec.python, "-m", "pinnprov", "train", *point.train_args()]
    command += ["--experiment", spec.experiment, "--run-name", run_name, "--threads", "1", "--no-progress"]
    command += ["--out", str(spec.out_dir / run_name)]
    command += ["--otlp-endpoint", spec.otlp_endpoint] if spec.otlp_endpoint else ["--store", spec.store]
    return command


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    # One thread per process: faster for small networks and fair to the other runs (DESIGN.md).
    env.update(OMP_NUM_THREADS="1", TF_NUM_INTRAOP_THREADS="1", TF_NUM_INTEROP_THREADS="1")
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    env["PYTHONUNBUFFERED"] = "1"
    return env


class Sweep:
    """Launches, watches and finalises the runs of one spec; `run()` returns when every run has ended."""

    def __init__(self, spec: SweepSpec, view: StoreView, echo: Echo = print) -> None:
        if spec.parallel < 1:
            raise ValueError(f"--parallel: must be at least 1, got {spec.parallel}")
        self.spec = spec
        self.view = view
        self.echo = echo
        log_dir = spec.out_dir / "logs"
        log_dir.mkdir(parents=True, exist_ok=True)
        self.runs = [
            SweepRun(point=p, run_name=spec.run_name(p), log_path=log_dir / f"{spec.run_name(p)}.log")
            for p in spec.points
        ]
        self._last_progress_at = 0.0

    # --- lifecycle ---------------------------------------------------------------------------------
    def run(self, monitor: Callable[[Sweep], None] | None = None, poll_s: float = 0.5) -> list[SweepRun]:
        try:
            while True:
                self._reap()
                self._launch()
                if all(run.status not in ("pending", "running") for run in self.runs):
                    break
                self._progress()
                if monitor is not None:
                    monitor(self)
                time.sleep(poll_s)
        except KeyboardInterrupt:
            self.echo("interrupted: stopping the running configurations")
            self._interrupt()
            raise
        return self.runs

    def running(self) -> list[SweepRun]:
        return [run for run in self.runs if run.status == "running"]

    def _launch(self) -> None:
        free = self.spec.parallel - len(self.running())
        for run in [r for r in self.runs if r.status == "pending"][: max(0, free)]:
            command = train_command(self.spec, run.point, run.run_name)
            with run.log_path.open("wb") as log:
                log.write(("$ " + " ".join(command) + "\n").encode())
                log.flush()
                run.process = subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
                    command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=_child_env()
                )
            run.started_at = time.time()
            run.status = "running"
            self.echo(f"[{run.run_name}] started (pid {run.process.pid}, log {run.log_path})")

    def _reap(self) -> None:
        for run in self.running():
            assert run.process is not None
            code = run.process.poll()
            if code is None:
                continue
            run.returncode, run.ended_at = code, time.time()
            self._finalise(run)

    def _finalise(self, run: SweepRun) -> None:
        """Take the run's outcome from the store; record a failure the run itself could not record."""
        blind = bool(self.spec.otlp_endpoint) and not self.view.exists()
        finalise_exit(self.view, self.spec.experiment, run, self.echo, blind=blind)

    def _progress(self) -> None:
        now = time.monotonic()
        if now - self._last_progress_at < self.spec.progress_every_s:
            return
        self._last_progress_at = now
        echo_progress(self.view, self.spec.experiment, self.running(), self.echo)

    def _interrupt(self) -> None:
        for run in self.running():
            if run.process is not None and run.process.poll() is None:
                run.process.send_signal(signal.SIGINT)  # the trainer ends its run cleanly on SIGINT
        deadline = time.monotonic() + STOP_GRACE_S
        for run in self.running():
            if run.process is None:
                continue
            try:
                run.process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                run.process.kill()
                run.process.wait()
        self._reap()
        for run in self.runs:
            if run.status == "pending":
                run.status, run.error = "skipped", "sweep interrupted before this configuration started"
