"""The hand-off for a loop that builds the observer events itself (`pinnprov train`, the Keras callback with
`open_capture`'s observers): the calling thread only appends each event to a deque; a worker thread hands them to
the capture's observers, epochs in batches, as the run API's worker does for `Run.log_epoch` (run_api.py).

Why a thread: the OpenTelemetry spans, their encoding and the store writes cost ~100 µs of CPU per epoch; the
training thread pays a deque append (a few µs) and never waits for them.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Sequence

from pinnprov.capture.run_api import DEFAULT_FLUSH_INTERVAL_S, EPOCH_SLICE
from pinnprov.pinn.observer import Adapted, EpochEnded, ObserverFanout, RunEnded, RunStarted

__all__ = ["EventHandoff"]


class EventHandoff:
    """The run API's hand-off for a loop that builds the observer events itself (`pinnprov train`, the Keras
    callback with `open_capture`'s observers): each event is appended to a deque on the calling thread, and a
    worker thread hands them to the capture's observers in batches, as `Run`'s worker does for `log_epoch`.

    An observer that raises is reported once and disabled (ObserverFanout's rule), on the worker. `close()`
    delivers what is queued and stops the worker; an event after that is delivered on the calling thread.
    """

    def __init__(self, observers: Sequence[object], flush_interval_s: float = DEFAULT_FLUSH_INTERVAL_S) -> None:
        self._fanout = ObserverFanout(list(observers))  # type: ignore[arg-type]  # optional methods are looked up
        self._queue: deque[tuple[str, object]] = deque()
        self._wake = threading.Event()
        self._interval = flush_interval_s
        self._closed = False
        self._worker = threading.Thread(target=self._work, name="pinnprov-handoff", daemon=True)
        self._worker.start()

    # TrainingObserver (and ProductObserver): a hand-off each
    def on_run_start(self, event: RunStarted) -> None:
        self._put("on_run_start", event, wake=True)

    def on_epoch_end(self, event: EpochEnded) -> None:
        if self._closed:
            self._deliver("on_epoch_end", event)
        else:
            self._queue.append(("on_epoch_end", event))

    def on_adaptation(self, event: Adapted) -> None:
        self._put("on_adaptation", event, wake=True)

    def on_run_end(self, event: RunEnded) -> None:
        self._put("on_run_end", event, wake=True)

    def on_artifact(self, event: object) -> None:
        self._put("on_artifact", event, wake=False)

    def on_model_snapshot(self, event: object) -> None:
        self._put("on_model_snapshot", event, wake=False)

    def _put(self, method: str, event: object, *, wake: bool) -> None:
        if self._closed:
            self._deliver(method, event)
            return
        self._queue.append((method, event))
        if wake:
            self._wake.set()

    def close(self) -> None:
        """Deliver every queued event, then stop the worker (idempotent)."""
        if self._closed:
            return
        self._closed = True
        self._wake.set()
        self._worker.join()
        self._drain()  # anything appended while the worker was finishing

    def _work(self) -> None:
        while not self._closed:
            self._wake.wait(self._interval)
            self._wake.clear()
            self._drain()
        self._drain()

    def _drain(self) -> None:
        queue = self._queue
        epochs: list[EpochEnded] = []
        while queue:
            try:
                method, event = queue.popleft()
            except IndexError:  # drained concurrently by close()
                break
            if method == "on_epoch_end":
                epochs.append(event)  # type: ignore[arg-type]
                continue
            if epochs:
                self._fanout.deliver_epochs(epochs, EPOCH_SLICE)
                epochs = []
            self._deliver(method, event)
        if epochs:
            self._fanout.deliver_epochs(epochs, EPOCH_SLICE)

    def _deliver(self, method: str, event: object) -> None:
        self._fanout.deliver(method, event)
