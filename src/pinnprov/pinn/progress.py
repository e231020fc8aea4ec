"""A tqdm progress bar as a TrainingObserver: epoch, L, L_BC, L_R, L_D, learning rate and ETA.

Updates are rate-limited by wall time (every `interval_s`), so even thousands of epochs per second cost
only a clock read per epoch.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

from pinnprov.pinn.observer import Adapted, EpochEnded, RunEnded, RunStarted


class ProgressBar:
    def __init__(self, total: int | None = None, interval_s: float = 0.5, stream: TextIO | None = None,
                 disable: bool | None = None) -> None:
        self.total = total
        self.interval_s = interval_s
        self.stream = stream or sys.stderr
        self.disable = disable
        self._bar = None
        self._shown = 0
        self._last = 0.0
        self._pending: EpochEnded | None = None

    def on_run_start(self, event: RunStarted) -> None:
        from tqdm import tqdm

        total = self.total
        if total is None:
            total = int(event.hyperparameters.get("run.epochs_total", event.hyperparameters.get("epochs", 0))) or None
        self._bar = tqdm(total=total, desc=event.run_name, unit="epoch", file=self.stream, disable=self.disable,
                         dynamic_ncols=True, mininterval=self.interval_s, leave=True)

    def on_epoch_end(self, event: EpochEnded) -> None:
        self._pending = event
        now = time.monotonic()
        if now - self._last >= self.interval_s:
            self._last = now
            self._flush()

    def _flush(self) -> None:
        event = self._pending
        if self._bar is None or event is None:
            return
        self._bar.update(event.epoch + 1 - self._shown)
        self._shown = event.epoch + 1
        self._bar.set_postfix_str(
            f"L={event.loss:.3g} L_BC={event.loss_bc:.2g} L_R={event.loss_residual:.2g} "
            f"L_D={event.loss_data:.2g} lr={event.learning_rate:.3g}", refresh=False)

    def on_adaptation(self, event: Adapted) -> None:
        if self._bar is not None and event.agent != "schedule":
            self._bar.write(f"epoch {event.epoch}: {event.parameter} {event.old_value} -> {event.new_value} "
                            f"({event.agent}{': ' + event.reason if event.reason else ''})", file=self.stream)

    def on_run_end(self, event: RunEnded) -> None:
        if self._bar is None:
            return
        self._flush()
        self._bar.close()
        self._bar = None
