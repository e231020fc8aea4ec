"""SpoolingSpanExporter: what the trainer could not deliver is kept on disk and delivered later.

Wraps any SpanExporter (OTLP gRPC/HTTP, the embedded pipeline exporter). When the inner export fails, the
batch is encoded as an OTLP ExportTraceServiceRequest and appended to a local spool (pinnprov/core/spool.py:
append-only segments, fsync, CRC per record), and the call returns SUCCESS: the spans are durable, the
batch processor need not retry. While anything is spooled, new batches are appended behind it (order is
kept and a dead collector costs one fsync per batch, not one timeout), and a background thread replays the
spool through the inner exporter with exponential backoff. What is still spooled when the process exits
is replayed on the next start (any exporter built on the same spool directory adopts spools whose owner
process is gone) or by `pinnprov flush`.

Replaying through the *inner* exporter (spans are decoded back into ReadableSpans) keeps its endpoint,
headers, TLS and compression, and works for exporters that are not OTLP at all.
Default directory: $PINNPROV_SPOOL_DIR, else ~/.cache/pinnprov/spool; one subdirectory per process.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from pinnprov.capture.otlp_decode import decode_spans
from pinnprov.core.spool import Signal, Spool, SpoolBusy

log = logging.getLogger(__name__)

SPOOL_ENV = "PINNPROV_SPOOL_DIR"
CONSUMER = "delivery"


def default_spool_dir() -> Path:
    configured = os.environ.get(SPOOL_ENV, "").strip()
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "pinnprov" / "spool"


def find_spools(root: Path, depth: int = 3) -> Iterator[Path]:
    """Spool directories (they hold a LOCK file) at or below `root`, oldest first."""
    if (root / "LOCK").is_file():
        yield root
        return
    if depth == 0 or not root.is_dir():
        return
    children = sorted((p for p in root.iterdir() if p.is_dir()), key=lambda p: p.stat().st_mtime)
    for child in children:
        yield from find_spools(child, depth - 1)


class SpoolingSpanExporter(SpanExporter):
    def __init__(self, inner: SpanExporter, spool_dir: Path | None = None, *, max_bytes: int = 1 << 30,
                 retry_initial_s: float = 1.0, retry_max_s: float = 60.0, replay_on_start: bool = True,
                 shutdown_replay_s: float = 2.0, fsync: bool = True) -> None:
        self.inner = inner
        self.root = Path(spool_dir) if spool_dir is not None else default_spool_dir()
        self._own_dir = self.root / f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._max_bytes, self._fsync = max_bytes, fsync
        self._retry_initial, self._retry_max = retry_initial_s, retry_max_s
        self._shutdown_replay_s = shutdown_replay_s
        self._spool: Spool | None = None  # created on the first failure: no litter when all goes well
        self._spool_lock = threading.Lock()
        self._inner_lock = threading.Lock()  # the batch processor and the replayer share the inner exporter
        self._delay = retry_initial_s
        self._retry_at = 0.0
        self._wake = threading.Event()
        self._stopped = threading.Event()
        self._adopt = replay_on_start
        self._closed = False
        self._thread = threading.Thread(target=self._replay_loop, name="pinnprov-spool-replay", daemon=True)
        self._thread.start()

    # --- SpanExporter -----------------------------------------------------------------------------
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if self._closed:
            return SpanExportResult.FAILURE
        if not spans:
            return SpanExportResult.SUCCESS
        if self.pending() == 0:
            if self._inner_export(spans):
                self._delay, self._retry_at = self._retry_initial, 0.0
                return SpanExportResult.SUCCESS
            self._backoff()
        return self._keep(encode_spans(spans).SerializeToString(), len(spans))

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        self.replay_own(deadline=time.monotonic() + timeout_millis / 1000)
        return self.inner.force_flush(timeout_millis) and self.pending() == 0

    def shutdown(self) -> None:
        if self._closed:
            return
        self._stopped.set()
        self._wake.set()
        self._thread.join(timeout=self._retry_max + 5)
        if self.pending() and time.monotonic() >= self._retry_at:
            self.replay_own(deadline=time.monotonic() + self._shutdown_replay_s)
        self._closed = True
        self.inner.shutdown()
        with self._spool_lock:
            if self._spool is not None:
                left = self._spool.pending_records(CONSUMER)
                self._spool.close()
                if left:
                    log.warning("%d span batch(es) kept in %s: delivered on the next start or by `pinnprov flush`",
                                left, self._own_dir)
                else:
                    shutil.rmtree(self._own_dir, ignore_errors=True)
                self._spool = None

    # --- spooling ---------------------------------------------------------------------------------
    def pending(self) -> int:
        """Batches of this process still waiting in its spool."""
        with self._spool_lock:
            return self._spool.pending_records(CONSUMER) if self._spool is not None else 0

    def _keep(self, payload: bytes, count: int) -> SpanExportResult:
        try:
            with self._spool_lock:
                if self._spool is None:
                    self._spool = Spool(self._own_dir, consumers=(CONSUMER,), max_bytes=self._max_bytes,
                                        segment_bytes=16 << 20, fsync=self._fsync)
                    log.warning("cannot deliver spans; keeping them in %s until the destination is back",
                                self._own_dir)
                self._spool.append(Signal.TRACES, payload)
        except Exception as error:  # noqa: BLE001 - a full disk loses these spans, never the training
            log.error("could not spool %d span(s) (%s); they are lost", count, error)
            return SpanExportResult.FAILURE
        self._wake.set()
        return SpanExportResult.SUCCESS

    def _inner_export(self, spans: Sequence[ReadableSpan]) -> bool:
        try:
            with self._inner_lock:
                return self.inner.export(spans) is SpanExportResult.SUCCESS
        except Exception:  # noqa: BLE001 - an exporter that raises is an exporter that failed
            log.debug("inner exporter raised", exc_info=True)
            return False

    def _backoff(self) -> None:
        self._retry_at = time.monotonic() + self._delay
        self._delay = min(self._delay * 2, self._retry_max)

    # --- replay -----------------------------------------------------------------------------------
    def _replay_loop(self) -> None:
        while not self._stopped.is_set():
            if time.monotonic() >= self._retry_at:
                if self._adopt:
                    self._adopt = not self._replay_abandoned()
                if self.pending():
                    self.replay_own()
            busy = self.pending() or self._adopt
            self._wake.wait(max(self._retry_at - time.monotonic(), 0.05) if busy else None)
            self._wake.clear()

    def replay_own(self, deadline: float | None = None) -> int:
        """Deliver this process's spool in order until it is empty, a delivery fails, or the deadline."""
        delivered = 0
        while deadline is None or time.monotonic() < deadline:
            with self._spool_lock:
                spool = self._spool
                entries = spool.read(spool.cursor(CONSUMER), max_records=1) if spool is not None else []
            if not entries or not self._deliver(entries[0].payload):
                break
            with self._spool_lock:
                if spool is not None and self._spool is spool:
                    spool.commit(CONSUMER, entries[0].next)
            delivered += 1
        return delivered

    def _deliver(self, payload: bytes) -> bool:
        request = ExportTraceServiceRequest.FromString(payload)
        if self._inner_export(decode_spans(request)):
            self._delay, self._retry_at = self._retry_initial, 0.0
            return True
        self._backoff()
        return False

    def _replay_abandoned(self) -> bool:
        """Deliver spools left by processes that are gone; True when none is left to do."""
        return replay_directory(self.root, self._deliver, skip=self._own_dir, stop=self._stopped).left == 0


@dataclass(frozen=True)
class ReplayReport:
    delivered: int  # batches delivered
    left: int  # spool directories not fully delivered (destination down, or stopped)
    busy: int  # spool directories skipped because a live process owns them


def replay_directory(root: Path, deliver: Callable[[bytes], bool], *, skip: Path | None = None,
                     stop: threading.Event | None = None) -> ReplayReport:
    """Replay every unowned spool under `root`, oldest first, with `deliver(payload) -> bool`.

    Stops at the first failed delivery (the destination is down: the rest would fail too). A spool owned
    by a live process is skipped (its LOCK is held). Drained spools are removed.
    """
    directories = [d for d in find_spools(root) if d != skip]
    delivered = busy = 0
    for index, directory in enumerate(directories):
        try:
            spool = Spool(directory, consumers=(CONSUMER,))
        except SpoolBusy:
            busy += 1
            continue
        try:
            while stop is None or not stop.is_set():
                entries = spool.read(spool.cursor(CONSUMER), max_records=1)
                if not entries or not deliver(entries[0].payload):
                    break
                spool.commit(CONSUMER, entries[0].next)
                delivered += 1
            remaining = spool.pending_records(CONSUMER)
        finally:
            spool.close()
        if remaining:
            return ReplayReport(delivered, len(directories) - index, busy)
        shutil.rmtree(directory, ignore_errors=True)
        log.warning("delivered the spans a previous process had spooled in %s", directory)
    return ReplayReport(delivered, 0, busy)
