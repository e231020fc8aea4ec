"""The MonetDB sink: bulk COPY ... ON CLIENT into staging tables, then idempotent INSERT/MERGE, one transaction.

Why this shape:
- Bulk, not row by row: each batch is one read of its `run` rows, then per table a COPY whose CSV payload
  pymonetdb streams from memory (an Uploader serving exactly the names we asked for, nothing from disk) and one
  set-based INSERT ... WHERE NOT EXISTS or MERGE (pinnprov/store/monetdb_copy.py). Same rows and semantics as the
  SQLite sink, from the same write plans (pinnprov/store/write_plan.py).
- Crash-safe on MonetDB 11.45: every table is written by one statement per transaction and never read after it
  (a second statement over a VARCHAR column a join-update changed kills the server;
  pinnprov/store/monetdb_run_merge.py).
- One writer per connection: export() is serialised; the collector runs one delivery worker per sink.
  MonetDB uses optimistic concurrency: a transaction that conflicts with another writer (a second collector,
  a user's UPDATE) is aborted at COMMIT; it is simply retried a few times with jitter.
- Connect lazily, so the collector starts and spools while MonetDB is down; a lost connection is dropped
  and re-opened (with the schema checked) on the next export.
- Never raises: unavailable -> RETRYABLE; a record MonetDB can never take (constraint, value too long) is
  found by writing the batch record by record, and comes back REJECTED with its index.
"""

from __future__ import annotations

import contextlib
import logging
import random
import re
import threading
import time
from collections.abc import Sequence
from typing import Any

from pinnprov.core.urls import redact
from pinnprov.store.monetdb_copy import OPERATIONS, current_runs_sql, plan, read_params
from pinnprov.store.monetdb_run_merge import RUN_COLUMNS
from pinnprov.store.monetdb_store import apply_monetdb, parse_monetdb_url
from pinnprov.store.records import ProvRecord
from pinnprov.store.sink import SINKS, ExportResult, ExportStatus
from pinnprov.store.write_plan import collect

log = logging.getLogger(__name__)


class _QuietConnectErrors(logging.Filter):
    """pymonetdb logs every failed connect at ERROR; the collector already says once that the store is
    unavailable (and again when it writes again), so a MonetDB that is down for an hour is not a line a second."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Could not connect to")


logging.getLogger("pymonetdb.mapi").addFilter(_QuietConnectErrors())

_SQLSTATE = re.compile(r"\b([0-9A-Z]{5})!")


def classify(error: BaseException) -> str:
    """'conflict' (retry now), 'poison' (this data can never be written) or 'unavailable' (retry later)."""
    import pymonetdb

    if isinstance(error, OSError | pymonetdb.InterfaceError):
        return "unavailable"
    message = str(error)
    if "concurrency conflict" in message.lower() or "transaction is aborted" in message.lower():
        return "conflict"
    match = _SQLSTATE.search(message)
    code = match.group(1) if match else ""
    if code.startswith(("22", "23")) or code in ("40002", "M0M29"):
        return "poison"
    if code in ("40000", "40001"):
        return "conflict"
    if isinstance(error, TypeError | ValueError | OverflowError):  # a value our own encoding cannot write
        return "poison"
    return "unavailable"


class _MemoryUploader:
    """Serves COPY ... ON CLIENT requests from in-memory payloads; refuses any other file name."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}

    def handle_upload(self, upload: Any, filename: str, text_mode: bool, skip_amount: int) -> None:
        data = self.files.get(filename)
        if data is None:
            upload.send_error(f"pinnprov: no upload named {filename!r}")
            return
        if text_mode and skip_amount > 0:
            data = b"".join(data.splitlines(keepends=True)[skip_amount:])
        upload.binary_writer().write(data)

    def cancel(self) -> None:
        pass


@SINKS.register("monetdb")
class MonetdbSink:
    """Idempotent PROV writer for one MonetDB database (see module docstring)."""

    def __init__(self, url: str, *, name: str = "monetdb", connect_timeout_s: int = 5,
                 conflict_retries: int = 5) -> None:
        self.name = name
        self.url = redact(url)
        self._connect_args = parse_monetdb_url(url)  # a bad URL fails here, clearly, at startup
        self._connect_timeout_s = connect_timeout_s
        self._conflict_retries = conflict_retries
        self._conn: Any = None
        self._uploader = _MemoryUploader()
        self._lock = threading.Lock()
        self._closed = False

    # --- Sink contract ----------------------------------------------------------------------------
    def export(self, batch: Sequence[ProvRecord]) -> ExportResult:
        if not batch:
            return ExportResult(ExportStatus.SUCCESS, 0)
        with self._lock:
            if self._closed:
                return ExportResult(ExportStatus.RETRYABLE, detail="monetdb sink is shut down")
            kind, error = self._write_retrying(batch)
            if kind == "ok":
                return ExportResult(ExportStatus.SUCCESS, len(batch))
            if kind == "poison":
                log.info("batch hit a record MonetDB refuses (%s); isolating it", error)
                return self._write_isolating(batch)
            return ExportResult(ExportStatus.RETRYABLE, detail=f"monetdb {self.url}: {kind}: {error}")

    def force_flush(self, timeout_s: float = 10.0) -> bool:
        return True  # export() commits before it returns

    def shutdown(self) -> None:
        with self._lock:
            self._closed = True
            self._disconnect()

    # --- writing ----------------------------------------------------------------------------------
    def _write_retrying(self, records: Sequence[ProvRecord]) -> tuple[str, str]:
        """('ok', '') or (classification, message) after retrying conflicts."""
        for attempt in range(self._conflict_retries + 1):
            try:
                self._write(records)
                return "ok", ""
            except Exception as error:  # noqa: BLE001 - classified below; a sink never raises
                kind = classify(error)
                message = " ".join(str(error).split())[:500] or type(error).__name__
                self._rollback()
                if kind == "unavailable":
                    self._disconnect()  # reconnect (and re-check the schema) next time
                if kind != "conflict" or attempt == self._conflict_retries:
                    return kind, message
                time.sleep(random.uniform(0.01, 0.05) * (attempt + 1))
        return "conflict", "retries exhausted"

    def _write(self, records: Sequence[ProvRecord]) -> None:
        batch = collect(records)
        conn = self._connection()
        cursor = conn.cursor()
        current: dict[str, dict[str, Any]] = {}
        if batch.run_ids():
            params = read_params(batch)
            cursor.execute(current_runs_sql(len(batch.run_ids()), len(batch.run_names())), params)
            for values in cursor.fetchall():
                row = dict(zip(RUN_COLUMNS, values, strict=True))
                current[row["run_id"]] = row
        steps = plan(batch, current)
        self._uploader.files = {op.name: op.payload(rows) for op, rows in steps
                                if op.use_copy(len(rows))}
        try:
            for op, rows in steps:
                cursor.execute(op.copy_sql(len(rows)) if op.use_copy(len(rows)) else op.insert_sql(rows))
                cursor.execute(op.apply_sql)
            conn.commit()
        finally:
            self._uploader.files = {}

    def _write_isolating(self, batch: Sequence[ProvRecord]) -> ExportResult:
        rejected: list[int] = []
        reasons: list[str] = []
        for index, record in enumerate(batch):
            kind, error = self._write_retrying([record])
            if kind == "poison":
                rejected.append(index)
                if len(reasons) < 3:
                    reasons.append(f"{type(record).__name__} {getattr(record, 'run_id', '')}: {error}")
            elif kind != "ok":
                return ExportResult(ExportStatus.RETRYABLE, detail=f"monetdb {self.url}: {kind}: {error}")
        written = len(batch) - len(rejected)
        if not rejected:
            return ExportResult(ExportStatus.SUCCESS, written)
        log.warning("rejected %d record(s) in %s: %s", len(rejected), self.url, "; ".join(reasons))
        return ExportResult(ExportStatus.REJECTED, written, "; ".join(reasons), tuple(rejected))

    # --- connection -------------------------------------------------------------------------------
    def _connection(self) -> Any:
        if self._conn is not None:
            return self._conn
        import pymonetdb

        conn = pymonetdb.connect(autocommit=False, connect_timeout=self._connect_timeout_s, **self._connect_args)
        try:
            conn.set_uploader(self._uploader)
            apply_monetdb(conn)
            cursor = conn.cursor()
            for op in OPERATIONS:  # session-scoped staging tables, emptied at every commit
                cursor.execute(op.stage_ddl())
            conn.commit()
        except BaseException:
            conn.close()
            raise
        log.info("connected to %s", self.url)
        self._conn = conn
        return conn

    def _rollback(self) -> None:
        if self._conn is None:
            return
        try:
            self._conn.rollback()
        except Exception:  # noqa: BLE001 - a dead connection cannot roll back; it is dropped instead
            self._disconnect()

    def _disconnect(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
            self._conn = None
