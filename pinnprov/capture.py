"""Wires provenance capture into a training command (owned by the instrumentation work; placeholder now).

`open_capture(...)` returns the observers to attach to the trainer and a `close()` that flushes them.
"""

from __future__ import annotations

from contextlib import contextmanager
from collections.abc import Iterator

from pinn.observer import TrainingObserver


@contextmanager
def open_capture(
    *,
    store: str | None = None,
    otlp_endpoint: str | None = None,
    capture_every: int = 1,
    enabled: bool = True,
) -> Iterator[list[TrainingObserver]]:
    """Yield the provenance observers for one training process; flush and shut them down on exit."""
    yield []
