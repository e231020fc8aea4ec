"""Choose a run from what a user types: `latest`, a run id, a run-id prefix or a run-name prefix.

Ambiguity is an error that lists the candidates, never a silent pick: provenance queries about the
wrong run are worse than no answer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pinnprov.store.access import Store

LATEST = "latest"
MAX_LISTED = 10

_LATEST_SQL = """
SELECT run_id FROM run
ORDER BY CASE WHEN started_at IS NULL THEN 1 ELSE 0 END, started_at DESC, run_id DESC
LIMIT 1"""

_CANDIDATES_SQL = """
SELECT run_id, run_name, started_at FROM run
WHERE run_id LIKE :pattern ESCAPE '!' OR run_name LIKE :pattern ESCAPE '!'
ORDER BY started_at, run_id"""


def _like_prefix(text: str) -> str:
    escaped = text.replace("!", "!!").replace("%", "!%").replace("_", "!_")
    return escaped + "%"


def _describe(row: tuple[Any, ...]) -> str:
    run_id, run_name = row[0], row[1]
    return f"{run_name} ({run_id})" if run_name else run_id


def resolve_run(store: Store, selector: str) -> str:
    """The run id `selector` designates; ValueError (one line) when it is unknown or ambiguous."""
    selector = selector.strip()
    if not selector:
        raise ValueError("empty run selector (give a run name, a run id, a prefix of either, or 'latest')")
    if selector == LATEST:
        rows = store.execute(_LATEST_SQL).rows
        if not rows:
            raise ValueError("no runs in the store yet")
        return str(rows[0][0])
    rows = store.execute(_CANDIDATES_SQL, {"pattern": _like_prefix(selector)}).rows
    exact = [row for row in rows if row[0] == selector.lower() or row[1] == selector]
    if len(exact) == 1:
        return str(exact[0][0])
    # LIKE is case-insensitive in SQLite but not in MonetDB: keep the case-sensitive prefix matches if any.
    sensitive = [row for row in rows if row[0].startswith(selector.lower()) or (row[1] or "").startswith(selector)]
    candidates = sensitive or rows
    if len(candidates) == 1:
        return str(candidates[0][0])
    if not candidates:
        raise ValueError(f"unknown run {selector!r} (see `pinnprov runs` for the runs in this store)")
    listed = ", ".join(_describe(row) for row in candidates[:MAX_LISTED])
    more = f" and {len(candidates) - MAX_LISTED} more" if len(candidates) > MAX_LISTED else ""
    raise ValueError(f"ambiguous run {selector!r} matches {len(candidates)} runs: {listed}{more}")


_BY_NAME_SQL = "SELECT run_id, run_name, status, error, last_epoch FROM run WHERE run_name = :name"


def run_by_name(store: Store, run_name: str) -> tuple[str, str, str, str, int | None] | None:
    """(run id, name, status, error, last epoch) of the run with exactly this name, or None.

    For drivers that launched the run themselves and know its exact name (no prefix matching, no ambiguity);
    status is 'running' until the run's end arrives.
    """
    rows = store.execute(_BY_NAME_SQL, {"name": run_name}).rows
    if not rows:
        return None
    run_id, name, status, error, last_epoch = rows[0]
    return str(run_id), str(name), str(status or "running"), str(error or ""), last_epoch
