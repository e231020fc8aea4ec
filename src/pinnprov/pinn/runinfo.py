"""Run identity: a uuid4 id (also the OpenTelemetry trace id) and a readable, sortable name."""

from __future__ import annotations

import secrets
import time
import uuid


def new_run_id() -> str:
    """32 lowercase hex digits."""
    return uuid.uuid4().hex


def new_run_name(optimizer: str, activation: str, now: float | None = None) -> str:
    """e.g. "adam-tanh-20250101-120000-1a2b": configuration first (query prefixes), then local time, then a tag."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(time.time() if now is None else now))
    return f"{optimizer}-{activation}-{stamp}-{secrets.token_hex(2)}"
