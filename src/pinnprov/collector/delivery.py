"""One delivery worker per sink: spool -> batch -> pipeline -> commit, with retry, backoff and dead letters.

Each worker reads the spool from its own cursor, merges up to `max_requests` consecutive requests of one
signal into one batch (concatenated OTLP messages are one valid message: repeated fields append), hands it
to its sink's pipeline and commits the cursor only after the pipeline said SUCCESS. So:
- a store that is down (RETRYABLE) is retried with exponential backoff and jitter, forever, in order,
  without blocking the receivers (they only append to the spool) or the other sinks;
- a batch that is refused (REJECTED, or partially rejected spans) is split, and each request that is still
  refused on its own is set aside in the spool's dead-letter file with a log line;
- a request that keeps breaking the pipeline itself (internal errors, not "store unavailable") is set
  aside after `poison_after` attempts, so one bad record can never wedge a sink or crash-loop the service.
"""

from __future__ import annotations

import logging
import random
import threading
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass

from pinnprov.collector.counters import Counters
from pinnprov.collector.pipeline import Pipeline, PipelineResult
from pinnprov.core.spool import Position, Signal, Spool, SpoolEntry
from pinnprov.store.sink import ExportStatus

log = logging.getLogger(__name__)

Handler = Callable[[Signal, bytes], PipelineResult]
"""Writes one (merged) OTLP request of a signal to one sink: e.g. a Pipeline's handle_traces."""

_INTERNAL_MARKERS = ("internal error", "sink raised", "writer error")


@dataclass(frozen=True)
class DeliverySettings:
    max_requests: int = 64
    max_bytes: int = 8 << 20
    linger_s: float = 0.02
    retry_initial_s: float = 0.5
    retry_max_s: float = 30.0
    poison_after: int = 5
    concurrency: int = 2  # batches in flight per sink (commits stay in order)


def pipeline_handler(pipeline: Pipeline) -> Handler:
    """Adapt a pinnprov.collector.pipeline.Pipeline (handle_traces/handle_metrics take bytes) to a Handler."""

    def handle(signal: Signal, payload: bytes) -> PipelineResult:
        if signal is Signal.TRACES:
            return pipeline.handle_traces(payload)
        return pipeline.handle_metrics(payload)

    return handle


def _runs(entries: Sequence[SpoolEntry]) -> list[Sequence[SpoolEntry]]:
    """Consecutive entries of one signal: each run becomes one merged request."""
    runs: list[Sequence[SpoolEntry]] = []
    start = 0
    for index in range(1, len(entries) + 1):
        if index == len(entries) or entries[index].signal is not entries[start].signal:
            runs.append(entries[start:index])
            start = index
    return runs


def _is_internal(result: PipelineResult) -> bool:
    return any(marker in result.detail for marker in _INTERNAL_MARKERS)


class DeliveryWorker:
    """A thread delivering one spool consumer's records to one sink."""

    def __init__(self, name: str, spool: Spool, consumer: str, handler: Handler, counters: Counters,
                 settings: DeliverySettings = DeliverySettings()) -> None:
        self.name, self.spool, self.consumer, self.handler = name, spool, consumer, handler
        self.counters, self.settings = counters, settings
        self.state = "idle"  # idle | delivering | retrying: shown by /healthz
        self.last_error = ""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"delivery:{name}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        self._thread.join(timeout_s)

    def drained(self) -> bool:
        return self.spool.pending_records(self.consumer) == 0

    # --- the loop ---------------------------------------------------------------------------------
    def _run(self) -> None:
        """Read ahead in order, keep up to `concurrency` batches in flight, commit strictly in order.

        Two batches in flight let the next one be decoded and translated (Python, holding the GIL) while the
        previous one is written (SQLite and MonetDB drivers release the GIL), on a second core.
        """
        position = self.spool.cursor(self.consumer)
        in_flight: deque[tuple[Future[bool], Position]] = deque()
        with ThreadPoolExecutor(self.settings.concurrency, thread_name_prefix=f"delivery:{self.name}") as pool:
            while not self._stop.is_set():
                while in_flight and in_flight[0][0].done():
                    if not self._finish(*in_flight.popleft()):
                        return
                if len(in_flight) >= self.settings.concurrency:
                    wait([in_flight[0][0]], timeout=0.5)
                    continue
                if not self.spool.wait(position, 0.05 if in_flight else 0.5):
                    if not in_flight:
                        self.state = "idle"
                    continue
                if self.settings.linger_s and self.spool.pending_records(self.consumer) < self.settings.max_requests:
                    self._stop.wait(self.settings.linger_s)  # let a few more requests arrive: bigger transactions
                entries = self.spool.read(position, self.settings.max_requests, self.settings.max_bytes)
                for run in _runs(entries):
                    in_flight.append((pool.submit(self._deliver_run_safely, run), run[-1].next))
                    position = run[-1].next
            for future, _ in in_flight:
                future.cancel()

    def _finish(self, future: Future[bool], position: Position) -> bool:
        if not future.result():
            return False  # stopping: the cursor stays before the undelivered run
        self.spool.commit(self.consumer, position)
        return True

    def _deliver_run_safely(self, run: Sequence[SpoolEntry]) -> bool:
        while not self._stop.is_set():
            try:
                return self._deliver_run(run)
            except Exception:  # noqa: BLE001 - keep delivering; the cursor did not move past the batch
                log.exception("delivery to %s failed unexpectedly; retrying", self.name)
                self._stop.wait(self.settings.retry_initial_s)
        return False

    def _deliver_run(self, run: Sequence[SpoolEntry]) -> bool:
        """True once every entry of the run is written or set aside; False if stopped first."""
        signal = run[0].signal
        result = self._attempt(signal, b"".join(entry.payload for entry in run), len(run))
        if result is None:
            return False
        if result.status is ExportStatus.SUCCESS and result.rejected == 0:
            return True
        if len(run) == 1:
            self._set_aside(run[0], result)
            return True
        # Something in the batch is refused: find it by delivering the requests one by one.
        for entry in run:
            single = self._attempt(signal, entry.payload, 1)
            if single is None:
                return False
            if single.status is not ExportStatus.SUCCESS or single.rejected:
                self._set_aside(entry, single)
        return True

    def _attempt(self, signal: Signal, payload: bytes, requests: int) -> PipelineResult | None:
        """Hand a batch to the sink until it is not RETRYABLE (None if stopped first)."""
        delay = self.settings.retry_initial_s
        internal_failures = 0
        retrying = False  # this batch has failed before: the sink stays "retrying" until it is written
        while not self._stop.is_set():
            if not retrying:
                self.state = "delivering"
            result = self.handler(signal, payload)
            key = f"sink.{self.name}.{signal.name.lower()}"
            if result.status is not ExportStatus.RETRYABLE:
                self.counters.add_many({f"{key}.requests": requests, f"{key}.accepted": result.accepted,
                                        f"{key}.rejected": result.rejected})
                if retrying:
                    log.warning("sink %s is writing again", self.name)
                self.state, self.last_error = "idle", ""
                return result
            if _is_internal(result):
                internal_failures += 1
                if internal_failures >= self.settings.poison_after and requests == 1:
                    return PipelineResult(ExportStatus.REJECTED, detail=f"failed {internal_failures} times: "
                                                                        f"{result.detail}")
                if internal_failures >= self.settings.poison_after:
                    return result  # split the batch: _deliver_run isolates the request that breaks it
            self.counters.add(f"{key}.retried", requests)
            if not retrying:
                log.warning("sink %s unavailable (%s); keeping the data in the spool and retrying",
                            self.name, result.detail or "no detail")
            retrying = True
            self.state, self.last_error = "retrying", result.detail
            self._stop.wait(delay * random.uniform(0.8, 1.2))
            delay = min(delay * 2, self.settings.retry_max_s)
        return None

    def _set_aside(self, entry: SpoolEntry, result: PipelineResult) -> None:
        reason = f"sink {self.name}: {result.status.value}, {result.rejected} span(s) refused: {result.detail}"
        path = self.spool.dead_letter(entry.signal, entry.payload, reason[:2000])
        self.counters.add(f"sink.{self.name}.{entry.signal.name.lower()}.dead_lettered")
        log.error("set a %s request aside in %s (%s)", entry.signal.name.lower(), path, reason[:500])
