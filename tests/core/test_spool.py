"""The durable spool: order, cursors per consumer, crash recovery, bounds, dead letters, one owner."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest

from pinnprov.core.spool import HEADER_SIZE, Position, Signal, Spool, SpoolBusy, SpoolFull


def _payloads(spool: Spool, start: Position, limit: int = 1000) -> list[bytes]:
    return [entry.payload for entry in spool.read(start, max_records=limit)]


def test_records_come_back_in_order_with_their_signal(tmp_path: Path) -> None:
    with Spool(tmp_path, consumers=("a",)) as spool:
        spool.append(Signal.TRACES, b"one")
        spool.append(Signal.METRICS, b"two")
        spool.append(Signal.TRACES, b"")
        entries = spool.read(spool.cursor("a"))
    assert [(e.signal, e.payload) for e in entries] == [(Signal.TRACES, b"one"), (Signal.METRICS, b"two"),
                                                        (Signal.TRACES, b"")]
    assert entries[0].next == entries[1].position


def test_each_consumer_resumes_from_its_own_committed_cursor_after_reopen(tmp_path: Path) -> None:
    with Spool(tmp_path, consumers=("fast", "slow")) as spool:
        for i in range(5):
            spool.append(Signal.TRACES, f"r{i}".encode())
        entries = spool.read(spool.cursor("fast"), max_records=3)
        spool.commit("fast", entries[-1].next)
        assert spool.pending_records("fast") == 2
        assert spool.pending_records("slow") == 5
    with Spool(tmp_path, consumers=("fast", "slow")) as spool:
        assert _payloads(spool, spool.cursor("fast")) == [b"r3", b"r4"]
        assert _payloads(spool, spool.cursor("slow")) == [b"r0", b"r1", b"r2", b"r3", b"r4"]
        # A consumer added later starts with everything still spooled.
    with Spool(tmp_path, consumers=("fast", "slow", "new")) as spool:
        assert len(_payloads(spool, spool.cursor("new"))) == 5


def test_segments_roll_and_are_deleted_once_every_consumer_passed_them(tmp_path: Path) -> None:
    with Spool(tmp_path, consumers=("a", "b"), segment_bytes=100) as spool:
        for i in range(10):
            spool.append(Signal.TRACES, bytes([i]) * 60)
        segments = sorted(tmp_path.glob("*.seg"))
        assert len(segments) == 10
        everything = spool.read(spool.cursor("a"), max_records=100)
        assert [e.payload[0] for e in everything] == list(range(10))
        spool.commit("a", everything[-1].next)
        assert len(list(tmp_path.glob("*.seg"))) == 10  # "b" still needs them
        spool.commit("b", everything[4].next)
        remaining = sorted(p.name for p in tmp_path.glob("*.seg"))
        assert remaining == [p.name for p in segments[4:]]
        assert _payloads(spool, spool.cursor("b")) == [bytes([i]) * 60 for i in range(5, 10)]


def test_torn_tail_from_a_crash_is_truncated_and_appends_continue(tmp_path: Path) -> None:
    with Spool(tmp_path) as spool:
        spool.append(Signal.TRACES, b"complete")
    segment = next(tmp_path.glob("*.seg"))
    whole = segment.stat().st_size
    with open(segment, "ab") as file:  # what a crash in the middle of a write leaves
        file.write(b"PPS1\x01\x00\x00\x00" + (1000).to_bytes(4, "little") + b"\x00" * 4 + b"partial")
    with Spool(tmp_path) as spool:
        assert segment.stat().st_size == whole
        spool.append(Signal.TRACES, b"after")
        assert _payloads(spool, spool.cursor("default")) == [b"complete", b"after"]


def test_corrupt_record_in_a_sealed_segment_is_set_aside_not_a_stall(tmp_path: Path) -> None:
    with Spool(tmp_path, segment_bytes=10) as spool:
        for name in (b"first", b"second", b"third"):
            spool.append(Signal.TRACES, name)
    second = sorted(tmp_path.glob("*.seg"))[1]
    data = bytearray(second.read_bytes())
    data[HEADER_SIZE] ^= 0xFF  # flip a payload byte: CRC mismatch
    second.write_bytes(bytes(data))
    with Spool(tmp_path, segment_bytes=10) as spool:
        assert _payloads(spool, spool.cursor("default")) == [b"first", b"third"]
    lines = (tmp_path / "dead-letter.jsonl").read_text().splitlines()
    assert len(lines) == 1 and "corrupt" in json.loads(lines[0])["reason"]


def test_bounded_spool_refuses_instead_of_growing(tmp_path: Path) -> None:
    with Spool(tmp_path, max_bytes=1000) as spool:
        for _ in range(4):
            spool.append(Signal.TRACES, b"x" * 200)
        with pytest.raises(SpoolFull):
            spool.append(Signal.TRACES, b"x" * 200)
        entries = spool.read(spool.cursor("default"), max_records=2)
        spool.commit("default", entries[-1].next)
        spool.append(Signal.TRACES, b"x" * 200)  # delivery made room again
        assert spool.pending_records("default") == 3


def test_only_one_process_owns_a_spool(tmp_path: Path) -> None:
    with Spool(tmp_path), pytest.raises(SpoolBusy):
        Spool(tmp_path)
    Spool(tmp_path).close()  # released on close


def test_wait_wakes_on_append_and_concurrent_appends_all_land(tmp_path: Path) -> None:
    with Spool(tmp_path) as spool:
        start = spool.cursor("default")
        assert spool.wait(start, 0.01) is False
        woke: list[bool] = []
        waiter = threading.Thread(target=lambda: woke.append(spool.wait(start, 30)))
        waiter.start()
        writers = [threading.Thread(target=lambda n=n: [spool.append(Signal.TRACES, f"{n}-{i}".encode())
                                                         for i in range(50)]) for n in range(4)]
        for thread in writers:
            thread.start()
        for thread in writers + [waiter]:
            thread.join()
        assert woke == [True]
        payloads = _payloads(spool, start)
        assert sorted(payloads) == sorted(f"{n}-{i}".encode() for n in range(4) for i in range(50))
        for n in range(4):  # each writer's records keep their order
            mine = [p for p in payloads if p.startswith(f"{n}-".encode())]
            assert mine == [f"{n}-{i}".encode() for i in range(50)]


def test_dead_letter_keeps_the_request_and_the_reason(tmp_path: Path) -> None:
    with Spool(tmp_path) as spool:
        path = spool.dead_letter(Signal.METRICS, b"\x00\x01poison", "sink rejected: bad value")
    entry = json.loads(path.read_text())
    assert entry["signal"] == "metrics" and entry["reason"] == "sink rejected: bad value"
    assert entry["payload_base64"] == "AAFwb2lzb24="


def test_cursor_past_deleted_segments_still_sees_new_records(tmp_path: Path) -> None:
    with Spool(tmp_path) as spool:
        spool.append(Signal.TRACES, b"a")
        spool.commit("default", spool.read(spool.cursor("default"))[-1].next)
    for segment in tmp_path.glob("*.seg"):
        os.unlink(segment)  # an operator cleaned up by hand
    with Spool(tmp_path) as spool:
        spool.append(Signal.TRACES, b"b")
        assert _payloads(spool, spool.cursor("default")) == [b"b"]


def test_two_consumers_commit_at_the_same_time(tmp_path: Path) -> None:
    # Consumer names as the collector makes them ("<sink>-<hash>"): each cursor needs its own temporary file.
    names = ("sqlite-3f2a", "monetdb-39044bb456a7")
    with Spool(tmp_path, consumers=names, fsync=False) as spool:
        for i in range(200):
            spool.append(Signal.TRACES, f"r{i}".encode())
        entries = spool.read(spool.cursor(names[0]), max_records=200)
        errors: list[BaseException] = []

        def commit_all(name: str) -> None:
            try:
                for entry in entries:
                    spool.commit(name, entry.next)
            except BaseException as error:  # noqa: BLE001 - reported below
                errors.append(error)

        threads = [threading.Thread(target=commit_all, args=(name,)) for name in names]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        assert [spool.pending_records(name) for name in names] == [0, 0]
    assert sorted(p.name for p in tmp_path.glob("cursor.*")) == [f"cursor.{name}" for name in sorted(names)]
