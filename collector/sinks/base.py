"""The one small contract every sink follows, and the sink registry.

A sink never raises into the receiver or the trainer: failures come back as an `ExportResult` so the
pipeline can retry, spool or set a poison record aside.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from collector.records import ProvRecord
from contract.export_status import ExportStatus
from contract.registry import Registry

__all__ = ["SINKS", "ExportResult", "ExportStatus", "Sink"]


@dataclass(frozen=True)
class ExportResult:
    status: ExportStatus
    written: int = 0
    detail: str = ""
    rejected: Sequence[int] = field(default_factory=tuple)  # indices of records set aside, if partial

    @property
    def ok(self) -> bool:
        return self.status is ExportStatus.SUCCESS


class Sink(Protocol):
    """Writes batches of PROV records; idempotent by record keys."""

    name: str

    def export(self, batch: Sequence[ProvRecord]) -> ExportResult: ...

    def force_flush(self, timeout_s: float = 10.0) -> bool: ...

    def shutdown(self) -> None: ...


SINKS: Registry[type] = Registry("sink")
"""Sink classes by URL scheme: sqlite, monetdb, elasticsearch (each module registers itself)."""
