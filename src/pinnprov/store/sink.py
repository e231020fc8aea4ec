"""The one small contract every sink follows, and the sink registry.

A sink never raises into the receiver or the trainer: failures come back as an `ExportResult` so the
pipeline can retry, spool or set a poison record aside.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from pinnprov.core.export_status import ExportStatus
from pinnprov.core.registry import Registry
from pinnprov.store.records import ProvRecord

__all__ = ["SINKS", "ExportResult", "ExportStatus", "Sink", "SinkFactory", "SinkRegistry"]


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


SinkFactory = Callable[..., Sink]
"""A sink class: called with its target (a SQLite path or a URL) and its options, which differ per sink."""

_SinkClass = TypeVar("_SinkClass", bound=SinkFactory)


class SinkRegistry(Registry[SinkFactory]):
    """The registry of sink classes; `register` checks that a class makes Sinks and keeps its own type.

    (Registry.register returns its entry typed as the registry's T, which would make `SqliteSink` a mere
    SinkFactory to the type checker: no attributes, no use as an annotation.)
    """

    def register(self, name: str) -> Callable[[_SinkClass], _SinkClass]:
        def decorator(entry: _SinkClass) -> _SinkClass:
            self.add(name, entry)
            return entry

        return decorator


SINKS = SinkRegistry("sink")
"""Sink classes by URL scheme: sqlite, monetdb, elasticsearch (each module registers itself)."""
