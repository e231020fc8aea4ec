"""The trainer's observer interface: the only way training reports what it does.

Instrumentation (OpenTelemetry), progress bars and tests all plug in here, so the PINN runs and is
tested with no telemetry at all. Events are plain frozen dataclasses of Python scalars: an observer
may keep them, send them to another thread or serialise them without touching TensorFlow objects.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

log = logging.getLogger(__name__)

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
class Resumption:
    """A run that continues an earlier one from its checkpoint (`pinnprov train --resume`, a Dask retry)."""

    run_id: str  # the earlier run
    epoch: int  # epochs the checkpoint holds: this run's first epoch
    checkpoint_sha256: str
    agent: str  # who decided: "user:<name>", "sweep:retry"
    reason: str = ""


@dataclass(frozen=True)
class RunStarted:
    """Sent once, before the first epoch, with every hyperparameter (they must reach the store at start)."""

    run_id: str  # 32 lowercase hex digits; instrumentation uses it as the OpenTelemetry trace id
    run_name: str
    experiment: str
    started_at: float  # Unix seconds
    hyperparameters: Mapping[str, HyperparameterValue]
    dataset: DatasetIdentity
    resumed: Resumption | None = None  # set when this run continues another from a checkpoint


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


@dataclass(frozen=True)
class ArtifactWritten:
    """A file the run produced (network, checkpoint, velocity grid, figure, result.json, a user's own file).

    Sent after the file is complete on disk, with its content hash: the store keys the file's PROV entity on
    its sha256, so `pinnprov lineage FILE` finds the run from the file in hand. May come after `RunEnded`
    (outputs are written once training is over): `run_id` says which run generated it.
    """

    run_id: str
    path: str  # absolute path on the machine that wrote it
    role: str  # network.tau | network.velocity | checkpoint | velocity_grid | figure | result | baseline.* | ...
    sha256: str
    size_bytes: int
    media_type: str
    epoch: int  # epochs completed when the file was written (its place in the run)
    at: float  # Unix seconds
    uri: str = ""  # "" = file://<host><path>, filled in by capture


@dataclass(frozen=True)
class ModelSnapshot:
    """The velocity model on its scoring grid at one epoch: what a tomography user judges a run by.

    `values` is float32 little-endian, row-major (rows = depth), nz * nx of them: 5.6 KB on the benchmark's
    32 x 44 grid, small enough to travel inside the telemetry (no shared disk with the trainer needed).
    """

    run_id: str
    epoch: int
    at: float
    nx: int
    nz: int
    x_min: float  # centre of the first and last cells, metres
    x_max: float
    z_min: float
    z_max: float
    values: bytes
    kind: str = "pinn"  # pinn | pygimli | exact: the comparison models travel the same way


@runtime_checkable
class TrainingObserver(Protocol):
    """Receives training events on the training thread; must return quickly and must not raise."""

    def on_run_start(self, event: RunStarted) -> None: ...

    def on_epoch_end(self, event: EpochEnded) -> None: ...

    def on_adaptation(self, event: Adapted) -> None: ...

    def on_run_end(self, event: RunEnded) -> None: ...


class ProductObserver(Protocol):
    """Optional further methods of a `TrainingObserver`: what the run produces. An observer without them is
    simply not told (the progress bar has no use for files)."""

    def on_artifact(self, event: ArtifactWritten) -> None: ...

    def on_model_snapshot(self, event: ModelSnapshot) -> None: ...


class ObserverFanout:
    """Calls several observers in order; an observer that raises is reported once and then ignored.

    Why: telemetry must never break training, so a faulty observer is isolated here rather than in
    every observer implementation.
    """

    def __init__(self, observers: Sequence[TrainingObserver]) -> None:
        self._observers = list(observers)
        self._broken: set[int] = set()

    def deliver(self, method: str, event: object) -> None:
        """`event` to each observer's `method` (skipped where an observer lacks an optional one, e.g. the
        ProductObserver methods)."""
        for index, observer in enumerate(self._observers):
            if index in self._broken:
                continue
            handler = getattr(observer, method, None)
            if handler is None:
                continue
            try:
                handler(event)
            except Exception as error:  # noqa: BLE001 - isolation is the point
                self._disable(index, method, error)

    def deliver_epochs(self, events: Sequence[EpochEnded], slice_size: int = 16) -> None:
        """Several epochs at once: in `on_epochs_end` calls of `slice_size` epochs where an observer has that batch
        method (the capture's observer), else one `on_epoch_end` each. Between slices the thread yields (sleep(0)),
        so a training thread waiting for the GIL gets it at once instead of after the interpreter's switch
        interval (5 ms)."""
        for index, observer in enumerate(self._observers):
            if index in self._broken:
                continue
            try:
                batch = getattr(observer, "on_epochs_end", None)
                if batch is not None:
                    for start in range(0, len(events), slice_size):
                        batch(events[start:start + slice_size])
                        time.sleep(0)
                else:
                    for event in events:
                        observer.on_epoch_end(event)
            except Exception as error:  # noqa: BLE001 - isolation is the point
                self._disable(index, "on_epoch_end", error)

    def _disable(self, index: int, method: str, error: Exception) -> None:
        self._broken.add(index)
        log.warning("observer %s failed in %s and is disabled: %s", type(self._observers[index]).__name__, method,
                    error)

    def on_run_start(self, event: RunStarted) -> None:
        self.deliver("on_run_start", event)

    def on_epoch_end(self, event: EpochEnded) -> None:
        self.deliver("on_epoch_end", event)

    def on_adaptation(self, event: Adapted) -> None:
        self.deliver("on_adaptation", event)

    def on_run_end(self, event: RunEnded) -> None:
        self.deliver("on_run_end", event)

    def on_artifact(self, event: ArtifactWritten) -> None:
        self.deliver("on_artifact", event)

    def on_model_snapshot(self, event: ModelSnapshot) -> None:
        self.deliver("on_model_snapshot", event)

    @property
    def wants_snapshots(self) -> bool:
        """Whether any observer takes model snapshots (the trainer skips computing them otherwise)."""
        return any(hasattr(observer, "on_model_snapshot") for observer in self._observers)
