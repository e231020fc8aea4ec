"""The alert engine's memory, kept in the provenance store so that it survives a collector restart.

Without it a restart forgets that a rule is already firing (it would fire, and notify, again at the next
epoch where the condition still holds) and which epochs were evaluated (the spool replays undelivered
requests, and their firings would notify again). Two tables of the store's schema (pinnprov/store/schema.py), in
the store the collector steers through (SQLite or MonetDB, portable SQL, beside the PROV tables):

    alert_engine_run   (run_id, last_epoch, states)   per run: the last evaluated epoch and, per rule,
                                                      firing / streak start / best value (JSON)
    alert_engine_fired (alert_id, run_id, epoch, record)  every firing, claimed *before* its actions run:
                                                      a firing whose id is already there is never notified
                                                      again, and its AlertRecord is returned for replays

What is not kept: the samples of `relative_to_median` rules (their median rebuilds from the epochs after a
restart). A store that is down degrades to in-memory behaviour with a warning, never to lost provenance.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pinnprov.collector.alerts.rules import RuleState
from pinnprov.store.records import AlertRecord

if TYPE_CHECKING:
    from pinnprov.store.access import Store

log = logging.getLogger(__name__)

RunMemory = tuple[int, dict[str, RuleState]]
"""(last evaluated epoch, rule name -> its state) of one run."""


def _state_to_json(state: RuleState) -> dict[str, Any]:
    best = state.best if math.isfinite(state.best) else None
    return {"firing": state.firing, "streak_start": state.streak_start, "best": best, "best_epoch": state.best_epoch}


def _state_from_json(data: Mapping[str, Any]) -> RuleState:
    best = data.get("best")
    return RuleState(firing=bool(data.get("firing")), streak_start=data.get("streak_start"),
                     best=math.inf if best is None else float(best), best_epoch=int(data.get("best_epoch", -1)))


def _record_to_json(record: AlertRecord) -> str:
    values = dataclasses.asdict(record)
    return json.dumps({key: (None if isinstance(v, float) and not math.isfinite(v) else v)
                       for key, v in values.items()})


def _record_from_json(text: str) -> AlertRecord:
    data = json.loads(text)
    for key in ("value", "threshold"):
        if data.get(key) is None:
            data[key] = math.nan
    return AlertRecord(**data)


class StoreAlertState:
    """The engine's memory in the store at `url`; one connection, used under a lock (the engine is shared)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._store: Store | None = None
        self._lock = threading.Lock()
        self._warned = False

    def _open(self) -> Store:
        if self._store is None:
            from pinnprov.store.access import open_store

            # Writable stores apply the schema (pinnprov/store/schema.py), these two tables included.
            self._store = open_store(self.url, read_only=False)
        return self._store

    def _failed(self, what: str, error: Exception) -> None:
        if not self._warned:
            log.warning("alert state in %s unavailable (%s: %s); alerts after a restart may notify again", self.url,
                        what, error)
            self._warned = True
        if self._store is not None:
            with contextlib.suppress(Exception):
                self._store.close()
            self._store = None

    def load_run(self, run_id: str) -> RunMemory | None:
        with self._lock:
            try:
                rows = self._open().execute("SELECT last_epoch, states FROM alert_engine_run WHERE run_id = :run_id",
                                            {"run_id": run_id}).rows
            except Exception as error:  # noqa: BLE001 - degrade to memory, never break the pipeline
                self._failed("load", error)
                return None
        if not rows:
            return None
        states = {name: _state_from_json(value) for name, value in json.loads(rows[0][1]).items()}
        return int(rows[0][0]), states

    def save_runs(self, runs: Mapping[str, RunMemory]) -> None:
        if not runs:
            return
        rows = [{"run_id": run_id, "last_epoch": last,
                 "states": json.dumps({name: _state_to_json(state) for name, state in states.items()})}
                for run_id, (last, states) in runs.items()]
        with self._lock:
            try:
                store = self._open()
                store.executemany_write("DELETE FROM alert_engine_run WHERE run_id = :run_id",
                                        [{"run_id": row["run_id"]} for row in rows])
                store.executemany_write("INSERT INTO alert_engine_run (run_id, last_epoch, states) VALUES "
                                        "(:run_id, :last_epoch, :states)", rows)
            except Exception as error:  # noqa: BLE001
                self._failed("save", error)

    def claim(self, record: AlertRecord) -> bool:
        """True if this firing is new (its actions may run); False if it was claimed before (a replay)."""
        with self._lock:
            try:
                changed = self._open().executemany_write(
                    'INSERT INTO alert_engine_fired (alert_id, run_id, "epoch", record) SELECT :alert_id, :run_id, '
                    ":epoch, :record WHERE NOT EXISTS (SELECT 1 FROM alert_engine_fired WHERE alert_id = :alert_id)",
                    [{"alert_id": record.alert_id, "run_id": record.run_id, "epoch": record.epoch,
                      "record": _record_to_json(record)}])
            except Exception as error:  # noqa: BLE001 - rather notify twice than never
                self._failed("claim", error)
                return True
        return int(changed) > 0

    def fired_at(self, run_id: str, epoch: int) -> list[AlertRecord]:
        with self._lock:
            try:
                rows = self._open().execute(
                    'SELECT record FROM alert_engine_fired WHERE run_id = :run_id AND "epoch" = :epoch '
                    "ORDER BY alert_id", {"run_id": run_id, "epoch": epoch}).rows
            except Exception as error:  # noqa: BLE001
                self._failed("read", error)
                return []
        return [_record_from_json(row[0]) for row in rows]

    def close(self) -> None:
        with self._lock:
            if self._store is not None:
                self._store.close()
                self._store = None
