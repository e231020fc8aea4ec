"""A sweep on a Dask cluster: one task per configuration, each needing one worker resource (GPU=1 or CPU=1).

Workers pull the next configuration when they are free (one per GPU, started by the Ansible trainer role), so a
fast GPU never idles while a slow one still has a backlog, and anything that can reach the scheduler can submit.
The driver watches the tasks, prints progress from the store and decides what a lost worker means:

- the attempt it was running is marked failed in the store with the reason ("worker ... lost during the run");
- the configuration is trained again on another worker as a *new* run (NAME-r1, NAME-r2, ...), and the store
  records `retry_of` from the new run to the failed one (PROV wasInformedBy, pinnprov/store/run_relations.py).

Dask itself may re-run a task whose worker died (`distributed.scheduler.allowed-failures`); such a re-run finds
its attempt's ticket gone and returns at once (pinnprov/experiments/dask_task.py), so a run name is trained once.
"""

from __future__ import annotations

import contextlib
import getpass
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pinnprov.experiments.dask_task import AttemptResult, AttemptSpec, attempt_names, run_attempt, task_resources
from pinnprov.experiments.storeview import StoreView
from pinnprov.experiments.sweep import SweepSpec
from pinnprov.experiments.sweep_outcome import (
    Attempt,
    Echo,
    SweepRun,
    echo_progress,
    finalise_exit,
    lookup,
    mark_failed,
)

DEFAULT_MAX_RETRIES = 2


@dataclass
class _Pending:
    """The driver's handle on a submitted attempt."""

    future: Any
    ticket: str
    retry_of: str = ""  # run id of the failed attempt this one repeats


class DaskSweep:
    """Submits the spec's configurations to `client`; `run()` returns when every configuration has ended."""

    def __init__(self, spec: SweepSpec, view: StoreView, client: Any, *, resource: str = "GPU",
                 max_retries: int = DEFAULT_MAX_RETRIES, echo: Echo = print) -> None:
        if max_retries < 0:
            raise ValueError(f"--max-retries: must be at least 0, got {max_retries}")
        self.spec, self.view, self.client, self.echo = spec, view, client, echo
        self.resources = task_resources(resource)
        self.max_retries = max_retries
        self.runs = [SweepRun(point=p, run_name=spec.run_name(p), log_path=spec.out_dir / "logs" /
                              f"{spec.run_name(p)}.log") for p in spec.points]
        self._pending: dict[int, _Pending] = {}
        # Not yet submitted: (index, retry_of). Dask assigns resource-restricted tasks to workers as soon as they
        # are submitted (no scheduler-side queue for them), which makes a static split again; so the driver keeps
        # the backlog and submits one task per free resource unit: a worker that finishes gets the next run.
        self._backlog: list[tuple[int, str]] = [(index, "") for index in range(len(self.runs))]
        self._waiting_said = False
        self._last_progress_at = 0.0
        self.agent = f"sweep:{getpass.getuser()}"

    # --- lifecycle ---------------------------------------------------------------------------------
    def run(self, monitor: Callable[[DaskSweep], None] | None = None, poll_s: float = 0.5) -> list[SweepRun]:
        self.echo(f"{len(self.runs)} task(s) needing {self._resource_text()} each, submitted to "
                  f"{self.client.scheduler.address} as workers become free")
        try:
            while self._pending or self._backlog:
                self._fill()
                self._watch()
                self._progress()
                if monitor is not None:
                    monitor(self)
                time.sleep(poll_s)
        except KeyboardInterrupt:
            self._interrupt()
            raise
        return self.runs

    def running(self) -> list[SweepRun]:
        return [run for run in self.runs if run.status == "running"]

    def _resource_text(self) -> str:
        return ", ".join(f"{name}={value:g}" for name, value in self.resources.items())

    # --- submission ----------------------------------------------------------------------------------
    def _fill(self) -> None:
        """Submit from the backlog while the cluster has free units of the resource (re-read every poll)."""
        if not self._backlog:
            return
        from pinnprov.experiments.dask_client import offered

        try:
            _, units = offered(self.client, next(iter(self.resources)))
        except Exception:  # noqa: BLE001 - the scheduler is busy; the next poll tries again
            return
        if units == 0 and not self._pending and not self._waiting_said:
            self.echo(f"(waiting for a worker offering {self._resource_text()})")
            self._waiting_said = True
        while self._backlog and len(self._pending) < units:
            index, retry_of = self._backlog.pop(0)
            self._submit(index, retry_of)

    def _submit(self, index: int, retry_of: str = "") -> None:
        from distributed import Queue

        run = self.runs[index]
        ticket = f"pinnprov-ticket-{uuid.uuid4().hex}"
        Queue(ticket, client=self.client).put(1)  # type: ignore[no-untyped-call]  # exactly one execution of this attempt may train
        spec = AttemptSpec(run_name=run.run_name, experiment=self.spec.experiment,
                           train_args=tuple(run.point.train_args()), out_dir=str(self.spec.out_dir), ticket=ticket,
                           store=self.spec.store, otlp_endpoint=self.spec.otlp_endpoint or "",
                           resume_from=run.attempts[-1].run_name if retry_of and run.attempts else "")
        future = self.client.submit(run_attempt, spec, key=f"pinnprov-{run.run_name}-{uuid.uuid4().hex[:8]}",
                                    resources=self.resources, pure=False, retries=0)
        self._pending[index] = _Pending(future, ticket, retry_of)
        run.status, run.worker, run.started_at, run.ended_at, run.returncode = "pending", "", 0.0, 0.0, None

    # --- watching ------------------------------------------------------------------------------------
    def _watch(self) -> None:
        where = self._processing()
        for index, pending in list(self._pending.items()):
            run = self.runs[index]
            worker = where.get(pending.future.key)
            if run.status == "pending" and worker:
                run.status, run.worker, run.started_at = "running", worker, time.time()
                self.echo(f"[{run.run_name}] started on {worker}")
            status = pending.future.status
            if status == "finished":
                self._finished(index, pending, pending.future.result())
            elif status == "error":
                self._errored(index, pending, pending.future.exception())
            elif status in ("cancelled", "lost"):
                self._lost(index, pending, f"task {status}")

    def _processing(self) -> dict[str, str]:
        """Task key -> worker address of every task a worker is running now."""
        try:
            by_worker = self.client.processing()
        except Exception:  # noqa: BLE001 - the scheduler is busy or restarting; the next poll sees it
            return {}
        return {key: worker for worker, keys in by_worker.items() for key in keys}

    def _finished(self, index: int, pending: _Pending, result: AttemptResult) -> None:
        run = self.runs[index]
        if result.status == "superseded":  # Dask re-ran the task of a lost worker: this attempt is over
            self._lost(index, pending, "the scheduler re-ran the task after its worker left")
            return
        del self._pending[index]
        run.returncode, run.ended_at = result.returncode, time.time()
        run.worker = result.worker or run.worker
        run.started_at = run.started_at or result.started_at
        blind = bool(self.spec.otlp_endpoint) and not self.view.exists()
        finalise_exit(self.view, self.spec.experiment, run, self.echo, blind=blind, error_line=result.error or "")
        if pending.retry_of and run.run_id:
            self.view.record_retry(run_id=run.run_id, failed_run_id=pending.retry_of, agent=self.agent,
                                   reason=f"{run.run_name} re-trains the configuration of the failed attempt")

    def _errored(self, index: int, pending: _Pending, error: BaseException | None) -> None:
        from distributed import KilledWorker

        if isinstance(error, KilledWorker):  # the scheduler gave up after the worker(s) running it died
            self._lost(index, pending, f"KilledWorker: {error}")
            return
        del self._pending[index]  # the task itself raised on the worker (e.g. pinnprov missing there)
        run = self.runs[index]
        run.ended_at = time.time()
        self._record_failure(run, f"the task raised on {run.worker or 'its worker'}: {type(error).__name__}: {error}")
        self.echo(f"[{run.run_name}] failed: {run.error}")

    def _record_failure(self, run: SweepRun, error: str) -> None:
        if self.spec.otlp_endpoint and not self.view.exists():
            run.status, run.error = "failed", error  # blind: the collector's store is not readable from here
        else:
            mark_failed(self.view, self.spec.experiment, run, error)

    def _lost(self, index: int, pending: _Pending, detail: str) -> None:
        """The worker running this attempt left: the attempt failed; train the configuration again."""
        del self._pending[index]
        run = self.runs[index]
        run.ended_at = time.time()
        error = f"worker {run.worker or '(unknown)'} lost during the run ({detail})"
        self._record_failure(run, error)
        self.echo(f"[{run.run_name}] failed after {run.elapsed_s:.0f} s: {error}")
        run.attempts.append(Attempt(run.run_name, run.run_id, error, run.worker))
        if len(run.attempts) > self.max_retries:
            self.echo(f"[{run.run_name}] not retried: {len(run.attempts)} attempt(s) lost (--max-retries "
                      f"{self.max_retries})")
            return
        failed_id = run.run_id
        run.run_name = attempt_names(self.spec.run_name(run.point), len(run.attempts) + 1)[-1]
        run.log_path = self.spec.out_dir / "logs" / f"{run.run_name}.log"
        run.run_id, run.error, run.last_progress = "", "", ""
        run.status = "pending"
        self._backlog.insert(0, (index, failed_id))  # first in line for the next free worker
        self.echo(f"[{run.run_name}] submitted again (retry {len(run.attempts)} of {run.attempts[0].run_name})")

    def _progress(self) -> None:
        now = time.monotonic()
        if now - self._last_progress_at < self.spec.progress_every_s:
            return
        self._last_progress_at = now
        echo_progress(self.view, self.spec.experiment, self.running(), self.echo)

    def _interrupt(self) -> None:
        """Ctrl-C: queued configurations are cancelled; running ones are asked to stop through the store."""
        from pinnprov.core.steering import new_command

        self.echo("interrupted: cancelling the queued configurations and stopping the running ones")
        for index, _ in self._backlog:
            self.runs[index].status = "skipped"
            self.runs[index].error = "sweep interrupted before this configuration started"
        self._backlog.clear()
        for index, pending in list(self._pending.items()):
            run = self.runs[index]
            if run.status == "pending":
                pending.future.cancel()
                run.status, run.error = "skipped", "sweep interrupted before this configuration started"
                continue
            info = lookup(self.view, run.run_name)
            if info is not None:
                with contextlib.suppress(ValueError):  # it ended meanwhile
                    self.view.steer(info.run_id, new_command("stop", agent=self.agent, reason="sweep interrupted"))
