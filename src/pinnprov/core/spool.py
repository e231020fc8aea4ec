"""A durable, append-only spool of encoded OTLP requests: what makes "acknowledged" mean "will be delivered".

The collector appends every accepted request here (write + fsync) *before* it answers the client, and one
delivery worker per sink reads it in order from its own committed cursor. The trainer-side
`SpoolingSpanExporter` uses the same spool for what it could not deliver. Why one log with cursors rather
than a queue per sink: a sink that is down (MonetDB restarted) falls behind without holding the others back,
and a restart resumes every sink exactly where it committed (at-least-once; stores are idempotent).

Layout of a spool directory:
    LOCK                      flock()ed by the one process that owns the spool
    0000000000000001.seg ...  segments of records: 16-byte header (magic, signal, length, crc32) + payload
    cursor.<consumer>         "segment offset" of the next record that consumer has not delivered yet
    dead-letter.jsonl         requests set aside (poison, corrupt), one JSON object per line

A crash can only tear the tail of the last segment (appends are one write each); opening truncates it.
Segments behind every cursor are deleted. Bounded: `append` raises `SpoolFull` past `max_bytes` pending, so
the receiver answers "retry later" instead of growing without limit.
"""

from __future__ import annotations

import bisect
import contextlib
import fcntl
import logging
import os
import re
import threading
import time
from array import array
from dataclasses import dataclass
from pathlib import Path

from pinnprov.core.dead_letters import DeadLetters
from pinnprov.core.spool_format import HEADER_SIZE, Signal, encode_header, read_record, scan_segment

# Signal and HEADER_SIZE belong to the record format but are re-exported: users of the spool name them from here.
__all__ = ["HEADER_SIZE", "Position", "Signal", "Spool", "SpoolBusy", "SpoolEntry", "SpoolFull"]

log = logging.getLogger(__name__)

_SEGMENT = re.compile(r"^(\d{16})\.seg$")
_CONSUMER = re.compile(r"^[A-Za-z0-9_.-]{1,100}$")


class SpoolFull(Exception):
    """More than `max_bytes` are waiting for delivery: the client should retry later."""


class SpoolBusy(Exception):
    """Another process owns this spool directory."""


@dataclass(frozen=True, order=True)
class Position:
    segment: int
    offset: int


@dataclass(frozen=True)
class SpoolEntry:
    position: Position  # where the record starts
    next: Position  # where the record after it starts: commit this once the record is delivered
    signal: Signal
    payload: bytes


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Spool:
    """One directory, one owning process; thread-safe appends and reads."""

    def __init__(
        self,
        directory: Path,
        *,
        consumers: tuple[str, ...] = ("default",),
        max_bytes: int = 1 << 30,
        segment_bytes: int = 64 << 20,
        fsync: bool = True,
    ) -> None:
        for name in consumers:
            if not _CONSUMER.match(name):
                raise ValueError(f"spool consumer name {name!r} must be 1-100 of [A-Za-z0-9_.-]")
        self.directory = Path(directory)
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes
        self.fsync = fsync
        self.consumers = tuple(consumers)
        self._lock = threading.Lock()
        self._appended = threading.Condition(self._lock)
        self.dead_letters = DeadLetters(self.directory / "dead-letter.jsonl", fsync)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._lock_fd = os.open(self.directory / "LOCK", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lock_fd)
            raise SpoolBusy(f"spool {self.directory} is in use by another process") from None
        self._offsets: dict[int, array[int]] = {}  # segment -> start offset of every record in it
        self._sizes: dict[int, int] = {}
        self._recover()
        self._cursors = {name: self._load_cursor(name) for name in self.consumers}
        self._write_fd = -1
        self._open_for_append(self._first_write_segment())
        self._closed = False

    # --- opening ----------------------------------------------------------------------------------
    def _recover(self) -> None:
        segments = sorted(int(m.group(1)) for p in self.directory.iterdir() if (m := _SEGMENT.match(p.name)))
        for index, segment in enumerate(segments):
            path = self._segment_path(segment)
            offsets, valid_end = scan_segment(path)
            if valid_end < path.stat().st_size:
                if index == len(segments) - 1:
                    log.warning("spool %s: truncating a torn record at the end of %s", self.directory, path.name)
                else:
                    log.error("spool %s: %s is corrupt after byte %d; the rest is set aside", self.directory,
                              path.name, valid_end)
                    self.dead_letters.add_file_tail(path, valid_end, "corrupt spool segment")
                os.truncate(path, valid_end)
            self._offsets[segment] = offsets
            self._sizes[segment] = valid_end

    def _load_cursor(self, name: str) -> Position:
        first = Position(min(self._sizes), 0) if self._sizes else Position(1, 0)
        try:
            segment, offset = (int(x) for x in (self.directory / f"cursor.{name}").read_text().split())
        except (FileNotFoundError, ValueError):
            return first  # a new consumer starts with whatever is still spooled
        cursor = Position(segment, offset)
        return max(cursor, first)

    def _first_write_segment(self) -> int:
        """Continue the last segment, unless a cursor points past it (segments deleted by hand)."""
        last = max(self._sizes, default=0)
        end = Position(last, self._sizes.get(last, 0))
        ahead = [c for c in self._cursors.values() if c > end]
        segment = max([last, 1] + [c.segment + 1 for c in ahead])
        for name, cursor in self._cursors.items():
            if cursor > end:
                self._cursors[name] = Position(segment, 0)
        return segment

    def _segment_path(self, segment: int) -> Path:
        return self.directory / f"{segment:016d}.seg"

    def _open_for_append(self, segment: int) -> None:
        if self._write_fd >= 0:
            if self.fsync:
                os.fsync(self._write_fd)
            os.close(self._write_fd)
        self._write_fd = os.open(self._segment_path(segment), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        if segment not in self._sizes:
            self._sizes[segment] = 0
            self._offsets[segment] = array("q")
            if self.fsync:
                _fsync_dir(self.directory)
        self._segment = segment

    # --- writing ----------------------------------------------------------------------------------
    def append(self, signal: Signal, payload: bytes) -> Position:
        """Write one record durably; raises SpoolFull (retry later) or OSError (disk trouble)."""
        record = encode_header(signal, payload)
        with self._lock:
            if self._closed:
                raise OSError("spool is closed")
            if self._pending_bytes_locked() + len(record) + len(payload) > self.max_bytes:
                raise SpoolFull(f"spool {self.directory} holds more than {self.max_bytes} bytes awaiting delivery")
            if self._sizes[self._segment] > 0 and self._sizes[self._segment] + len(payload) > self.segment_bytes:
                self._open_for_append(self._segment + 1)
            start = self._sizes[self._segment]
            try:
                written = os.write(self._write_fd, record + payload)
                if written != len(record) + len(payload):
                    raise OSError(f"short write to the spool ({written} bytes)")
                if self.fsync:
                    os.fdatasync(self._write_fd)
            except OSError:
                os.ftruncate(self._write_fd, start)  # keep the log whole: the client will resend
                raise
            self._sizes[self._segment] = start + len(record) + len(payload)
            self._offsets[self._segment].append(start)
            self._appended.notify_all()
            return Position(self._segment, start)

    # --- reading ----------------------------------------------------------------------------------
    def cursor(self, consumer: str) -> Position:
        with self._lock:
            return self._cursors[consumer]

    def read(self, start: Position, max_records: int = 64, max_bytes: int = 16 << 20) -> list[SpoolEntry]:
        """Records from `start` on, in order, at most `max_records` (always at least one if any)."""
        entries: list[SpoolEntry] = []
        total = 0
        position = start
        while len(entries) < max_records:
            with self._lock:
                segments = sorted(s for s in self._sizes if s >= position.segment)
                if not segments:
                    break
                if position.segment not in self._sizes:
                    position = Position(segments[0], 0)
                end = self._sizes[position.segment]
                last = position.segment == self._segment
            if position.offset >= end:
                if last:
                    break
                position = Position(position.segment + 1, 0)
                continue
            with open(self._segment_path(position.segment), "rb") as file:
                file.seek(position.offset)
                while position.offset < end and len(entries) < max_records and total < max_bytes:
                    record = read_record(file, position.offset, end)
                    if record is None:
                        self._cut_corrupt(position)
                        end = position.offset
                        break
                    signal, payload = record
                    following = Position(position.segment, position.offset + HEADER_SIZE + len(payload))
                    entries.append(SpoolEntry(position, following, signal, payload))
                    total += len(payload)
                    position = following
            if total >= max_bytes:
                break
        return entries

    def _cut_corrupt(self, position: Position) -> None:
        """Bit rot in a segment: set its rest aside and cut it there, rather than stall every sink."""
        log.error("spool %s: corrupt record at %s; the rest of that segment is set aside", self.directory, position)
        path = self._segment_path(position.segment)
        with self._lock:
            self.dead_letters.add_file_tail(path, position.offset, "corrupt spool record")
            os.truncate(path, position.offset)
            self._sizes[position.segment] = position.offset
            offsets = self._offsets[position.segment]
            del offsets[bisect.bisect_left(offsets, position.offset):]

    def wait(self, start: Position, timeout_s: float) -> bool:
        """Block until a record exists at or after `start` (True) or the timeout passes (False)."""
        deadline = time.monotonic() + timeout_s
        with self._appended:
            while not self._closed:
                if self._has_data_locked(start):
                    return True
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._appended.wait(remaining)
            return False

    def _has_data_locked(self, start: Position) -> bool:
        return any(size > (start.offset if segment == start.segment else 0)
                   for segment, size in self._sizes.items() if segment >= start.segment)

    def commit(self, consumer: str, position: Position) -> None:
        """Persist that `consumer` delivered everything before `position`; drop segments nobody needs."""
        path = self.directory / f"cursor.{consumer}"
        # One temporary per consumer: with_suffix(".tmp") made every "cursor.<sink>-<hash>" share cursor.tmp,
        # so two delivery workers committing at once lost a rename and one worker thread died.
        temporary = path.with_name(path.name + ".tmp")
        with open(temporary, "w") as file:
            file.write(f"{position.segment} {position.offset}\n")
            if self.fsync:
                file.flush()
                os.fsync(file.fileno())
        os.replace(temporary, path)
        with self._lock:
            self._cursors[consumer] = max(self._cursors[consumer], position)
            oldest = min(self._cursors.values()).segment
            for segment in [s for s in self._sizes if s < oldest and s != self._segment]:
                del self._sizes[segment]
                del self._offsets[segment]
                with contextlib.suppress(FileNotFoundError):
                    self._segment_path(segment).unlink()

    # --- accounting -------------------------------------------------------------------------------
    def _pending_bytes_locked(self, consumer: str | None = None) -> int:
        start = self._cursors[consumer] if consumer else min(self._cursors.values(), default=Position(1, 0))
        return sum(size - (start.offset if segment == start.segment else 0)
                   for segment, size in self._sizes.items() if segment >= start.segment)

    def pending_bytes(self, consumer: str | None = None) -> int:
        """Bytes not yet delivered by `consumer` (or by the slowest consumer)."""
        with self._lock:
            return self._pending_bytes_locked(consumer)

    def pending_records(self, consumer: str) -> int:
        """Records not yet delivered by `consumer` (its queue depth)."""
        with self._lock:
            start = self._cursors[consumer]
            count = 0
            for segment, offsets in self._offsets.items():
                if segment > start.segment:
                    count += len(offsets)
                elif segment == start.segment:
                    count += len(offsets) - bisect.bisect_left(offsets, start.offset)
            return count

    def size_bytes(self) -> int:
        """Bytes of segment files on disk."""
        with self._lock:
            return sum(self._sizes.values())

    # --- dead letters -----------------------------------------------------------------------------
    def dead_letter(self, signal: Signal, payload: bytes, reason: str) -> Path:
        """Set a request aside for a human (one JSON line, fsynced) and return the file's path."""
        return self.dead_letters.add(signal.name.lower(), payload, reason)

    # --- closing ----------------------------------------------------------------------------------
    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._appended.notify_all()
            if self.fsync:
                os.fsync(self._write_fd)
            os.close(self._write_fd)
        fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
        os.close(self._lock_fd)

    def __enter__(self) -> Spool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
