"""Steering commands on the wire and in the store: validation, JSON codec, and the store-side channel.

Why one module: `pinnprov steer`, the collector's HTTP handler and the trainer-side pollers must agree on what
a command is and how it travels. Commands are validated once here, before anything is written, so a trainer
never receives a command it would have to refuse for a malformed value.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, get_args

from pinn.steering import CommandKind, SteeringCommand

KINDS: tuple[str, ...] = get_args(CommandKind)
WEIGHT_PARAMETERS = ("residual", "boundary", "data")
MAX_LEARNING_RATE = 10.0  # the same bound pinn.config applies to lr_initial
MAX_TEXT = 1000  # agent and reason are free text: bounded so a command cannot bloat the store


def validate(kind: str, value: float, parameter: str = "") -> None:
    """Raise ValueError naming the problem if the command could never be applied."""
    if kind not in KINDS:
        raise ValueError(f"unknown steering command {kind!r} (choose from: {', '.join(KINDS)})")
    if kind == "stop":
        return
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{kind}: value must be a finite number, got {value!r}")
    if kind == "set_lr" and not 0 < value < MAX_LEARNING_RATE:
        raise ValueError(f"set_lr: learning rate must be in (0, {MAX_LEARNING_RATE:g}), got {value!r}")
    if kind == "scale_lr" and not value > 0:
        raise ValueError(f"scale_lr: factor must be > 0, got {value!r}")
    if kind == "set_weight":
        if parameter not in WEIGHT_PARAMETERS:
            raise ValueError(f"set_weight: loss term must be one of {', '.join(WEIGHT_PARAMETERS)}, got {parameter!r}")
        if value < 0:
            raise ValueError(f"set_weight: weight must be >= 0, got {value!r}")


def new_command(
    kind: str, value: float = 0.0, parameter: str = "", agent: str = "user", reason: str = ""
) -> SteeringCommand:
    """A validated command with a fresh id (32 hex digits, like run ids)."""
    validate(kind, value, parameter)
    if not agent.strip():
        raise ValueError("steering command: agent must not be empty")
    return SteeringCommand(
        command_id=uuid.uuid4().hex,
        kind=kind,  # type: ignore[arg-type]  # checked by validate()
        value=float(value),
        parameter=parameter,
        agent=agent[:MAX_TEXT],
        reason=reason[:MAX_TEXT],
    )


def command_to_json(command: SteeringCommand) -> dict[str, Any]:
    return {
        "command_id": command.command_id,
        "kind": command.kind,
        "value": command.value,
        "parameter": command.parameter,
        "agent": command.agent,
        "reason": command.reason,
    }


def command_from_json(data: Mapping[str, Any]) -> SteeringCommand:
    """Decode and validate one command; a malformed one raises ValueError (the poller skips it, loudly)."""
    if not isinstance(data, Mapping):
        raise ValueError(f"steering command: expected an object, got {type(data).__name__}")
    command_id = data.get("command_id")
    if not isinstance(command_id, str) or not command_id:
        raise ValueError("steering command: missing command_id")
    kind = str(data.get("kind", ""))
    value = data.get("value", 0.0)
    parameter = str(data.get("parameter", "") or "")
    validate(kind, value, parameter)
    return SteeringCommand(
        command_id=command_id,
        kind=kind,  # type: ignore[arg-type]
        value=float(value),
        parameter=parameter,
        agent=str(data.get("agent", "") or "user"),
        reason=str(data.get("reason", "") or ""),
    )


@dataclass(frozen=True)
class Acknowledgement:
    """The trainer's answer to one command: applied, or refused with the reason in `detail`."""

    command_id: str
    applied: bool
    detail: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"command_id": self.command_id, "applied": self.applied, "detail": self.detail}

    @classmethod
    def from_json(cls, data: Any) -> Acknowledgement:
        if not isinstance(data, Mapping):
            raise ValueError(f"acknowledgement: expected an object, got {type(data).__name__}")
        command_id, applied = data.get("command_id"), data.get("applied")
        if not isinstance(command_id, str) or not command_id:
            raise ValueError("acknowledgement: missing command_id")
        if not isinstance(applied, bool):
            raise ValueError("acknowledgement: 'applied' must be true or false")
        detail = data.get("detail", "")
        return cls(command_id=command_id, applied=applied, detail=str(detail or "")[:MAX_TEXT])


# --- the store side: thin adapters over collector.store's steering-command API -------------------------

FINISHED = ("completed", "stopped", "failed")
_STATUS_SQL = "SELECT status FROM run WHERE run_id = :run_id"


def run_status(store: Any, run_id: str) -> str | None:
    """The run's status ('running' until its end arrives), or None for a run the store does not know."""
    rows = store.execute(_STATUS_SQL, {"run_id": run_id}).rows
    if not rows:
        return None
    return str(rows[0][0] or "running")


def _as_command(row: Any) -> SteeringCommand:
    return command_from_json(
        {
            "command_id": row.command_id,
            "kind": row.kind,
            "value": row.value if row.value is not None else 0.0,
            "parameter": row.parameter,
            "agent": row.agent,
            "reason": row.reason,
        }
    )


def pending(store: Any, run_id: str) -> list[SteeringCommand]:
    """Pending commands of one run, oldest first (rows that would not validate are skipped, not fatal)."""
    from collector.store import pending_commands

    commands = []
    for row in pending_commands(store, run_id):
        try:
            commands.append(_as_command(row))
        except ValueError:
            continue  # written by something other than `submit`; the trainer could not apply it anyway
    return commands


def acknowledge(store: Any, run_id: str, ack: Acknowledgement) -> bool:
    """Mark the command applied/refused; True if the run has this command (acknowledging twice is a no-op)."""
    from collector.store import acknowledge_command, list_commands

    if not any(row.command_id == ack.command_id for row in list_commands(store, run_id)):
        return False
    acknowledge_command(store, ack.command_id, applied=ack.applied, detail=ack.detail)
    return True


def submit(store: Any, run_id: str, command: SteeringCommand) -> None:
    """Queue a command for a running run; ValueError (one line) for an unknown or finished run.

    The status check and the insert are two statements: a run that ends in between simply never applies the
    command (it stays pending and `pinnprov query --sql` shows it), which is the same outcome as a command
    that arrives after the trainer's last poll.
    """
    from collector.store import insert_command

    status = run_status(store, run_id)
    if status is None:
        raise ValueError(f"unknown run {run_id}")
    if status in FINISHED:
        raise ValueError(f"run {run_id} has already ended (status {status}); steering applies to running runs only")
    insert_command(
        store,
        command_id=command.command_id,
        run_id=run_id,
        kind=command.kind,
        value=None if command.kind == "stop" else command.value,
        parameter=command.parameter,
        agent=command.agent,
        reason=command.reason,
    )
