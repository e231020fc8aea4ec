"""ProvenanceCallback: the same provenance capture for any `model.fit` user.

The callback translates Keras' callback events into the trainer's observer events (`pinnprov.pinn.observer`), so
whatever observers `pinnprov.capture.open_capture` yields (embedded store, OTLP collector) record a Keras run
exactly like a `pinnprov train` run:

    model.fit(x, y, epochs=50, batch_size=32, callbacks=[ProvenanceCallback(store="sqlite:///runs.sqlite")])

Given capture settings (`store=`, `otlp_endpoint=`, ..., the keywords of `pinnprov.start_run`, or none at all:
the environment and defaults), the callback opens the capture and the matching steering command source when the
first `fit` begins; they are closed (everything delivered) when the `with` block of the callback ends, when
`close()` is called, or at exit. The settings are resolved when the callback is made, so a bad one fails before
training. Given `observers` (from `pinnprov.open_capture`, whose observer is the run API's hand-off) it records
into those, and steering comes from `commands=`:

    with open_capture(store="sqlite:///runs.sqlite") as observers, ProvenanceCallback(observers) as callback:
        model.fit(x, y, epochs=50, batch_size=32, callbacks=[callback])

Decisions:
- Loss components: `loss_components` maps Keras log keys to total | boundary | residual | data (default
  {"loss": "total"}). A component without a mapped key is recorded as NaN, i.e. "not measured" (the store
  keeps NULL); it is never invented as 0. Every other numeric log (val_loss, mae, ...) becomes an epoch extra.
- Hyperparameters come from the optimizer (class, learning rate or schedule parameters), `fit`'s epochs and
  steps per epoch, the model's parameter count, then the user's dict (which wins). Keras 3 does not tell
  callbacks the batch size: pass it as `hyperparameters={"batch_size": 32}`.
- A learning rate changed between epochs by another callback (ReduceLROnPlateau, LearningRateScheduler)
  is recorded as an adaptation; a LearningRateSchedule's continuous decay is not (it is a hyperparameter).
- Steering: given capture settings, from wherever the provenance goes (`steering=False` turns it off); or
  with `commands=` (a `pinnprov.pinn.steering.CommandSource`, e.g. `pinnprov.capture.steering_poller.
  command_source_for(store=...)`), pending commands are applied at each epoch end, after the epoch is
  reported: stop, set_lr and scale_lr apply (recorded as adaptations with the command's agent and id);
  set_weight is refused (Keras has no PINN loss weights), and so is an LR change under a
  LearningRateSchedule (it cannot be set). A failing source is logged once and ignored: it never breaks fit.
- End of run: `completed`, or `stopped` when a stop command or another callback set `model.stop_training`.
  Keras does not call `on_train_end` when `fit` raises, so a failure is recorded when the callback is used as a context
  manager (`with ... as callback:`), or at the latest when `on_train_begin` finds a run still open.
"""

from __future__ import annotations

import atexit
import logging
import math
import os
import re
import time
import uuid
from collections.abc import Mapping, Sequence
from contextlib import ExitStack, suppress
from pathlib import Path
from types import TracebackType
from typing import Any, Unpack

import keras

from pinnprov.capture.capture_settings import CaptureOptions, CaptureSettings, settings_from
from pinnprov.core.artifacts import ROLE_USER
from pinnprov.core.fields import LOSS_COMPONENTS, LOSS_FIELDS, epoch_field, hyperparameter
from pinnprov.core.steering import SteeringCommand
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
from pinnprov.pinn.runinfo import new_run_name
from pinnprov.pinn.steering import CommandSource

log = logging.getLogger(__name__)

COMPONENTS = LOSS_COMPONENTS  # total | boundary | residual | data: the loss fields of pinnprov/core/fields.py
_TOTAL = epoch_field("loss").component  # what Keras logs as "loss"
_NAN = float("nan")


# Hyperparameter names as the observer events carry them (pinnprov/core/fields.py: the `pinn.hp.*` suffixes).
HP_OPTIMIZER, HP_EPOCHS = hyperparameter("optimizer").name, hyperparameter("epochs").name
HP_SCHEDULE, HP_LR_INITIAL = hyperparameter("lr_schedule").name, hyperparameter("lr_initial").name
_SCHEDULE_KEYS = (("initial_learning_rate", HP_LR_INITIAL), ("decay_rate", hyperparameter("lr_decay_rate").name),
                  ("decay_steps", hyperparameter("lr_decay_steps").name),
                  ("staircase", hyperparameter("lr_staircase").name))


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _number(value: object) -> float | None:
    """A log value as a Python float; None for anything that is not one number (strings, vectors)."""
    try:
        return float(keras.ops.convert_to_numpy(value))
    except (TypeError, ValueError):
        return None


def _float(value: object) -> float:
    number = _number(value)
    return _NAN if number is None else number


class ProvenanceCallback(keras.callbacks.Callback):
    """Records a `model.fit` run through pinnprov's observers (see the module docstring for the choices)."""

    def __init__(
        self,
        observers: TrainingObserver | Sequence[TrainingObserver] | None = None,
        *,
        run_name: str | None = None,
        experiment: str = "default",
        hyperparameters: Mapping[str, HyperparameterValue] | None = None,
        dataset: DatasetIdentity | None = None,
        loss_components: Mapping[str, str] | None = None,
        commands: CommandSource | None = None,
        steering: bool = True,
        settings: CaptureSettings | None = None,
        **options: Unpack[CaptureOptions],
    ) -> None:
        super().__init__()
        # No observers: the callback opens the capture itself, from settings resolved now (a bad one fails here).
        if observers is not None and (settings is not None or options):
            raise TypeError("ProvenanceCallback: pass observers or capture settings, not both")
        self._settings = settings_from(settings, options) if observers is None else None
        self._steering = steering
        self._opened: ExitStack | None = None
        mapping = dict(loss_components) if loss_components is not None else {"loss": _TOTAL}
        for key, component in mapping.items():
            if component not in COMPONENTS:
                raise ValueError(f"loss_components[{key!r}]: {component!r} is not one of {', '.join(COMPONENTS)}")
        if _TOTAL not in mapping.values():
            mapping.setdefault("loss", _TOTAL)
        self._components = mapping
        group = [] if observers is None else [observers] if isinstance(observers, TrainingObserver) else list(observers)
        self._fanout = ObserverFanout(group)
        self._run_name = run_name
        self._experiment = experiment
        self._user_hp = dict(hyperparameters or {})
        self._dataset = dataset or DatasetIdentity(name="model.fit", sha256="", picks=0, source="keras")
        self.run_id: str | None = None  # of the current run
        self._last_run_id: str | None = None  # of the last run that ended (log_artifact after fit)
        self._epochs_done = 0
        self._epoch_started = 0.0
        self._epoch_clock = 0.0
        self._last_lr = _NAN
        self._scheduled_lr = False
        self._commands = commands
        self._steering_failed = False  # a failing source is logged once per callback

    # --- context manager: records failures that Keras does not report to callbacks --------------------------

    def __enter__(self) -> ProvenanceCallback:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        if self.run_id is not None and kind is not None:
            self._end("failed", f"{kind.__name__}: {error}")
        self.close()

    def close(self) -> None:
        """Deliver and close the capture this callback opened from capture settings (nothing otherwise)."""
        stack, self._opened = self._opened, None
        if stack is not None:
            atexit.unregister(stack.close)
            stack.close()

    def _open_capture(self, settings: CaptureSettings) -> None:
        """Open the capture and the matching command source, once, for this callback's fits."""
        from pinnprov.wiring import command_source_for, open_capture

        stack = ExitStack()
        try:
            observers = stack.enter_context(open_capture(settings))
            if self._steering and observers and self._commands is None:
                self._commands = stack.enter_context(command_source_for(settings))
        except BaseException:
            stack.close()
            raise
        self._fanout = ObserverFanout(observers)
        self._opened = stack
        atexit.register(stack.close)

    # --- products ---------------------------------------------------------------------------------------------

    def log_artifact(self, path: str | os.PathLike[str], role: str = ROLE_USER, *, epoch: int | None = None) -> str:
        """Record a file the current (or last) fit produced, e.g. `model.save("m.keras")`, as a PROV entity of
        its run: hashed now, generated by the run at `epoch` (default: epochs completed), derived from its data
        set. Returns the file's sha256 (what `pinnprov lineage FILE` looks up)."""
        run_id = self.run_id or self._last_run_id
        if run_id is None:
            raise ValueError("log_artifact: no run yet (call it during or after model.fit)")
        from pinnprov.pinn.products import artifact_event

        event = artifact_event(run_id, Path(path), role or ROLE_USER,
                               self._epochs_done if epoch is None else epoch)
        self._fanout.on_artifact(event)
        return event.sha256

    # --- Keras events -----------------------------------------------------------------------------------------

    def on_train_begin(self, logs: Mapping[str, Any] | None = None) -> None:
        if self.run_id is not None:
            self._end("failed", "model.fit raised before on_train_end (run recorded when the next fit began)")
        if self._settings is not None and self._opened is None:
            self._open_capture(self._settings)
        optimizer = getattr(self.model, "optimizer", None)
        hp = self._optimizer_hyperparameters(optimizer)
        hp[HP_EPOCHS] = int(self.params.get("epochs", 0) or 0)
        if self.params.get("steps"):
            hp["steps_per_epoch"] = int(self.params["steps"])
        with suppress(ValueError, AttributeError):  # an unbuilt model has no parameter count yet
            hp["network.parameters"] = int(self.model.count_params())
        hp.update(self._user_hp)
        self.run_id = uuid.uuid4().hex
        self._epochs_done = 0
        self._last_lr = self._current_lr()
        name = self._run_name or new_run_name(str(hp.get(HP_OPTIMIZER, "keras")), _snake(type(self.model).__name__))
        self._fanout.on_run_start(
            RunStarted(self.run_id, name, self._experiment, time.time(), hp, self._dataset)
        )

    def on_epoch_begin(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
        if self.run_id is None:
            return
        current = self._current_lr()
        if not self._scheduled_lr and current != self._last_lr and not math.isnan(self._last_lr):
            self._adapt(epoch, "learning_rate", self._last_lr, current, "trainer",
                        "learning rate changed between epochs by a Keras callback")
        self._last_lr = current
        self._epoch_started = time.time()
        self._epoch_clock = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
        if self.run_id is None:
            return
        elapsed = time.perf_counter() - self._epoch_clock
        values = dict.fromkeys(COMPONENTS, _NAN)
        extra: dict[str, float] = {}
        for key, value in (logs or {}).items():
            number = _number(value)
            if number is None:
                continue
            component = self._components.get(key)
            if component is not None:
                values[component] = number
            else:
                extra[key] = number
        self._last_lr = self._current_lr()
        self._fanout.on_epoch_end(EpochEnded(
            epoch=int(epoch), started_at=self._epoch_started, ended_at=self._epoch_started + elapsed,
            elapsed_s=elapsed, learning_rate=self._last_lr, extra=extra,
            **{field.name: values[field.component] for field in LOSS_FIELDS},
        ))
        self._epochs_done += 1
        if self._commands is not None:
            self._steer(int(epoch))

    def on_train_end(self, logs: Mapping[str, Any] | None = None) -> None:
        if self.run_id is None:
            return
        summary = {key: number for key, value in (logs or {}).items() if (number := _number(value)) is not None}
        stopped = bool(getattr(self.model, "stop_training", False))
        self._end("stopped" if stopped else "completed", "", summary)

    # --- steering ---------------------------------------------------------------------------------------------

    def _steer(self, epoch: int) -> None:
        """Apply the source's pending commands; nothing here may raise into model.fit."""
        commands, run_id = self._commands, self.run_id
        if commands is None or run_id is None:
            return
        try:
            pending = list(commands.poll(run_id, epoch))
        except Exception as error:  # noqa: BLE001 - steering must never break training
            self._steering_failure("poll", error)
            return
        for command in pending:
            try:
                applied, detail = self._apply(command)
            except Exception as error:  # noqa: BLE001 - e.g. an optimizer whose learning rate cannot be assigned
                applied, detail = False, f"{type(error).__name__}: {error}"
            if not applied:
                log.warning("steering command %s (%s) refused: %s", command.command_id, command.kind, detail)
            try:
                commands.acknowledge(run_id, command, applied, detail)
            except Exception as error:  # noqa: BLE001
                self._steering_failure("acknowledge", error)

    def _apply(self, command: SteeringCommand) -> tuple[bool, str]:
        """(applied, detail) for one command; a change is reported as an adaptation from the next epoch."""
        at = self._epochs_done  # the first epoch the change affects
        if command.kind == "stop":
            self.model.stop_training = True
            self._adapt(at, "stop", False, True, command.agent, command.reason, command.command_id)
            return True, f"stopping after epoch {at - 1}"
        if command.kind in ("set_lr", "scale_lr"):
            optimizer = getattr(self.model, "optimizer", None)
            if optimizer is None:
                return False, "the model has no optimizer"
            if isinstance(getattr(optimizer, "_learning_rate", None), keras.optimizers.schedules.LearningRateSchedule):
                return False, "the optimizer's learning rate is a LearningRateSchedule and cannot be set"
            old = self._current_lr()
            value = float(command.value)
            target = value if command.kind == "set_lr" else old * value
            if not (math.isfinite(target) and target > 0):
                return False, f"learning rate must be finite and > 0, got {target!r}"
            optimizer.learning_rate = target
            new = self._current_lr()
            # The change is recorded here, with the command's agent; _last_lr keeps on_epoch_begin from
            # recording it a second time as a change made by another callback.
            self._last_lr = new
            self._adapt(at, "learning_rate", old, new, command.agent, command.reason, command.command_id)
            return True, f"learning rate {old:.6g} -> {new:.6g} from epoch {at}"
        if command.kind == "set_weight":
            return False, "set_weight: a Keras model.fit run has no PINN loss weights to set"
        return False, f"unknown command kind {command.kind!r}"

    def _steering_failure(self, what: str, error: Exception) -> None:
        if not self._steering_failed:
            self._steering_failed = True
            log.warning("steering %s failed (ignored; further failures are not logged): %s", what, error)

    # --- helpers ------------------------------------------------------------------------------------------------

    def _adapt(self, epoch: int, parameter: str, old: HyperparameterValue, new: HyperparameterValue, agent: str,
               reason: str, command_id: str = "") -> None:
        self._fanout.on_adaptation(Adapted(
            epoch=epoch, at=time.time(), parameter=parameter, old_value=old, new_value=new, agent=agent,
            reason=reason, command_id=command_id,
        ))

    def _end(self, status: RunStatus, error: str, summary: Mapping[str, float] | None = None) -> None:
        finite = {key: value for key, value in (summary or {}).items() if math.isfinite(value)}
        self._fanout.on_run_end(RunEnded(status, time.time(), self._epochs_done, error, finite))
        self._last_run_id, self.run_id = self.run_id, None

    def _current_lr(self) -> float:
        optimizer = getattr(self.model, "optimizer", None)
        if optimizer is None:
            return _NAN
        try:
            return _float(optimizer.learning_rate)
        except Exception:  # noqa: BLE001 - an exotic optimizer must not break fit
            return _NAN

    def _optimizer_hyperparameters(self, optimizer: object) -> dict[str, HyperparameterValue]:
        if optimizer is None:
            return {}
        hp: dict[str, HyperparameterValue] = {HP_OPTIMIZER: type(optimizer).__name__.lower()}
        learning_rate = getattr(optimizer, "_learning_rate", None)
        schedule = learning_rate if isinstance(learning_rate, keras.optimizers.schedules.LearningRateSchedule) else None
        self._scheduled_lr = schedule is not None
        if schedule is not None:
            hp[HP_SCHEDULE] = _snake(type(schedule).__name__)
            config = schedule.get_config()
            for source, target in _SCHEDULE_KEYS:
                value = config.get(source)
                if isinstance(value, bool | int | float):
                    hp[target] = value
        else:
            hp[HP_SCHEDULE] = "constant"
            hp[HP_LR_INITIAL] = self._current_lr()
        return hp
