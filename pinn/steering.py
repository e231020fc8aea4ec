"""Runtime commands the trainer applies at the next epoch boundary (the steering issue fills the sources).

The trainer asks a `CommandSource` for pending commands between epochs. The poll must be cheap: it is
called at every epoch boundary of the hot loop (implementations rate-limit themselves by wall time).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

CommandKind = Literal["set_lr", "scale_lr", "set_weight", "stop"]


@dataclass(frozen=True)
class SteeringCommand:
    """One instruction for one run; `value` is the new rate, the scale factor or the new weight."""

    command_id: str
    kind: CommandKind
    value: float = 0.0
    parameter: str = ""  # for set_weight: "residual", "boundary" or "data"
    agent: str = "user"
    reason: str = ""


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
