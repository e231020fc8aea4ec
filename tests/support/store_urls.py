"""A store URL fixture over both dialects (a fresh SQLite file, the session's MonetDB schema) and a row reader."""

from __future__ import annotations

from pathlib import Path

import pytest

from pinnprov.store.access import open_store


def rows(url: str, sql: str, **params: object) -> list[tuple]:
    """Every row of `sql` against the store at `url`, as tuples."""
    with open_store(url) as store:
        return [tuple(row) for row in store.execute(sql, params).rows]


@pytest.fixture(params=["sqlite", "monetdb"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'prov.db'}"
    return str(request.getfixturevalue("monetdb_url"))
