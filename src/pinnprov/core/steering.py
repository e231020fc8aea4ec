"""Steering commands: what a command is, how it is validated, and how it travels as JSON.

Why in the bottom package: `pinnprov steer`, the collector's HTTP handler and alert actions (collector/), the
trainer-side pollers (instrumentation/) and the trainer that applies commands (pinn/) must agree on what a
command is. Commands are validated once here, before anything is written, so a trainer never receives a
command it would have to refuse for a malformed value.
"""

from __future__ import annotations

import getpass
import math
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeGuard, get_args

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

KINDS: tuple[str, ...] = get_args(CommandKind)
WEIGHT_PARAMETERS = ("residual", "boundary", "data")
MAX_LEARNING_RATE = 10.0  # the same bound pinn.config applies to lr_initial
MAX_TEXT = 1000  # agent and reason are free text: bounded so a command cannot bloat the store


def is_command_kind(kind: str) -> TypeGuard[CommandKind]:
    return kind in KINDS


def validate(kind: str, value: float, parameter: str = "") -> CommandKind:
    """`kind` as a CommandKind; ValueError naming the problem if the command could never be applied."""
    if not is_command_kind(kind):
        raise ValueError(f"unknown steering command {kind!r} (choose from: {', '.join(KINDS)})")
    if kind == "stop":
        return kind
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
    return kind


def new_command(
    kind: str, value: float = 0.0, parameter: str = "", agent: str = "user", reason: str = ""
) -> SteeringCommand:
    """A validated command with a fresh id (32 hex digits, like run ids)."""
    checked = validate(kind, value, parameter)
    if not agent.strip():
        raise ValueError("steering command: agent must not be empty")
    return SteeringCommand(
        command_id=uuid.uuid4().hex,
        kind=checked,
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
    checked = validate(kind, value, parameter)
    return SteeringCommand(
        command_id=command_id,
        kind=checked,
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
    def from_json(cls, data: object) -> Acknowledgement:
        if not isinstance(data, Mapping):
            raise ValueError(f"acknowledgement: expected an object, got {type(data).__name__}")
        command_id, applied = data.get("command_id"), data.get("applied")
        if not isinstance(command_id, str) or not command_id:
            raise ValueError("acknowledgement: missing command_id")
        if not isinstance(applied, bool):
            raise ValueError("acknowledgement: 'applied' must be true or false")
        detail = data.get("detail", "")
        return cls(command_id=command_id, applied=applied, detail=str(detail or "")[:MAX_TEXT])


def user_agent() -> str:
    """`user:<login>`: the PROV agent of a command typed by a person."""
    try:
        login = getpass.getuser()
    except Exception:  # noqa: BLE001 - no login name (some containers): still attribute it to a user
        login = "unknown"
    return f"user:{login}"
