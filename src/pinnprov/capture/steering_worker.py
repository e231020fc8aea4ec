"""The machinery behind every steering command source: one daemon worker thread per source.

Why a thread: the trainer calls `poll()` at every epoch boundary of its hot loop, so `poll()` must cost nothing
measurable. All I/O (store reads, HTTP requests, acknowledgements) happens on the worker, which fetches at most
every `interval_s` seconds (wall clock) and hands new commands over through a deque; `poll()` is a length check.
A store or collector that is down, slow or black-holed therefore never stalls training: the fetch fails on the
worker, is logged once per outage and retried with exponential backoff (at most MAX_BACKOFF_S apart).

Commands are delivered at least once by the store (pending until acknowledged); the worker remembers the ids it
has handed out, so a command whose acknowledgement is still in flight is never applied twice. Acknowledgements
are queued, sent in order, and retried until delivered or the source is closed.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import threading
import time
import weakref
from collections import deque
from typing import Self

from pinnprov.core.steering import Acknowledgement, SteeringCommand

log = logging.getLogger(__name__)

DEFAULT_INTERVAL_S = 0.5
MAX_BACKOFF_S = 10.0
MAX_PENDING_ACKS = 1000  # an unreachable store must not grow memory without bound


class BackgroundSource:
    """Shared machinery: worker thread, rate limit, backoff, de-duplication and acknowledgement queue."""

    def __init__(self, interval_s: float = DEFAULT_INTERVAL_S) -> None:
        if not interval_s > 0:
            raise ValueError(f"steering poll interval: must be > 0 seconds, got {interval_s!r}")
        self.interval_s = interval_s
        self._inbox: deque[SteeringCommand] = deque()
        self._acks: deque[tuple[str, Acknowledgement]] = deque()
        self._seen: set[str] = set()
        self._run_id = ""
        self._wake = threading.Event()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._failing = False
        self.fetches = 0  # counters for tests and benchmarks
        self.acknowledged = 0

    # --- CommandSource -----------------------------------------------------------------------------
    def poll(self, run_id: str, epoch: int) -> list[SteeringCommand]:
        if self._thread is None:
            self._start(run_id)
        if not self._inbox:
            return []
        commands = []
        while self._inbox:
            commands.append(self._inbox.popleft())
        return commands

    def acknowledge(self, run_id: str, command: SteeringCommand, applied: bool, detail: str) -> None:
        if len(self._acks) < MAX_PENDING_ACKS:
            self._acks.append((run_id, Acknowledgement(command.command_id, applied, detail)))
        self._wake.set()

    def close(self, timeout_s: float = 5.0) -> None:
        """Stop the worker after it has sent the acknowledgements still queued (bounded by timeout_s)."""
        self._stopping = True
        self._wake.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout_s)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # --- implemented by the concrete sources (called on the worker thread only) ---------------------
    def _fetch(self, run_id: str) -> list[SteeringCommand]:
        raise NotImplementedError

    def _send_ack(self, run_id: str, ack: Acknowledgement) -> None:
        raise NotImplementedError

    def _release(self) -> None:
        """Free connections; called once on the worker thread when it ends."""

    def describe(self) -> str:
        return type(self).__name__

    # --- worker ------------------------------------------------------------------------------------
    def _start(self, run_id: str) -> None:
        with self._lock:
            if self._thread is not None:
                return
            self._run_id = run_id
            self._thread = threading.Thread(target=self._work, name="pinnprov-steering", daemon=True)
            self._thread.start()
        # A process that exits without close() still delivers its last acknowledgements (e.g. a stop's).
        ref = weakref.ref(self)
        def close_at_exit() -> None:
            source = ref()
            if source is not None:
                source.close(2.0)

        atexit.register(close_at_exit)

    def _work(self) -> None:
        backoff = self.interval_s
        next_fetch = time.monotonic()
        try:
            while True:
                self._wake.clear()  # before the work: a wake-up set during it is not lost
                acks_ok = self._flush_acks()
                if self._stopping:
                    return
                if time.monotonic() >= next_fetch:
                    ok = self._fetch_once() and acks_ok
                    backoff = self.interval_s if ok else min(backoff * 2, MAX_BACKOFF_S)
                    next_fetch = time.monotonic() + backoff
                self._wake.wait(max(0.0, next_fetch - time.monotonic()))
        finally:
            with contextlib.suppress(Exception):  # nothing useful to do about a failing close at shutdown
                self._release()

    def _fetch_once(self) -> bool:
        try:
            commands = self._fetch(self._run_id)
        except Exception as error:  # noqa: BLE001 - steering must never break training
            self._report_failure("fetch", error)
            return False
        self.fetches += 1
        self._report_recovery()
        for command in commands:
            if command.command_id not in self._seen:
                self._seen.add(command.command_id)
                self._inbox.append(command)
        return True

    def _flush_acks(self) -> bool:
        """Send queued acknowledgements in order; False at the first failure (retried on the fetch schedule)."""
        while self._acks:
            run_id, ack = self._acks[0]
            try:
                self._send_ack(run_id, ack)
            except Exception as error:  # noqa: BLE001 - kept and retried, never raised into training
                self._report_failure("acknowledge", error)
                return False
            self._acks.popleft()
            self.acknowledged += 1
        return True

    def _report_failure(self, what: str, error: Exception) -> None:
        if not self._failing:  # once per outage, not every half second
            log.warning("steering %s via %s failed (will retry): %s", what, self.describe(), error)
        self._failing = True

    def _report_recovery(self) -> None:
        if self._failing:
            log.warning("steering via %s works again", self.describe())
        self._failing = False
