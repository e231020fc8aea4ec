"""Applies steering commands at a chunk boundary and reports each applied one as an Adapted event.

A command source that fails (network, parse error) never stops training: the poll is skipped and logged.
A command that cannot be applied (unknown weight, non-positive rate) is acknowledged as refused.
"""

from __future__ import annotations

import logging
import math

from pinnprov.core.steering import SteeringCommand
from pinnprov.pinn.events import EventReplay
from pinnprov.pinn.problem import Problem
from pinnprov.pinn.steering import CommandSource

log = logging.getLogger(__name__)


class SteeringApplier:
    def __init__(self, problem: Problem, replay: EventReplay, commands: CommandSource, run_id: str) -> None:
        self.problem, self.replay, self.commands, self.run_id = problem, replay, commands, run_id
        self.stop_reason = ""
        self.lbfgs_phase = False

    def poll(self, epoch: int) -> bool:
        """Apply pending commands; True when one of them asks the run to stop."""
        try:
            pending = self.commands.poll(self.run_id, epoch)
        except Exception as error:  # noqa: BLE001 - steering must never break training
            log.warning("steering poll failed (skipped): %s", error)
            return False
        stop = False
        for command in pending:
            try:
                detail = self._apply(command)
                applied = True
                stop = stop or command.kind == "stop"
            except ValueError as error:
                applied, detail = False, str(error)
                log.warning("steering command %s refused: %s", command.command_id, error)
            try:
                self.commands.acknowledge(self.run_id, command, applied, detail)
            except Exception as error:  # noqa: BLE001
                log.warning("steering acknowledge failed: %s", error)
        return stop

    def _apply(self, command: SteeringCommand) -> str:
        epoch = self.replay.epochs
        schedule = self.problem.learning_rate
        value = float(command.value)
        if command.kind in ("set_lr", "scale_lr"):
            if self.lbfgs_phase:
                raise ValueError("no learning rate applies during the L-BFGS phase")
            old = schedule.value(epoch)
            if command.kind == "set_lr":
                schedule.set(epoch, value)
            else:
                schedule.scale(value)
            new = schedule.value(epoch)
            self.replay.reported_lr = new
            self._report("learning_rate", old, new, command)
            return f"learning rate {old:.6g} -> {new:.6g} from epoch {epoch}"
        if command.kind == "set_weight":
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"loss weight must be finite and >= 0, got {value!r}")
            weight = self.problem.weights.by_name(command.parameter)
            if command.parameter == "regularizer" and not self.problem.weights.regularised:
                raise ValueError("this run has no regularizer (set one with the regularizer config key)")
            old = float(weight.numpy())
            weight.assign(value)
            self._report(f"loss_weight.{command.parameter}", old, float(weight.numpy()), command)
            return f"loss weight {command.parameter} {old:g} -> {value:g} from epoch {epoch}"
        if command.kind == "stop":
            self.stop_reason = command.reason or f"stop requested by {command.agent}"
            self._report("stop", False, True, command)
            return f"stopping after epoch {epoch - 1}"
        raise ValueError(f"unknown command kind {command.kind!r}")

    def _report(self, parameter: str, old: float | bool, new: float | bool, command: SteeringCommand) -> None:
        self.replay.adapted(parameter, old, new, command.agent, command.reason, command.command_id)
