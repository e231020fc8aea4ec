"""Relations between runs that no single run's telemetry carries, written by the driver that decided them.

A sweep on a cluster retries a configuration whose worker was lost mid-run as a *new* run (a new name, a new
trace id) so the failed attempt stays in the store as it ended. Which run repeats which is known only to the
driver, so it writes the relation here, through the store, as `pinnprov steer` writes steering commands. The
PROV view `was_informed_by` turns each `retry_of` row into wasInformedBy(retry, failed attempt).

An ensemble (`pinnprov train --ensemble N`) is the same kind of fact: N member runs and one aggregating activity,
a run row of service ENSEMBLE_SERVICE that trains nothing and combines the members' velocity grids. Each member
gets a `member_of` row pointing at it, which the views turn into wasInformedBy(ensemble, member): the ensemble
used what every member generated.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

RETRY_OF = "retry_of"
MEMBER_OF = "member_of"
RESUMED_FROM = "resumed_from"
"""This run continues the related run from its checkpoint (written from the run-start span, schema version 6)."""
RELATIONS = (RETRY_OF, MEMBER_OF, RESUMED_FROM)
ENSEMBLE_SERVICE = "pinnprov-ensemble"
"""`run.service` of an ensemble's aggregating activity (the PROV views type it pinnprov:Ensemble)."""


@dataclass(frozen=True)
class RunRelation:
    run_id: str
    related_run_id: str
    relation: str
    at: float
    agent: str
    reason: str


def record_relation(store: Any, *, run_id: str, related_run_id: str, relation: str = RETRY_OF, agent: str = "",
                    reason: str = "", at: float | None = None) -> bool:
    """Insert the relation once (idempotent: False when it is already stored)."""
    if relation not in RELATIONS:
        raise ValueError(f"relation {relation!r}: expected one of {', '.join(RELATIONS)}")
    if run_id == related_run_id:
        raise ValueError(f"run {run_id} cannot be related to itself")
    sql = (
        "INSERT INTO run_relation (run_id, related_run_id, relation, at, agent, reason) "
        "SELECT :run_id, :related_run_id, :relation, :at, :agent, :reason WHERE NOT EXISTS "
        "(SELECT 1 FROM run_relation WHERE run_id = :run_id AND related_run_id = :related_run_id "
        "AND relation = :relation)"
    )
    row = {"run_id": run_id, "related_run_id": related_run_id, "relation": relation,
           "at": time.time() if at is None else at, "agent": agent, "reason": reason}
    return bool(store.executemany_write(sql, [row]) == 1)


def relations(store: Any, run_id: str | None = None) -> list[RunRelation]:
    """Stored relations (those of `run_id`, either side), oldest first."""
    where = " WHERE run_id = :run_id OR related_run_id = :run_id" if run_id is not None else ""
    result = store.execute(
        f"SELECT run_id, related_run_id, relation, at, agent, reason FROM run_relation{where} ORDER BY at, run_id",
        {"run_id": run_id} if run_id is not None else {},
    )
    return [RunRelation(r[0], r[1], r[2], float(r[3] or 0.0), r[4] or "", r[5] or "") for r in result.rows]
