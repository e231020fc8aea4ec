"""Where the trainer gets runtime commands: the `CommandSource` it polls between epochs.

The trainer asks a `CommandSource` for pending commands between epochs. The poll must be cheap: it is
called at every epoch boundary of the hot loop (implementations rate-limit themselves by wall time).
What a command is (`SteeringCommand`) is defined in pinnprov/core/steering.py, shared with every other layer.
"""

from __future__ import annotations

from typing import Protocol

from pinnprov.core.steering import SteeringCommand


class CommandSource(Protocol):
    """Where the trainer gets commands; `acknowledge` is called once a command is applied (or refused)."""

    def poll(self, run_id: str, epoch: int) -> list[SteeringCommand]: ...

    def acknowledge(self, run_id: str, command: SteeringCommand, applied: bool, detail: str) -> None: ...


class NoCommands:
    """The default source: nothing to apply."""

    def poll(self, run_id: str, epoch: int) -> list[SteeringCommand]:
        return []

    def acknowledge(self, run_id: str, command: SteeringCommand, applied: bool, detail: str) -> None:
        return None
