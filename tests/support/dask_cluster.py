"""A real Dask cluster on loopback for the tests: `dask scheduler` and `dask worker` processes, as on Grid5000.

Port 0 everywhere (the scheduler writes its address to a scheduler file); workers without a nanny, so killing a
worker process kills the worker, as a node that crashes would. PYTHONPATH is the checkout, so the workers import
this branch's `pinnprov.experiments.dask_task`.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DASK = Path(sys.executable).parent / "dask"


def clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "PINNPROV_", "DASK_"))}
    env.update(PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="3", PYTHONUNBUFFERED="1")
    return env


@dataclass
class LocalDaskCluster:
    address: str
    scheduler: subprocess.Popen[bytes]
    workers: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def worker_pid(self, name: str) -> int:
        return self.workers[name].pid

    def kill(self, name: str) -> None:
        self.workers[name].send_signal(signal.SIGKILL)
        self.workers[name].wait(30)


def _wait_for_file(path: Path, process: subprocess.Popen[bytes], timeout_s: float = 60) -> dict[str, object]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"dask scheduler exited with {process.returncode}")
        if path.exists():
            try:
                return dict(json.loads(path.read_text()))
            except json.JSONDecodeError:
                pass  # being written
        time.sleep(0.2)
    raise TimeoutError(f"{path} not written within {timeout_s} s")


def _wait_for_workers(address: str, count: int, timeout_s: float = 90) -> None:
    from distributed import Client

    with Client(address, timeout=30, set_as_default=False) as client:
        client.wait_for_workers(count, timeout=timeout_s)


@contextmanager
def local_dask_cluster(tmp: Path, workers: dict[str, str]) -> Iterator[LocalDaskCluster]:
    """Scheduler + one worker per `workers` item (name -> resources, e.g. "CPU=1"); stopped on exit."""
    logs = tmp / "dask-logs"
    logs.mkdir(parents=True, exist_ok=True)
    scheduler_file = tmp / "scheduler.json"
    env = clean_env()
    scheduler = subprocess.Popen(  # noqa: S603 - the venv's own dask
        [str(DASK), "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard", "--scheduler-file",
         str(scheduler_file)], stdout=(logs / "scheduler.log").open("wb"), stderr=subprocess.STDOUT, env=env, cwd=tmp)
    cluster = LocalDaskCluster(address="", scheduler=scheduler)
    try:
        cluster.address = str(_wait_for_file(scheduler_file, scheduler)["address"])
        for name, resources in workers.items():
            cluster.workers[name] = subprocess.Popen(  # noqa: S603
                [str(DASK), "worker", cluster.address, "--name", name, "--nthreads", "1", "--nworkers", "1",
                 "--resources", resources, "--no-nanny", "--no-dashboard", "--death-timeout", "60",
                 "--local-directory", str(tmp / f"dask-{name}")],
                stdout=(logs / f"{name}.log").open("wb"), stderr=subprocess.STDOUT, env=env, cwd=tmp)
        _wait_for_workers(cluster.address, len(workers))
        yield cluster
    finally:
        for process in [*cluster.workers.values(), scheduler]:
            if process.poll() is None:
                process.terminate()
        for process in [*cluster.workers.values(), scheduler]:
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
