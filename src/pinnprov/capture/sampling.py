"""Which epochs become spans: every k-th, plus always the first and the last one of a run.

Deterministic thinning, not random sampling: the store then holds epochs 0, k, 2k, ... and the final epoch,
which is what a reader of Table 1 expects. The last epoch is only known when the run ends (steering or a
stopping rule can end it early), so the sampler keeps the most recent skipped epoch and hands it back at
run end. Keeping one reference per epoch is the whole per-epoch cost of a skipped epoch.
"""

from __future__ import annotations

from pinnprov.core.settings import resolve
from pinnprov.pinn.observer import EpochEnded

CAPTURE_EVERY_ENV = "PINNPROV_CAPTURE_EVERY"


def parse_capture_every(value: int | str | None) -> int:
    """capture_every from an explicit value, then PINNPROV_CAPTURE_EVERY, then 1; must be an integer >= 1."""
    every = resolve("capture_every", value, CAPTURE_EVERY_ENV, 1, int)
    if isinstance(every, bool) or not isinstance(every, int) or every < 1:
        raise ValueError(f"capture_every: must be an integer >= 1, got {every!r}")
    return every


class EpochSampler:
    """Decides per epoch whether it is captured; remembers the last skipped epoch for the run's end."""

    __slots__ = ("every", "held", "skipped_since_capture", "epochs_in_capture", "_captured_any")

    def __init__(self, every: int = 1) -> None:
        self.every = parse_capture_every(every)
        self.reset()

    def reset(self) -> None:
        """Forget the previous run."""
        self.held: EpochEnded | None = None
        self.skipped_since_capture = 0
        self.epochs_in_capture = 0  # epochs the last admitted (or taken) epoch stands for: itself + skipped ones
        self._captured_any = False

    def admit(self, event: EpochEnded) -> bool:
        """True if this epoch becomes a span now; otherwise it is held as the possible last epoch."""
        if event.epoch % self.every == 0 or not self._captured_any:
            self._captured_any = True
            self.held = None
            self.epochs_in_capture = self.skipped_since_capture + 1
            self.skipped_since_capture = 0
            return True
        self.held = event
        self.skipped_since_capture += 1
        return False

    def take_last(self) -> EpochEnded | None:
        """At run end: the final epoch if it was skipped (so it is captured after all), else None."""
        held, self.held = self.held, None
        self.epochs_in_capture, self.skipped_since_capture = self.skipped_since_capture, 0
        return held
