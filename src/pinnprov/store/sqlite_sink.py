"""The default sink: a local SQLite file in WAL mode, written by one thread with group commit.

Why this shape:
- One writer thread owns the connection, so SQLite never sees two writers from this process.
- `export(batch)` enqueues and *waits* until the transaction holding its batch has committed: an ack means
  the records are on disk (synchronous=FULL by default). Every batch waiting when the writer wakes goes into
  the same transaction, so concurrent exporters share one fsync (group commit).
- WAL mode lets other processes (`pinnprov query`) read while training writes.
- synchronous=FULL on every path, the collector's included. NORMAL would be safe against a process crash
  but not against power loss: a WAL commit is then only durable at the next checkpoint, while the collector's
  delivery worker moves (and fsyncs) its spool cursor as soon as the commit returns, so the spool would drop
  requests whose rows the store can still lose. Keeping that right would need a cursor that trails a
  checkpoint; it is not worth it: the fsync is paid once per group commit (the collector merges up to 64
  requests, 32k spans, into one), about 4-8 ms here, i.e. well under 1 us a span; measured FULL vs NORMAL
  on 4096-span transactions, the difference was inside the run-to-run noise.
- It never raises: a busy/locked/full database gives RETRYABLE (the caller keeps the batch); a record that
  violates a constraint is found by replaying the group record by record under savepoints and comes back
  as REJECTED with its index, while the other records are written.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pinnprov.store.migrations import upgrade_sqlite
from pinnprov.store.records import ProvRecord
from pinnprov.store.sink import SINKS, ExportResult, ExportStatus
from pinnprov.store.sqlite_writes import write_records

log = logging.getLogger(__name__)

# Errors that say "this record can never be written" rather than "the database is unavailable right now".
_POISON = (sqlite3.IntegrityError, sqlite3.InterfaceError, sqlite3.DataError, OverflowError, TypeError, ValueError)


@dataclass
class _Pending:
    records: Sequence[ProvRecord]
    done: threading.Event = field(default_factory=threading.Event)
    result: ExportResult | None = None


def connect_writer(path: Path, *, busy_timeout_s: float, synchronous: str = "FULL") -> sqlite3.Connection:
    """A write connection in WAL mode with the schema applied; raises for unusable paths."""
    conn = sqlite3.connect(str(path), timeout=busy_timeout_s, isolation_level=None, check_same_thread=False)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={synchronous}")
        conn.execute(f"PRAGMA busy_timeout={int(busy_timeout_s * 1000)}")
        upgrade_sqlite(conn)
    except BaseException:
        conn.close()
        raise
    return conn


@SINKS.register("sqlite")
class SqliteSink:
    """Idempotent PROV writer for one SQLite file (see module docstring)."""

    def __init__(
        self,
        path: str | Path,
        *,
        name: str = "sqlite",
        busy_timeout_s: float = 30.0,
        export_timeout_s: float = 120.0,
        synchronous: str = "FULL",
    ) -> None:
        if synchronous.upper() not in {"FULL", "NORMAL", "EXTRA", "OFF"}:
            raise ValueError(f"synchronous: invalid value {synchronous!r} (FULL, NORMAL, EXTRA or OFF)")
        self.name = name
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._export_timeout_s = export_timeout_s
        # Opened here, not in the thread, so a bad path or a newer schema fails the constructor clearly.
        self._conn = connect_writer(self.path, busy_timeout_s=busy_timeout_s, synchronous=synchronous.upper())
        self._queue: list[_Pending] = []
        self._in_flight = 0
        self._cond = threading.Condition()
        self._closing = False
        self._thread = threading.Thread(target=self._run, name=f"pinnprov-sqlite-writer:{self.path.name}", daemon=True)
        self._thread.start()

    # --- Sink contract ----------------------------------------------------------------------------
    def export(self, batch: Sequence[ProvRecord]) -> ExportResult:
        if not batch:
            return ExportResult(ExportStatus.SUCCESS, 0)
        pending = _Pending(list(batch))
        with self._cond:
            if self._closing:
                return ExportResult(ExportStatus.RETRYABLE, detail="sqlite sink is shut down")
            self._queue.append(pending)
            self._cond.notify_all()
        if not pending.done.wait(self._export_timeout_s):
            # The batch may still commit later; a replay is harmless because writes are idempotent.
            return ExportResult(ExportStatus.RETRYABLE, detail=f"no commit within {self._export_timeout_s:g}s")
        assert pending.result is not None
        return pending.result

    def force_flush(self, timeout_s: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while self._queue or self._in_flight:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
        return True

    def shutdown(self) -> None:
        with self._cond:
            if self._closing:
                return
            self._closing = True
            self._cond.notify_all()
        self._thread.join(timeout=max(self._export_timeout_s, 1.0))
        try:
            self._conn.close()
        except sqlite3.Error:
            log.exception("closing %s failed", self.path)

    # --- writer thread ----------------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closing:
                    self._cond.wait()
                if not self._queue:  # closing and drained
                    return
                group, self._queue = self._queue, []
                self._in_flight = len(group)
            try:
                results = self._write_group(group)
            except BaseException as error:  # noqa: BLE001 - the writer thread must answer every waiter
                log.exception("sqlite writer failed")
                results = [ExportResult(ExportStatus.RETRYABLE, detail=f"writer error: {error}")] * len(group)
            for pending, result in zip(group, results, strict=True):
                pending.result = result
                pending.done.set()
            with self._cond:
                self._in_flight = 0
                self._cond.notify_all()

    def _rollback(self) -> None:
        try:
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
        except sqlite3.Error:
            log.exception("rollback failed on %s", self.path)

    def _write_group(self, group: list[_Pending]) -> list[ExportResult]:
        """All batches in one transaction; on a poison record fall back to record-by-record isolation."""
        try:
            self._conn.execute("BEGIN IMMEDIATE")
            for pending in group:
                write_records(self._conn, pending.records)
            self._conn.execute("COMMIT")
            return [ExportResult(ExportStatus.SUCCESS, len(p.records)) for p in group]
        except _POISON as error:
            self._rollback()
            log.info("group write hit a bad record (%s); isolating it", error)
        except sqlite3.Error as error:  # OperationalError: locked, busy, disk full, read-only, I/O
            self._rollback()
            log.warning("sqlite store %s unavailable: %s", self.path, error)
            return [ExportResult(ExportStatus.RETRYABLE, detail=f"sqlite: {error}")] * len(group)
        return [self._write_isolating(pending) for pending in group]

    def _write_isolating(self, pending: _Pending) -> ExportResult:
        """One transaction for the batch, one savepoint per record; bad records are skipped and reported."""
        rejected: list[int] = []
        reasons: list[str] = []
        try:
            self._conn.execute("BEGIN IMMEDIATE")
            for index, record in enumerate(pending.records):
                self._conn.execute("SAVEPOINT record")
                try:
                    write_records(self._conn, [record])
                except _POISON as error:
                    self._conn.execute("ROLLBACK TO record")
                    rejected.append(index)
                    if len(reasons) < 3:
                        reasons.append(f"{type(record).__name__} {getattr(record, 'run_id', '')}: {error}")
                self._conn.execute("RELEASE record")
            self._conn.execute("COMMIT")
        except sqlite3.Error as error:
            self._rollback()
            return ExportResult(ExportStatus.RETRYABLE, detail=f"sqlite: {error}")
        written = len(pending.records) - len(rejected)
        if not rejected:
            return ExportResult(ExportStatus.SUCCESS, written)
        log.warning("rejected %d record(s) in %s: %s", len(rejected), self.path, "; ".join(reasons))
        return ExportResult(ExportStatus.REJECTED, written, "; ".join(reasons), tuple(rejected))
