"""Alert firings stored as provenance (table `alert`), read back for `pinnprov alerts`.

Portable SQL for SQLite and MonetDB: `epoch` and `value` are MonetDB keywords, hence quoted.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pinnprov.store.access import QueryResult, Store

COLUMNS = 'a.at, r.run_name, a.rule, a."epoch", a.metric, a."value", a.threshold, a.message, a.actions'


def alert_history(store: Store, *, run_id: str | None = None, rule: str | None = None,
                  limit: int | None = None) -> QueryResult:
    """Firings oldest first (the newest `limit` when given); returns the store's QueryResult."""
    where: list[str] = []
    params: dict[str, object] = {}
    if run_id is not None:
        where.append("a.run_id = :run_id")
        params["run_id"] = run_id
    if rule is not None:
        where.append("a.rule = :rule")
        params["rule"] = rule
    condition = f" WHERE {' AND '.join(where)}" if where else ""
    base = f"SELECT {COLUMNS}, a.alert_id FROM alert a LEFT JOIN run r ON r.run_id = a.run_id{condition}"
    if limit is not None:
        if limit < 1:
            raise ValueError(f"--limit must be >= 1, got {limit}")
        params["limit"] = limit
        sql = (f"SELECT * FROM ({base} ORDER BY a.at DESC, a.alert_id DESC LIMIT :limit) AS newest "
               "ORDER BY at, alert_id")
    else:
        sql = f"{base} ORDER BY a.at, a.alert_id"
    return store.execute(sql, params)


def store_run_lookup(url: str) -> Callable[[str], tuple[str, str] | None]:
    """A `run_lookup` for AlertEngine: (run name, experiment) of a run from the store at `url`.

    Scoped rules need them; after a collector restart the run-start record may be long gone.
    """

    def lookup(run_id: str) -> tuple[str, str] | None:
        from pinnprov.store.access import open_store

        with open_store(url) as store:
            rows = store.execute("SELECT run_name, experiment FROM run WHERE run_id = :run_id", {"run_id": run_id}).rows
        return (str(rows[0][0] or ""), str(rows[0][1] or "")) if rows else None

    return lookup
