"""How a sweep learns and records what became of a run, whoever launched it (a local process or a Dask worker).

The outcome comes from the store (the run's own end record), else from the exit status, and a run that died
before its telemetry could say so is marked failed in the store with its last error line. Progress lines are the
`latest` query (Table 2) of the running runs. Shared by the local process pool (sweep.py) and the Dask driver
(dask_sweep.py), so both print and record exactly the same things.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from pinnprov.experiments.grid import GridPoint
from pinnprov.experiments.storeview import FINISHED, RunInfo, StoreView

if TYPE_CHECKING:
    import subprocess

Echo = Callable[[str], None]
END_RECORD_WAIT_S = 10.0


@dataclass(frozen=True)
class Attempt:
    """An earlier attempt of a configuration that a lost worker ended (kept in the store as failed)."""

    run_name: str
    run_id: str
    error: str
    worker: str


@dataclass
class SweepRun:
    """One configuration's current attempt and outcome (earlier attempts in `attempts`)."""

    point: GridPoint
    run_name: str
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    ended_at: float = 0.0
    returncode: int | None = None
    status: str = "pending"  # pending | running | completed | stopped | failed | unknown | skipped
    error: str = ""
    run_id: str = ""
    worker: str = ""  # the Dask worker running it (empty for local processes)
    attempts: list[Attempt] = field(default_factory=list)
    last_progress: str = field(default="", repr=False)

    @property
    def elapsed_s(self) -> float:
        end = self.ended_at or time.time()
        return end - self.started_at if self.started_at else 0.0


def exit_reason(code: int) -> str:
    return f"killed by signal {-code}" if code < 0 else f"exit status {code}"


def last_error_line(log_path: Path) -> str:
    try:
        lines = [line.strip() for line in log_path.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return ""
    return lines[-1][:500] if lines else ""


def lookup(view: StoreView, run_name: str) -> RunInfo | None:
    try:
        return view.find_run(run_name)
    except FileNotFoundError:  # no run has reached the store yet
        return None


def mark_failed(view: StoreView, experiment: str, run: SweepRun, error: str) -> None:
    """Record `run` as failed with `error` (creating it in the store when it never got there)."""
    info = lookup(view, run.run_name)
    run.status, run.error = "failed", error
    run.run_id = view.mark_failed(run_name=run.run_name, experiment=experiment, started_at=run.started_at,
                                  error=error, hyperparameters=run.point.as_dict(),
                                  run_id=info.run_id if info else None)


def finalise_exit(view: StoreView, experiment: str, run: SweepRun, echo: Echo, *, blind: bool,
                  error_line: str | None = None) -> None:
    """The process of `run` exited with `run.returncode`: take its outcome from the store and report it.

    `blind`: runs sent to a collector whose store this machine cannot read, so the exit status is all we know.
    `error_line`: the last line of the run's log when the driver cannot read the log itself (remote workers).
    """
    code = run.returncode or 0
    line_of_log = error_line if error_line is not None else last_error_line(run.log_path)
    if blind:
        run.status = "completed" if code == 0 else "failed"
        run.error = "" if code == 0 else f"{line_of_log or 'no output'} ({exit_reason(code)})"
        note = " (from the exit status: give --store to read the collector's store)"
        echo(f"[{run.run_name}] {run.status} after {run.elapsed_s:.0f} s{note}" + (f": {run.error}" if run.error
                                                                                 else ""))
        return
    info = lookup(view, run.run_name)
    if code == 0 and (info is None or info.status not in FINISHED):
        # Through a collector the end record can trail the process's exit by a delivery cycle.
        deadline = time.monotonic() + END_RECORD_WAIT_S
        while time.monotonic() < deadline and (info is None or info.status not in FINISHED):
            time.sleep(0.5)
            info = lookup(view, run.run_name)
    run.run_id = info.run_id if info else ""
    if info is not None and info.status in FINISHED:
        run.status, run.error = info.status, info.error
    if code != 0 and run.status not in FINISHED:
        mark_failed(view, experiment, run, f"{line_of_log or 'no output'} ({exit_reason(code)})")
    elif run.status not in FINISHED:
        run.status, run.error = "unknown", "process exited 0 but the store has no end record for this run"
    line = f"[{run.run_name}] {run.status} after {run.elapsed_s:.0f} s"
    echo(line + (f": {run.error}" if run.status in ("failed", "unknown") else ""))


def echo_progress(view: StoreView, experiment: str, running: Sequence[SweepRun], echo: Echo) -> None:
    """One line per running run whose latest stored epoch changed since the last call."""
    try:
        progress = view.progress(experiment)
    except FileNotFoundError:
        return  # no run has reached the store yet
    except Exception as error:  # noqa: BLE001 - progress lines are a courtesy; the runs go on
        echo(f"(progress unavailable: {error})")
        return
    for run in running:
        row = progress.get(run.run_name)
        if row is None:
            continue
        line = (f"[{run.run_name}] epoch {row.epoch} loss {row.loss:.4g} "
                f"(residual {row.loss_residual:.3g}, data {row.loss_data:.3g})")
        if line != run.last_progress:
            run.last_progress = line
            echo(line)
