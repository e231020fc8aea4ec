"""The trainer's observer interface: the only way training reports what it does.

Instrumentation (OpenTelemetry), progress bars and tests all plug in here, so the PINN runs and is
tested with no telemetry at all. Events are plain frozen dataclasses of Python scalars: an observer
may keep them, send them to another thread or serialise them without touching TensorFlow objects.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

HyperparameterValue = str | int | float | bool
RunStatus = Literal["completed", "stopped", "failed"]


@dataclass(frozen=True)
class DatasetIdentity:
    """Which picks a run was trained on: enough to tell two data sets apart and to find the file again."""

    name: str
    sha256: str
    picks: int
    source: str = ""  # file path or "benchmark"


@dataclass(frozen=True)
class RunStarted:
    """Sent once, before the first epoch, with every hyperparameter (they must reach the store at start)."""

    run_id: str  # 32 lowercase hex digits; instrumentation uses it as the OpenTelemetry trace id
    run_name: str
    experiment: str
    started_at: float  # Unix seconds
    hyperparameters: Mapping[str, HyperparameterValue]
    dataset: DatasetIdentity


@dataclass(frozen=True)
class EpochEnded:
    """One epoch (one full-batch optimiser step over the collocation and data points)."""

    epoch: int  # 0-based
    started_at: float  # Unix seconds
    ended_at: float  # Unix seconds
    elapsed_s: float  # wall seconds spent on this epoch
    loss: float  # L = w_R L_R + w_BC L_BC + w_D L_D
    loss_bc: float  # L_BC
    loss_residual: float  # L_R (the paper's Table 1 calls it "LR": it is *not* the learning rate)
    loss_data: float  # L_D
    learning_rate: float
    extra: Mapping[str, float] = field(default_factory=dict)  # e.g. data RMS in seconds


@dataclass(frozen=True)
class Adapted:
    """A change to the running configuration: a learning-rate step, a user's command, an optimiser switch."""

    epoch: int
    at: float  # Unix seconds
    parameter: str  # e.g. "learning_rate", "loss_weight.residual", "optimizer", "stop"
    old_value: HyperparameterValue
    new_value: HyperparameterValue
    agent: str  # who decided: "user:<name>", "schedule", "rule:<rule name>", "trainer"
    reason: str = ""
    command_id: str = ""  # the steering command this applies, if any


@dataclass(frozen=True)
class RunEnded:
    """Sent exactly once when training stops for any reason."""

    status: RunStatus
    at: float  # Unix seconds
    epochs: int  # epochs completed
    error: str = ""  # "ExceptionType: message" when status == "failed"
    summary: Mapping[str, float] = field(default_factory=dict)  # final metrics: r2, rmse_m_s, data_rms_s, ...


@runtime_checkable
class TrainingObserver(Protocol):
    """Receives training events on the training thread; must return quickly and must not raise."""

    def on_run_start(self, event: RunStarted) -> None: ...

    def on_epoch_end(self, event: EpochEnded) -> None: ...

    def on_adaptation(self, event: Adapted) -> None: ...

    def on_run_end(self, event: RunEnded) -> None: ...


class ObserverFanout:
    """Calls several observers in order; an observer that raises is reported once and then ignored.

    Why: telemetry must never break training, so a faulty observer is isolated here rather than in
    every observer implementation.
    """

    def __init__(self, observers: Sequence[TrainingObserver]) -> None:
        self._observers = list(observers)
        self._broken: set[int] = set()

    def _call(self, method: str, event: object) -> None:
        for index, observer in enumerate(self._observers):
            if index in self._broken:
                continue
            try:
                getattr(observer, method)(event)
            except Exception as error:  # noqa: BLE001 - isolation is the point
                self._broken.add(index)
                import logging

                logging.getLogger(__name__).warning(
                    "observer %s failed in %s and is disabled: %s", type(observer).__name__, method, error
                )

    def on_run_start(self, event: RunStarted) -> None:
        self._call("on_run_start", event)

    def on_epoch_end(self, event: EpochEnded) -> None:
        self._call("on_epoch_end", event)

    def on_adaptation(self, event: Adapted) -> None:
        self._call("on_adaptation", event)

    def on_run_end(self, event: RunEnded) -> None:
        self._call("on_run_end", event)
