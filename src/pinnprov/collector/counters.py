"""Thread-safe counters for the pipeline: received / rejected / written / failed, per signal and sink.

A plain dict of integers behind one lock: cheap enough for every request, and `snapshot()` hands out a
copy so status endpoints and tests never see a half-updated view.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping


class Counters:
    """Monotonic integer counters named like `traces.received` or `sink.sqlite.written`."""

    def __init__(self) -> None:
        self._values: dict[str, int] = {}
        self._lock = threading.Lock()

    def add(self, name: str, amount: int = 1) -> None:
        if amount == 0:
            return
        with self._lock:
            self._values[name] = self._values.get(name, 0) + amount

    def add_many(self, amounts: Mapping[str, int]) -> None:
        with self._lock:
            for name, amount in amounts.items():
                if amount:
                    self._values[name] = self._values.get(name, 0) + amount

    def get(self, name: str) -> int:
        with self._lock:
            return self._values.get(name, 0)

    def snapshot(self) -> dict[str, int]:
        """A consistent copy of every counter, sorted by name."""
        with self._lock:
            return dict(sorted(self._values.items()))
