"""The spool's record format: 16-byte header (magic, signal, payload length, CRC-32) + payload.

Kept apart from the spool's bookkeeping so the on-disk format is one small, reviewable thing. The CRC covers
the signal byte and the payload, so a torn write (a crash mid-append) or bit rot is detected, never replayed.
"""

from __future__ import annotations

import enum
import struct
import zlib
from array import array
from pathlib import Path
from typing import BinaryIO

MAGIC = b"PPS1"
HEADER = struct.Struct("<4sB3xII")  # magic, signal, padding, payload length, crc32(signal byte + payload)
HEADER_SIZE = HEADER.size
MAX_RECORD_BYTES = 1 << 30


class Signal(enum.IntEnum):
    TRACES = 1
    METRICS = 2


def _crc(signal: int, payload: bytes) -> int:
    return zlib.crc32(payload, zlib.crc32(bytes([signal])))


def encode_header(signal: Signal, payload: bytes) -> bytes:
    return HEADER.pack(MAGIC, int(signal), len(payload), _crc(int(signal), payload))


def read_record(file: BinaryIO, offset: int, end: int) -> tuple[Signal, bytes] | None:
    """The record at `offset` (file positioned there) if it is whole and intact within `end`, else None."""
    header = file.read(HEADER_SIZE)
    if len(header) < HEADER_SIZE:
        return None
    magic, signal, length, crc = HEADER.unpack(header)
    if magic != MAGIC or signal not in Signal._value2member_map_ or length > MAX_RECORD_BYTES:
        return None
    if offset + HEADER_SIZE + length > end:
        return None
    payload = file.read(length)
    if len(payload) != length or _crc(signal, payload) != crc:
        return None
    return Signal(signal), payload


def scan_segment(path: Path) -> tuple[array[int], int]:
    """Start offsets of the valid records of a segment file and where its valid part ends."""
    offsets = array("q")
    end = path.stat().st_size
    with open(path, "rb") as file:
        position = 0
        while read_record(file, position, end) is not None:
            offsets.append(position)
            position = file.tell()
    return offsets, position
