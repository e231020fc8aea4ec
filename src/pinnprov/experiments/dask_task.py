"""What a Dask worker runs for one configuration of a sweep: one `pinnprov train` process, start to end.

Imported by the workers (pinnprov is installed on every node), never by the scheduler. Why a subprocess and not
training inside the worker: each run gets its own TensorFlow pinned to one thread and its own GPU memory, which a
long-lived worker process would otherwise keep between runs, and a crash takes down one run, not the worker.

Two guards make "a worker lost mid-run" mean exactly one failed attempt:
- the training process gets SIGKILL when the worker dies (Linux PR_SET_PDEATHSIG), so no orphan keeps training
  and writing under the attempt's name;
- an attempt runs only with its ticket, taken from a Dask queue that holds exactly one: when the scheduler
  re-runs a task whose worker died (`distributed.scheduler.allowed-failures`), the re-run finds no ticket and
  returns "superseded" at once, and the driver starts a new attempt under a new run name instead.
"""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

RUNS_DIR_ENV = "PINNPROV_RUNS_DIR"  # set on cluster workers (Ansible): outputs stay on the node's disk
TICKET_WAIT_S = 10.0
_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class AttemptSpec:
    """One attempt of one configuration, as the driver submits it."""

    run_name: str
    experiment: str
    train_args: tuple[str, ...]
    out_dir: str  # used unless the worker sets PINNPROV_RUNS_DIR
    ticket: str  # name of the Dask queue holding this attempt's single ticket ("" = no ticket check)
    store: str = ""  # the driver's store: used when the worker exports nowhere else (local clusters)
    otlp_endpoint: str = ""  # explicit collector for every run (wins over the worker's own)
    environment: Mapping[str, str] = field(default_factory=dict)
    resume_from: str = ""  # run name of the lost attempt this one repeats: resume from its last checkpoint if shared


@dataclass(frozen=True)
class AttemptResult:
    run_name: str
    status: str  # exited | superseded
    returncode: int | None = None
    error: str = ""
    host: str = ""
    worker: str = ""
    started_at: float = 0.0
    ended_at: float = 0.0
    log_path: str = ""


def _die_with_parent() -> None:
    """Child side of fork: get SIGKILL when the worker thread that started us dies (Linux only)."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except OSError:  # not glibc Linux: the driver's failure marking still holds
        pass
    os.setsid()  # its own process group, so a stop reaches the whole run


def destination_args(spec: AttemptSpec, environ: Mapping[str, str]) -> list[str]:
    """Where the run's telemetry goes: the driver's collector, else the worker's own, else the driver's store."""
    if spec.otlp_endpoint:
        return ["--otlp-endpoint", spec.otlp_endpoint]
    if environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        return []  # a cluster worker: its environment points at the collector (with the token header)
    return ["--store", spec.store] if spec.store else []


def train_command(spec: AttemptSpec, out_dir: Path, environ: Mapping[str, str]) -> list[str]:
    command = [sys.executable, "-m", "pinnprov", "train", *spec.train_args]
    command += ["--experiment", spec.experiment, "--run-name", spec.run_name, "--threads", "1", "--no-progress"]
    command += ["--out", str(out_dir / spec.run_name), *destination_args(spec, environ)]
    command += resume_args(spec, out_dir)
    return command


def resume_args(spec: AttemptSpec, out_dir: Path) -> list[str]:
    """`--resume` from the lost attempt's last checkpoint when this worker sees it (a shared runs folder): a retry
    then continues instead of starting again from epoch 0, and its run start records resumed_from."""
    if not spec.resume_from:
        return []
    from pinnprov.pinn.checkpoints import latest_in

    checkpoints = out_dir / spec.resume_from / "checkpoints"
    if latest_in(checkpoints) is None:
        return []
    return ["--resume", str(checkpoints), "--resume-agent", "sweep:retry"]


def _take_ticket(name: str) -> bool:
    from distributed import Queue

    try:
        Queue(name).get(timeout=TICKET_WAIT_S)  # type: ignore[no-untyped-call]
    except TimeoutError:
        return False
    return True


def _worker_address() -> str:
    try:
        from distributed import get_worker

        return str(get_worker().address)
    except ValueError:  # called outside a worker (tests of the function itself)
        return ""


def _last_line(path: Path) -> str:
    try:
        lines = [line.strip() for line in path.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return ""
    return lines[-1][:500] if lines else ""


def child_environment(extra: Mapping[str, str], environ: Mapping[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ if environ is None else environ)
    env.update(OMP_NUM_THREADS="1", TF_NUM_INTRAOP_THREADS="1", TF_NUM_INTEROP_THREADS="1", PYTHONUNBUFFERED="1")
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    env.update(extra)
    return env


def run_attempt(spec: AttemptSpec) -> AttemptResult:
    """Train one attempt on this worker; returns how the process ended (never raises for a failed run)."""
    worker = _worker_address()
    if spec.ticket and not _take_ticket(spec.ticket):
        return AttemptResult(spec.run_name, "superseded", worker=worker, host=socket.gethostname())
    out_dir = Path(os.environ.get(RUNS_DIR_ENV) or spec.out_dir)
    log_path = out_dir / "logs" / f"{spec.run_name}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    command = train_command(spec, out_dir, os.environ)
    started = time.time()
    with log_path.open("wb") as log:
        log.write(("$ " + " ".join(command) + "\n").encode())
        log.flush()
        process = subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
            command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env=child_environment(spec.environment), preexec_fn=_die_with_parent,  # noqa: PLW1509
        )
        try:
            code = process.wait()
        except BaseException:  # the task was cancelled: stop the run cleanly, as Ctrl-C would
            process.send_signal(signal.SIGINT)
            process.wait(30)
            raise
    error = "" if code == 0 else f"{_last_line(log_path) or 'no output'} " + (
        f"(killed by signal {-code})" if code < 0 else f"(exit status {code})")
    return AttemptResult(spec.run_name, "exited", code, error, socket.gethostname(), worker, started, time.time(),
                         str(log_path))


def task_resources(kind: str) -> dict[str, float]:
    """The worker resource one run needs: GPU=1 on GPU workers, CPU=1 on CPU workers."""
    if kind not in ("GPU", "CPU"):
        raise ValueError(f"--resource: expected GPU or CPU, got {kind!r}")
    return {kind: 1.0}


def attempt_names(base: str, attempts: int) -> Sequence[str]:
    """Run names of the first `attempts` attempts: the configuration's name, then NAME-r1, NAME-r2, ..."""
    return [base] + [f"{base}-r{n}" for n in range(1, attempts)]
