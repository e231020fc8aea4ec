"""The run API: provenance and steering for a training loop that pinnprov does not run (`pinnprov.start_run`).

    with pinnprov.start_run(name="site-3", experiment="tomo", hyperparameters={"lr": 1e-3}, store=url) as run:
        for epoch in range(n):
            ...
            run.log_epoch(epoch, loss=L, loss_bc=L_bc, loss_residual=L_r, loss_data=L_d, learning_rate=lr)
            for command in run.commands():   # stop / set_lr / scale_lr / set_weight
                ...apply it...; command.applied()   # or command.refused("why")

`Run` turns these calls into the trainer's observer events (pinnprov/pinn/observer.py), so a custom loop is
recorded through the one capture path `pinnprov train` and the Keras callback use. Decisions:

- Hand-off only on the calling thread: `log_epoch` reads values that are not Python numbers (a tensor, a
  `tf.Variable` learning rate) once, so later changes cannot leak into the epoch, and appends one tuple to a
  deque. A worker thread validates the values, builds the events and calls the observers in batches (every
  `flush_interval_s`); the OpenTelemetry spans are built there, the export runs on the SDK's own threads.
- Never raises into training: a value that is not a finite number (NaN, inf, a string, a vector) is counted in
  `dropped` (by name in `dropped_by_name`) and logged once per name. A loss or learning rate that is NaN or
  infinite is still handed on as such, since it says the loss diverged (the store keeps NULL and names it in its
  `nonfinite` column); a value that is no number at all is recorded as "not measured" (NaN); a bad extra is left
  out. An epoch number that is not an integer >= 0 drops the epoch (`dropped_epochs`).
- Epoch times: an epoch ends when `log_epoch` is called and starts when the previous one ended (the first one
  when the run started), so the recorded epoch time covers the whole loop iteration.
- Steering: the worker polls the command source; `commands()` only takes what it has fetched (no I/O, no wait).
  `applied()` records the change as an adaptation with the command's agent, reason and id, exactly as the
  trainer's own steering does, and acknowledges the command; `refused(why)` acknowledges it as refused. A command
  neither applied nor refused by the end of the run is refused then. An applied `stop` sets `should_stop` and
  ends the run as `stopped`.
- End: leaving the `with` block ends the run (`completed`, or `stopped` after an applied stop); an exception
  inside it ends the run as `failed` with the exception named, and is re-raised. A process that exits without
  ending the run ends it as `failed` at exit, so what was logged is still delivered.
"""

from __future__ import annotations

import atexit
import logging
import math
import operator
import os
import threading
import time
import weakref
from collections import Counter, deque
from collections.abc import Callable, Mapping, Sequence
from types import TracebackType
from typing import Any

from pinnprov.core.steering import CommandKind, SteeringCommand
from pinnprov.pinn.observer import (
    Adapted,
    DatasetIdentity,
    EpochEnded,
    HyperparameterValue,
    ObserverFanout,
    RunEnded,
    RunStarted,
    RunStatus,
    TrainingObserver,
)
from pinnprov.pinn.runinfo import new_run_id
from pinnprov.pinn.steering import CommandSource, NoCommands

log = logging.getLogger(__name__)

__all__ = ["Run", "RunCommand", "dataset_identity"]

DEFAULT_FLUSH_INTERVAL_S = 0.05
_NAN = float("nan")
_PLAIN = frozenset((float, int))
_MAX_EPOCH = 2**31 - 1  # the store's epoch column is a 32-bit integer; the collector refuses larger ones

# queue item tags (the first element of each queued tuple)
_EPOCH, _ADAPT, _ACK, _END = 0, 1, 2, 3


class _Unreadable:
    """A value that could not be read as one number on the calling thread (counted on the worker)."""

    __slots__ = ("kind",)

    def __init__(self, kind: str) -> None:
        self.kind = kind


def _snapshot(value: object) -> object:
    """The value as it is now: tensors and variables are read once (a later assignment must not leak in)."""
    if value is None or isinstance(value, str | bytes | bool):
        return value  # rejected on the worker; never float("1.5")
    try:
        return float(value)  # type: ignore[arg-type]
    except Exception:  # noqa: BLE001 - a vector, an object without __float__: dropped, never raised
        return _Unreadable(type(value).__name__)


def dataset_identity(dataset: str | Mapping[str, Any] | DatasetIdentity | None) -> DatasetIdentity:
    """A run's data set identity from a name, a mapping (name, sha256, source, picks) or a DatasetIdentity.

    Raises ValueError for a mapping with unknown keys or a negative pick count (checked before the run starts).
    """
    if dataset is None:
        return DatasetIdentity(name="", sha256="", picks=0, source="")
    if isinstance(dataset, DatasetIdentity):
        return dataset
    if isinstance(dataset, str):
        return DatasetIdentity(name=dataset, sha256="", picks=0, source="")
    if isinstance(dataset, Mapping):
        unknown = set(dataset) - {"name", "sha256", "source", "picks"}
        if unknown:
            raise ValueError(f"dataset: unknown key(s) {', '.join(sorted(map(str, unknown)))} "
                             "(expected name, sha256, source, picks)")
        picks = int(dataset.get("picks", 0) or 0)
        if picks < 0:
            raise ValueError(f"dataset: picks must be >= 0, got {picks}")
        return DatasetIdentity(name=str(dataset.get("name", "") or ""), sha256=str(dataset.get("sha256", "") or ""),
                               picks=picks, source=str(dataset.get("source", "") or ""))
    raise ValueError(f"dataset: expected a name, a mapping or a DatasetIdentity, got {type(dataset).__name__}")


def _scalar(value: object, *, finite: bool = True) -> HyperparameterValue | None:
    """A hyperparameter or adaptation value as str | int | float | bool (NumPy and framework scalars and 0-d
    tensors as a float); None if it is none of them, or (with `finite`) a NaN or infinite float."""
    if isinstance(value, bool | str | int):
        return value
    if not isinstance(value, float):
        item = getattr(value, "item", None)  # NumPy and PyTorch scalars keep their int/bool type
        try:
            value = item() if callable(item) else value
        except Exception:  # noqa: BLE001
            return None
        if isinstance(value, bool | str | int):
            return value
        value = _snapshot(value)
        if not isinstance(value, float):
            return None
    return value if math.isfinite(value) or not finite else None


class RunCommand:
    """One pending steering command, as `Run.commands()` hands it out: apply it, then call `applied()` or
    `refused(why)` (once; later calls are ignored). Attributes are those of the SteeringCommand."""

    __slots__ = ("_answered", "_lock", "_run", "command")

    def __init__(self, run: Run, command: SteeringCommand) -> None:
        self._run = run
        self.command = command
        self._answered = False
        self._lock = threading.Lock()

    @property
    def kind(self) -> CommandKind:
        """stop | set_lr | scale_lr | set_weight"""
        return self.command.kind

    @property
    def value(self) -> float:
        """The new learning rate (set_lr), the factor (scale_lr) or the new weight (set_weight)."""
        return self.command.value

    @property
    def parameter(self) -> str:
        """For set_weight: the loss term (residual, boundary or data)."""
        return self.command.parameter

    @property
    def agent(self) -> str:
        """Who asked: user:<login>, rule:<name>, ..."""
        return self.command.agent

    @property
    def reason(self) -> str:
        return self.command.reason

    @property
    def command_id(self) -> str:
        return self.command.command_id

    def __repr__(self) -> str:
        return f"RunCommand({self.kind!r}, value={self.value!r}, parameter={self.parameter!r}, agent={self.agent!r})"

    def _answer(self) -> bool:
        with self._lock:
            if self._answered:
                log.warning("steering command %s was already answered; ignoring the second answer", self.command_id)
                return False
            self._answered = True
            return True

    def applied(self, *, old_value: object = None, new_value: object = None, detail: str = "") -> None:
        """The loop applied the command: record the adaptation (the learning rate's old and new values default
        to the last logged rate and the one the command asks for) and acknowledge it as applied."""
        if self._answer():
            self._run._answer(self, True, detail, old_value, new_value)

    def refused(self, why: str = "") -> None:
        """The loop did not apply the command: acknowledge it as refused, with `why` as its detail."""
        if self._answer():
            self._run._answer(self, False, why or "refused by the training loop", None, None)

    @property
    def answered(self) -> bool:
        return self._answered


class Run:
    """One training run recorded through `observers` and steered through `commands` (see the module docstring).

    Made by `pinnprov.start_run`, which also opens the capture and the command source and closes them when the
    run ends (`on_close`). Use it as a context manager, or call `end()` once.
    """

    def __init__(
        self,
        observers: TrainingObserver | Sequence[TrainingObserver],
        commands: CommandSource | None = None,
        *,
        name: str,
        experiment: str = "default",
        hyperparameters: Mapping[str, object] | None = None,
        dataset: str | Mapping[str, Any] | DatasetIdentity | None = None,
        run_id: str | None = None,
        flush_interval_s: float = DEFAULT_FLUSH_INTERVAL_S,
        on_close: Callable[[], None] | None = None,
    ) -> None:
        if not name or not str(name).strip():
            raise ValueError("run name must not be empty")
        if not flush_interval_s > 0:
            raise ValueError(f"flush_interval_s must be > 0, got {flush_interval_s!r}")
        group = [observers] if isinstance(observers, TrainingObserver) else list(observers)
        self._fanout = ObserverFanout(group)  # one isolation rule for every event, epochs in batches included
        self._epochs: list[EpochEnded] = []  # built by the worker, not yet delivered
        self._source: CommandSource = commands if commands is not None else NoCommands()
        self._on_close = on_close
        self._interval = flush_interval_s
        self.run_id = run_id or new_run_id()
        self.name = str(name)
        self.experiment = str(experiment)
        # counters (written by the worker; final once the run has ended)
        self.epochs_logged = 0
        self.dropped = 0
        self.dropped_by_name: Counter[str] = Counter()
        self.dropped_epochs = 0
        self.should_stop = False  # set when a stop command is applied
        self._status: RunStatus | None = None
        self._summary: dict[str, object] = {}
        self._summary_lock = threading.Lock()
        self._commands_lock = threading.Lock()
        self._end_lock = threading.Lock()
        self._queue: deque[tuple[Any, ...]] = deque()
        self._inbox: deque[RunCommand] = deque()
        self._outstanding: dict[str, RunCommand] = {}
        self._wake = threading.Event()
        self._closing = False
        self._warned: set[str] = set()
        self._poll_failed = False
        # worker state
        self._last_epoch = -1
        self._last_lr = _NAN
        self._previous_end = 0.0

        hp: dict[str, HyperparameterValue] = {}
        for key, value in (hyperparameters or {}).items():
            scalar = _scalar(value)
            if scalar is None or not str(key):
                self._drop(f"hyperparameter {key}", value)
            else:
                hp[str(key)] = scalar
        identity = dataset_identity(dataset)
        started = time.time()
        self.started_at = self._previous_end = started
        self._fanout.on_run_start(RunStarted(self.run_id, self.name, self.experiment, started, hp, identity))
        self._worker = threading.Thread(target=self._work, name="pinnprov-run", daemon=True)
        self._worker.start()
        # A process that exits without ending the run still records what was logged (the run as failed).
        ref = weakref.ref(self)

        def end_at_exit() -> None:
            run = ref()
            if run is not None:
                run.end("failed", "the process exited before the run was ended")

        self._at_exit = end_at_exit
        atexit.register(end_at_exit)

    # --- the training loop's calls (any thread) -------------------------------------------------------------

    def log_epoch(
        self,
        epoch: int,
        loss: object = None,
        loss_bc: object = None,
        loss_residual: object = None,
        loss_data: object = None,
        learning_rate: object = None,
        **extras: object,
    ) -> None:
        """Record one finished epoch: L, L_BC, L_R, L_D, the learning rate and further scalars (`extras`).

        Costs the calling thread a hand-off; omitted components are "not measured" (stored as NULL)."""
        if self._closing:
            self.dropped_epochs += 1
            return
        plain = _PLAIN
        if type(loss) not in plain:
            loss = _snapshot(loss)
        if type(loss_bc) not in plain:
            loss_bc = _snapshot(loss_bc)
        if type(loss_residual) not in plain:
            loss_residual = _snapshot(loss_residual)
        if type(loss_data) not in plain:
            loss_data = _snapshot(loss_data)
        if type(learning_rate) not in plain:
            learning_rate = _snapshot(learning_rate)
        if extras:
            for key, value in extras.items():
                if type(value) not in plain:
                    extras[key] = _snapshot(value)
        self._queue.append((_EPOCH, epoch, time.time(), loss, loss_bc, loss_residual, loss_data, learning_rate, extras))

    def commands(self) -> list[RunCommand]:
        """The steering commands that arrived since the last call (never blocks; [] most of the time)."""
        if not self._inbox:
            return []
        with self._commands_lock:
            pending = list(self._inbox)
            self._inbox.clear()
        return pending

    def log_adaptation(self, parameter: str, old_value: object, new_value: object, *, agent: str = "trainer",
                       reason: str = "", epoch: int | None = None) -> None:
        """Record a change the loop made on its own (a schedule step, an optimiser switch): one adaptation.

        `epoch` is the first epoch the change affects (default: the one after the last logged epoch)."""
        if self._closing:
            return
        self._queue.append((_ADAPT, str(parameter), old_value, new_value, str(agent), str(reason), "", epoch,
                            time.time()))
        self._wake.set()

    def log_summary(self, metrics: Mapping[str, object] | None = None, **values: object) -> None:
        """Final metrics of the run (r2, rmse, ...), recorded with its end; later values of a name win."""
        try:
            with self._summary_lock:
                self._summary.update(metrics or {})
                self._summary.update(values)
        except (TypeError, ValueError) as error:  # not a mapping: counted, never raised into training
            self._drop("summary", _Unreadable(f"{type(metrics).__name__} ({error})"))

    def log_artifact(self, path: str | os.PathLike[str], role: str = "user", *, epoch: int | None = None) -> str:
        """Record a file the run produced (a saved model, a figure) as a PROV entity of this run: hashed now,
        generated by the run at `epoch` (default: epochs logged so far), derived from its data set. Call it while
        the run is open (inside `with start_run(...)`: its capture closes when the run ends). Returns the file's
        sha256 (what `pinnprov lineage FILE` looks up)."""
        from pinnprov.pinn.products import artifact_event

        if epoch is None:  # the epochs logged so far: let the worker hand over what is queued (a file is rare)
            self._wake.set()
            deadline = time.monotonic() + 2.0
            while self._queue and time.monotonic() < deadline:
                time.sleep(0.002)
            time.sleep(0.01)  # the last item popped may still be in hand
            epoch = self._last_epoch + 1
        event = artifact_event(self.run_id, os.fspath(path), role or "user", epoch)
        self._fanout.on_artifact(event)
        return event.sha256

    @property
    def stopped(self) -> bool:
        """True once a stop command was applied (the same as `should_stop`)."""
        return self.should_stop

    @property
    def status(self) -> RunStatus | None:
        """None while the run is open; completed | stopped | failed once it has ended."""
        return self._status

    # --- the end -------------------------------------------------------------------------------------------

    def __enter__(self) -> Run:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 tb: TracebackType | None) -> None:
        if kind is None:
            self.end()
        else:
            self.end("failed", f"{kind.__name__}: {error}")

    def end(self, status: RunStatus | None = None, error: str = "") -> None:
        """End the run (once; later calls do nothing): flush every logged event, answer unanswered commands,
        then close the capture and the command source. Default status: stopped after a stop, else completed."""
        with self._end_lock:
            if self._closing:
                return
            self._closing = True
        chosen: RunStatus = status or ("stopped" if self.should_stop else "completed")
        with self._commands_lock:
            unanswered = list(self._outstanding.values())
            self._inbox.clear()
        for command in unanswered:
            if not command.answered:
                command.refused("the run ended before the training loop applied it")
        with self._summary_lock:
            summary = dict(self._summary)
        self._queue.append((_END, chosen, error, summary))
        self._wake.set()
        self._worker.join()
        atexit.unregister(self._at_exit)
        self._status = chosen
        if self.dropped or self.dropped_epochs:
            log.warning("run %s: %d value(s) and %d epoch(s) were not recorded (not finite numbers): %s",
                        self.name, self.dropped, self.dropped_epochs, dict(self.dropped_by_name))
        if self._on_close is not None:
            self._on_close()

    # --- internals: the calling thread ---------------------------------------------------------------------

    def _answer(self, command: RunCommand, applied: bool, detail: str, old: object, new: object) -> None:
        if applied and command.kind == "stop":
            self.should_stop = True
        with self._commands_lock:
            self._outstanding.pop(command.command_id, None)
        self._queue.append((_ACK, command.command, applied, detail, old, new, time.time()))
        self._wake.set()

    # --- internals: the worker thread ----------------------------------------------------------------------

    def _work(self) -> None:
        while True:
            self._wake.wait(self._interval)
            self._wake.clear()
            try:
                done = self._drain()
                if not done:
                    self._poll()
            except Exception as error:  # noqa: BLE001 - the worker must outlive any bug in one event
                log.warning("run %s: capture worker error (continuing): %s: %s", self.name,
                            type(error).__name__, error)
                done = False
            if done:
                return

    def _drain(self) -> bool:
        """Handle every queued event in order; True once the run's end was handled."""
        queue = self._queue
        while queue:
            item = queue.popleft()
            tag = item[0]
            if tag == _EPOCH:
                self._epoch(item)
                continue
            self._flush_epochs()  # the epochs before this event reach the observers first
            if tag == _ADAPT:
                _, parameter, old, new, agent, reason, command_id, epoch, at = item
                self._adapt(parameter, old, new, agent, reason, command_id, epoch, at)
            elif tag == _ACK:
                self._acknowledge(*item[1:])
            else:
                _, status, error, summary = item
                numbers = {}
                for key, value in summary.items():
                    number = self._number(f"summary {key}", _snapshot(value))
                    if math.isfinite(number):
                        numbers[str(key)] = number
                self._fanout.on_run_end(RunEnded(status, time.time(), self.epochs_logged, error, numbers))
                return True
        self._flush_epochs()
        return False

    def _flush_epochs(self) -> None:
        """Hand the epochs built since the last flush to the observers, as one batch where they take one."""
        if self._epochs:
            batch, self._epochs = self._epochs, []
            self._fanout.deliver_epochs(batch, EPOCH_SLICE)

    def _drop(self, name: str, value: object) -> None:
        self.dropped += 1
        self.dropped_by_name[name] += 1
        if name not in self._warned:
            self._warned.add(name)
            shown = value.kind if isinstance(value, _Unreadable) else repr(value)[:80]
            log.warning("run %s: %s = %s is not a finite number; not recorded (counted in run.dropped; "
                        "further ones of this name are only counted)",
                        self.name, name, shown)

    def _number(self, name: str, value: object) -> float:
        """A float for a snapshot value; NaN (counted) for one that is no number. Non-finite floats are kept."""
        if value is None:
            return _NAN
        if type(value) is float or type(value) is int:
            try:
                number = float(value)
            except OverflowError:  # an int beyond the float range
                number = math.inf
            if not math.isfinite(number):
                self._drop(name, value)
            return number
        self._drop(name, value)
        return _NAN

    def _epoch(self, item: tuple[Any, ...]) -> None:
        _, epoch, ended, loss, loss_bc, loss_residual, loss_data, learning_rate, extras = item
        try:
            if isinstance(epoch, bool):
                raise TypeError("bool")
            number = operator.index(epoch)
            if not 0 <= number <= _MAX_EPOCH:
                raise ValueError("out of range")
        except (TypeError, ValueError):
            self.dropped_epochs += 1
            self._drop("epoch", epoch)
            return
        extra: dict[str, float] = {}
        for key, value in extras.items():
            if type(value) is float or type(value) is int:
                measured = self._number(key, value)
                if math.isfinite(measured):
                    extra[key] = measured
            else:
                self._drop(key, value)
        started = min(self._previous_end, ended)
        self._previous_end = ended
        lr = self._number("learning_rate", learning_rate)
        if not math.isnan(lr):
            self._last_lr = lr
        self._last_epoch = number
        self.epochs_logged += 1
        self._epochs.append(EpochEnded(
            epoch=number, started_at=started, ended_at=ended, elapsed_s=ended - started,
            loss=self._number("loss", loss), loss_bc=self._number("loss_bc", loss_bc),
            loss_residual=self._number("loss_residual", loss_residual),
            loss_data=self._number("loss_data", loss_data), learning_rate=lr, extra=extra,
        ))

    def _adapt(self, parameter: str, old: object, new: object, agent: str, reason: str, command_id: str,
               epoch: int | None, at: float) -> None:
        values = []
        for label, value in (("old", old), ("new", new)):
            scalar = _scalar(value, finite=False) if value is not None else ""
            if scalar is None:
                self._drop(f"adaptation {parameter} {label} value", value)
                scalar = str(value)[:200]
            values.append(scalar)
        first = self._last_epoch + 1 if epoch is None else max(0, int(epoch))
        self._fanout.on_adaptation(Adapted(
            epoch=first, at=at, parameter=parameter, old_value=values[0], new_value=values[1], agent=agent,
            reason=reason, command_id=command_id,
        ))

    def _acknowledge(self, command: SteeringCommand, applied: bool, detail: str, old: object, new: object,
                     at: float) -> None:
        if applied:
            parameter, default_old, default_new, text = self._change(command)
            old = default_old if old is None else old
            new = default_new if new is None else new
            self._adapt(parameter, old, new, command.agent, command.reason, command.command_id, None, at)
            detail = detail or text
        try:
            self._source.acknowledge(self.run_id, command, applied, detail)
        except Exception as error:  # noqa: BLE001 - steering never breaks training
            log.warning("run %s: steering acknowledge failed: %s", self.name, error)

    def _change(self, command: SteeringCommand) -> tuple[str, object, object, str]:
        """(adaptation parameter, old, new, detail) of an applied command, as the trainer records them."""
        first = self._last_epoch + 1
        if command.kind in ("set_lr", "scale_lr"):
            old = self._last_lr
            new = command.value if command.kind == "set_lr" else old * command.value
            return "learning_rate", old, new, f"learning rate {old:.6g} -> {new:.6g} from epoch {first}"
        if command.kind == "set_weight":
            return (f"loss_weight.{command.parameter}", None, command.value,
                    f"loss weight {command.parameter} -> {command.value:g} from epoch {first}")
        if command.kind == "stop":
            return "stop", False, True, f"stopping after epoch {first - 1}"
        return command.kind, None, command.value, "applied"

    def _poll(self) -> None:
        try:
            pending = self._source.poll(self.run_id, max(self._last_epoch, 0))
        except Exception as error:  # noqa: BLE001 - steering never breaks training
            if not self._poll_failed:
                self._poll_failed = True
                log.warning("run %s: steering poll failed (ignored; further failures not logged): %s",
                            self.name, error)
            return
        if not pending:
            return
        with self._commands_lock:
            if self._closing:  # fetched after end() answered the rest: the loop will never see these
                for command in pending:
                    self._acknowledge(command, False, "the run ended before the training loop applied it",
                                      None, None, time.time())
                return
            for command in pending:
                wrapped = RunCommand(self, command)
                self._outstanding[command.command_id] = wrapped
                self._inbox.append(wrapped)


EPOCH_SLICE = 16  # epochs per on_epochs_end call: the worker releases the GIL between slices
