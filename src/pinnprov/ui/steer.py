"""Steering from the run page: the same channel as `pinnprov steer` (store/steering_channel.py), one command per POST.

The command is validated by `new_command` and queued by `submit`, exactly as the CLI does, so the trainer cannot
tell them apart except by provenance: the agent is the person running `pinnprov ui` (`user:<login>`, the same PROV
Person as their CLI commands and runs) and the reason says it came through the UI. A reason is required: a change
made with one click should still say why.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from pinnprov.core.steering import KINDS, WEIGHT_PARAMETERS, new_command
from pinnprov.store.steering_channel import submit
from pinnprov.ui.stores import open_writable

VIA_UI = "(via pinnprov ui)"
MAX_REASON = 500


def _number(payload: Mapping[str, Any], kind: str) -> float:
    value = payload.get("value")
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise ValueError(f"{kind}: value must be a number, got {value!r}") from None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{kind}: value must be a finite number, got {value!r}")
    return float(value)


def command_from_payload(payload: Any, agent: str) -> Any:
    """A validated SteeringCommand from the page's JSON; ValueError (one line) for anything malformed."""
    if not isinstance(payload, Mapping):
        raise ValueError("expected a JSON object with kind, value, parameter and reason")
    kind = str(payload.get("kind", ""))
    if kind not in KINDS:
        raise ValueError(f"unknown steering command {kind!r} (choose from: {', '.join(KINDS)})")
    reason = str(payload.get("reason", "") or "").strip()
    if not reason:
        raise ValueError("give a reason: it is recorded with the adaptation")
    if len(reason) > MAX_REASON:
        raise ValueError(f"reason is longer than {MAX_REASON} characters")
    value = 0.0 if kind == "stop" else _number(payload, kind)
    parameter = str(payload.get("parameter", "") or "") if kind == "set_weight" else ""
    if kind == "set_weight" and parameter not in WEIGHT_PARAMETERS:
        raise ValueError(f"set_weight: loss term must be one of {', '.join(WEIGHT_PARAMETERS)}, got {parameter!r}")
    return new_command(kind, value, parameter, agent=agent, reason=f"{reason} {VIA_UI}")


def steer(url: str, run_id: str, payload: Any, agent: str) -> dict[str, Any]:
    """Queue the command for the run; ValueError for an unknown or finished run (as `pinnprov steer`)."""
    command = command_from_payload(payload, agent)
    with open_writable(url) as store:
        submit(store, run_id, command)
    return {"command_id": command.command_id, "kind": command.kind, "value": command.value,
            "parameter": command.parameter, "agent": command.agent, "reason": command.reason, "state": "pending"}
