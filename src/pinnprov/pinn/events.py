"""Turns the compiled loop's per-step records into observer events, in order, with one epoch counter.

An epoch is one full-batch optimiser step. A chunk of K steps that took `wall` seconds becomes K EpochEnded
events with elapsed_s = wall / K and start/end times interpolated across the call. Learning-rate decay is
reported as an Adapted event (agent "schedule") at most once per reporting interval (default: the decay
period), and only when the rate actually changed.
"""

from __future__ import annotations

import time

import numpy as np

from pinnprov.pinn.config import TrainConfig
from pinnprov.pinn.losses import RECORD_FIELDS
from pinnprov.pinn.observer import Adapted, EpochEnded, HyperparameterValue, ObserverFanout
from pinnprov.pinn.schedule import LearningRate

_INDEX = {name: k for k, name in enumerate(RECORD_FIELDS)}


def f32(value: float) -> float:
    """A float32 value as the shortest decimal that round-trips (0.001, not 0.0010000000474974513).

    Why: the compiled loop computes in float32, and provenance queries show these numbers to people.
    """
    return float(str(np.float32(value)))


class EventReplay:
    def __init__(self, fanout: ObserverFanout, learning_rate: LearningRate, config: TrainConfig) -> None:
        self.fanout = fanout
        self.learning_rate = learning_rate
        self.epochs = 0
        self.last: np.ndarray | None = None
        self._chunks: list[np.ndarray] = []
        self._interval = config.lr_report_every or config.lr_decay_steps
        self._decays = config.lr_schedule != "constant"
        self._reason = (f"{config.lr_schedule}: x{config.lr_decay_rate:g} every {config.lr_decay_steps} steps"
                        + (" (staircase)" if config.lr_staircase else ""))
        self._regularised = config.regularizer != "none"
        self.reported_lr = learning_rate.value(0)
        self.schedule_active = True  # off during L-BFGS, where no learning rate applies

    def chunk(self, records: np.ndarray, call_start: float, call_end: float, *,
              holdout_rms_s: float | None = None, extra_columns: dict[str, np.ndarray] | None = None) -> None:
        k = len(records)
        if k == 0:
            return
        elapsed = (call_end - call_start) / k
        self._chunks.append(records)
        for i, row in enumerate(records):
            extra = {"data_rms_s": f32(row[_INDEX["data_rms_s"]]), "objective": f32(row[_INDEX["objective"]])}
            if self._regularised:
                extra["regularizer"] = f32(row[_INDEX["regularizer"]])
            for name, column in (extra_columns or {}).items():
                extra[name] = f32(column[i])
            if holdout_rms_s is not None and i == k - 1:
                extra["holdout_rms_s"] = f32(holdout_rms_s)
            self.fanout.on_epoch_end(EpochEnded(
                epoch=self.epochs,
                started_at=call_start + i * elapsed,
                ended_at=call_start + (i + 1) * elapsed,
                elapsed_s=elapsed,
                loss=f32(row[_INDEX["loss"]]),
                loss_bc=f32(row[_INDEX["loss_bc"]]),
                loss_residual=f32(row[_INDEX["loss_residual"]]),
                loss_data=f32(row[_INDEX["loss_data"]]),
                learning_rate=f32(row[_INDEX["learning_rate"]]),
                extra=extra,
            ))
            self.epochs += 1
            if self.schedule_active and self._decays and self.epochs % self._interval == 0:
                new = self.learning_rate.value(self.epochs)
                if new != self.reported_lr:
                    self.adapted("learning_rate", self.reported_lr, new, "schedule", self._reason)
                    self.reported_lr = new
        self.last = records[-1]

    def adapted(self, parameter: str, old: HyperparameterValue, new: HyperparameterValue, agent: str,
                reason: str = "", command_id: str = "") -> None:
        """An Adapted event taking effect from the next epoch."""
        self.fanout.on_adaptation(Adapted(epoch=self.epochs, at=time.time(), parameter=parameter, old_value=old,
                                          new_value=new, agent=agent, reason=reason, command_id=command_id))

    def history(self) -> np.ndarray:
        if not self._chunks:
            return np.zeros((0, len(RECORD_FIELDS)), np.float32)
        return np.concatenate(self._chunks)
