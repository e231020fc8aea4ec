"""What the experiment drivers read from and write to the provenance store, through the collector's APIs.

Reads use the named queries (`runs`, `latest`, `epochs`, `lr`, `adaptations`) and run selection, so every
table in a sweep summary or the paper's report is exactly what `pinnprov query` prints. The only writes are a
failed run's end (for a process that died before its own telemetry could say so), steering commands, and the
retry relation between a failed attempt and the run that repeats it (a sweep on a cluster).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pinnprov.core.steering import SteeringCommand

if TYPE_CHECKING:
    from pinnprov.store.access import Store
    from pinnprov.store.records import ProvRecord

FINISHED = ("completed", "stopped", "failed")


@dataclass(frozen=True)
class RunInfo:
    run_id: str
    run_name: str
    status: str
    error: str
    last_epoch: int | None


@dataclass(frozen=True)
class Progress:
    """A run's latest stored epoch (Table 2's row for it)."""

    epoch: int
    loss: float
    loss_residual: float
    loss_data: float
    status: str


@dataclass(frozen=True)
class Table:
    """A query result with its name, ready for printing, CSV and HTML."""

    name: str
    columns: list[str]
    rows: list[tuple[Any, ...]]


class StoreView:
    """Opens the store per call (read-only for reads), so a long-running driver never holds a stale snapshot."""

    def __init__(self, url: str) -> None:
        from pinnprov.core.settings import resolve_store_url

        self.url = resolve_store_url(url)

    @contextmanager
    def _read(self) -> Iterator[Store]:
        from pinnprov.store.access import open_store

        with open_store(self.url) as store:
            yield store

    def exists(self) -> bool:
        try:
            with self._read():
                return True
        except FileNotFoundError:
            return False

    # --- named queries -----------------------------------------------------------------------------
    def query(self, name: str, *, run: str | None = None, **options: Any) -> Table:
        """Run named query `name`; `run` is a selector (name, id, prefix, 'latest') for per-run queries."""
        from pinnprov.store.queries import QueryOptions, run_query
        from pinnprov.store.run_select import resolve_run

        with self._read() as store:
            run_id = resolve_run(store, run) if run is not None else None
            result = run_query(store, name, QueryOptions(run_id=run_id, **options))
        return Table(name, list(result.columns), [tuple(row) for row in result.rows])

    def runs(self, experiment: str | None = None) -> list[dict[str, Any]]:
        table = self.query("runs", experiment=experiment)
        return [dict(zip(table.columns, row, strict=True)) for row in table.rows]

    def find_run(self, run_name: str) -> RunInfo | None:
        """The run with exactly this name, or None (not in the store yet, or never started)."""
        from pinnprov.store.run_select import run_by_name

        with self._read() as store:
            found = run_by_name(store, run_name)
        return None if found is None else RunInfo(*found)

    def progress(self, experiment: str) -> dict[str, Progress]:
        """Latest epoch of each run of the experiment, by run name (from the `latest` query, Table 2)."""
        table = self.query("latest", experiment=experiment)
        index = {column: i for i, column in enumerate(table.columns)}
        progress = {}
        for row in table.rows:
            if row[index["epoch"]] is None:
                continue
            progress[row[index["run_name"]]] = Progress(
                epoch=int(row[index["epoch"]]),
                loss=_num(row[index["loss"]]),
                loss_residual=_num(row[index["loss_residual"]]),
                loss_data=_num(row[index["loss_data"]]),
                status=row[index["status"]] or "running",
            )
        return progress

    # --- writes --------------------------------------------------------------------------------------
    def mark_failed(
        self,
        *,
        run_name: str,
        experiment: str,
        started_at: float,
        error: str,
        hyperparameters: Mapping[str, str],
        run_id: str | None = None,
    ) -> str:
        """Record a run as failed with its error; for a run that never reached the store, record it first.

        Written through the same sink the collector uses, so the rows are exactly those a trainer's own
        failure would produce (status, error, end time) and the PROV views include them.
        """
        from pinnprov.store.records import RunEndRecord, RunStartRecord

        records: list[ProvRecord] = []
        epochs = 0
        if run_id is None:
            run_id = secrets.token_hex(16)
            known = {key: value for key, value in hyperparameters.items() if key in ("optimizer", "activation")}
            others = {f"sweep.{key}": value for key, value in hyperparameters.items() if key not in known}
            records.append(
                RunStartRecord(
                    run_id=run_id, record_id=secrets.token_hex(8), run_name=run_name, experiment=experiment,
                    started_at=started_at, hyperparameters={**known, **others}, service="pinnprov-sweep",
                )
            )
        else:
            info = self.find_run(run_name)
            epochs = (info.last_epoch + 1) if info and info.last_epoch is not None else 0
        records.append(
            RunEndRecord(
                run_id=run_id, record_id=secrets.token_hex(8), ended_at=time.time(), status="failed",
                epochs=epochs, error=error, run_name=run_name, experiment=experiment, started_at=started_at,
            )
        )
        export_records(self.url, records, f"the failure of {run_name}")
        return run_id

    def record_retry(self, *, run_id: str, failed_run_id: str, agent: str, reason: str) -> bool:
        """Store that `run_id` re-trains the failed `failed_run_id` (PROV wasInformedBy); idempotent."""
        from pinnprov.store.access import open_store
        from pinnprov.store.run_relations import RETRY_OF, record_relation

        with open_store(self.url, read_only=False) as store:
            return record_relation(store, run_id=run_id, related_run_id=failed_run_id, relation=RETRY_OF,
                                   agent=agent, reason=reason)

    def steer(self, run_id: str, command: SteeringCommand) -> None:
        """Queue a steering command (ValueError for a finished or unknown run)."""
        from pinnprov.store.access import open_store
        from pinnprov.store.steering_channel import submit

        with open_store(self.url, read_only=False) as store:
            submit(store, run_id, command)


def _num(value: Any) -> float:
    return float(value) if value is not None else float("nan")


def export_records(url: str, records: list[Any], what: str) -> None:
    """Write records through the collector's own sink for `url`: exactly the rows a trainer's telemetry gives."""
    from pinnprov.collector.sinks import open_sink

    sink = open_sink(url)
    try:
        result = sink.export(records)
        sink.force_flush()
    finally:
        sink.shutdown()
    if not result.ok:
        raise RuntimeError(f"could not record {what} in {url}: {result.detail}")
