"""No sequence of exports crashes MonetDB, and MonetDB ends up holding exactly what SQLite holds.

Random streams of batches (split, reordered, duplicated, replayed, end before start, a run name two runs claim,
NaN losses, strings with quotes, backslashes, newlines and commas) go through the real SQLite sink and the real
MonetDB sink against the live server; every export must give the same status and rejected indices in both, the
server must still answer afterwards, and every table must hold the same rows.
"""

from __future__ import annotations

import math
import os
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pymonetdb
import pytest
from prov_builders import dump, request_for, sample_run

from pinnprov.collector.translate import translate_traces
from pinnprov.core import vocabulary as v
from pinnprov.store.monetdb_sink import MonetdbSink
from pinnprov.store.monetdb_store import parse_monetdb_url
from pinnprov.store.records import ProvRecord
from pinnprov.store.schema import TABLES
from pinnprov.store.sqlite_sink import SqliteSink

TRICKY = ['plain', 'quo"te', "back\\slash", "new\nline", "comma, inside", "tab\there", "ünïcødé ✓", "'single'"]
SEEDS = [int(os.environ["PINNPROV_TEST_SEED"])] if os.environ.get("PINNPROV_TEST_SEED") else [1, 2, 3]


def _records(rng: random.Random) -> list[ProvRecord]:
    specs = []
    for n in range(1, rng.randint(3, 5) + 1):
        spec = sample_run(100 * rng.randint(1, 9) + n, epochs=rng.randint(1, 60), ended=rng.random() < 0.7,
                          name=f"run {rng.choice(TRICKY)} {n}", experiment=rng.choice(TRICKY))
        spec.hyperparameters = {**spec.hyperparameters, "note": rng.choice(TRICKY), "ratio": rng.random()}
        if spec.epochs and rng.random() < 0.5:
            broken = dict(spec.epochs[rng.randrange(len(spec.epochs))])
            broken[v.LOSS_TOTAL] = rng.choice([math.nan, math.inf])
            spec.epochs = [broken if e[v.EPOCH] == broken[v.EPOCH] else e for e in spec.epochs]
        specs.append(spec)
    if rng.random() < 0.5:  # a second run claims the first run's name: the store refuses its start
        specs[-1].run_name = specs[0].run_name
    return list(translate_traces(request_for(*specs)).records)


def _stream(rng: random.Random, records: list[ProvRecord]) -> list[list[ProvRecord]]:
    """Batches as at-least-once delivery may bring them: pieces in any order, some twice, some replayed."""
    order = records[:]
    if rng.random() < 0.5:
        rng.shuffle(order)
    else:
        order.reverse()
    pieces, i = [], 0
    while i < len(order):
        size = rng.choice([1, 2, 5, 17, 64, 300])
        pieces.append(order[i:i + size])
        i += size
    batches: list[list[ProvRecord]] = []
    for piece in pieces:
        choice = rng.random()
        if choice < 0.2:
            piece = piece + rng.sample(piece, k=min(len(piece), 3))  # duplicates inside one batch
        elif choice < 0.3 and batches:
            batches.append(rng.choice(batches))  # a replay of an earlier batch
        elif choice < 0.4:
            piece = list(reversed(piece))
        batches.append(piece)
    batches.append(records)  # and finally everything again, in order
    return batches


def _monetdb_dump(url: str) -> dict[str, list[tuple[Any, ...]]]:
    conn = pymonetdb.connect(autocommit=True, connect_timeout=30, **parse_monetdb_url(url))
    try:
        cursor = conn.cursor()
        tables = {}
        for table in TABLES:
            if table.name != "schema_version":
                cursor.execute(f'SELECT * FROM "{table.name}"')
                tables[table.name] = sorted((tuple(row) for row in cursor.fetchall()), key=repr)
        return tables
    finally:
        conn.close()


def _exports(sink: Any, batches: Sequence[list[ProvRecord]]) -> list[tuple[str, tuple[int, ...]]]:
    outcomes = []
    for batch in batches:
        result = sink.export(batch)
        outcomes.append((result.status.value, tuple(result.rejected)))
    return outcomes


@pytest.mark.parametrize("seed", SEEDS)
def test_random_replays_never_crash_monetdb_and_match_sqlite(seed: int, tmp_path: Path, monetdb_url: str) -> None:
    rng = random.Random(seed)
    batches = _stream(rng, _records(rng))
    sqlite, monetdb = SqliteSink(tmp_path / "same.db"), MonetdbSink(monetdb_url)
    try:
        expected = _exports(sqlite, batches)
        got = _exports(monetdb, batches)
    finally:
        sqlite.shutdown()
        monetdb.shutdown()
    assert got == expected, f"seed {seed}"
    assert all(status != "retryable" for status, _ in got), f"seed {seed}: MonetDB was unavailable"
    stored = _monetdb_dump(monetdb_url)  # a new connection: the server is still up
    assert stored == dump(tmp_path / "same.db"), f"seed {seed}"
    assert stored["epoch_metric"] and stored["run"], "the stream wrote nothing"



def test_scripted_merges_match_sqlite(tmp_path: Path, monetdb_url: str) -> None:
    """The write-plan scenarios of tests/store/test_write_plan.py (start after end, name conflicts, duplicates,
    counters...) through the real MonetDB sink: the same statuses and the same rows as the real SQLite sink."""
    from test_write_plan import SCENARIOS

    for n, (scenario, batches) in enumerate(SCENARIOS.items()):
        sqlite, monetdb = SqliteSink(tmp_path / f"{n}.db"), MonetdbSink(monetdb_url)
        try:
            expected = _exports(sqlite, batches)
            got = _exports(monetdb, batches)
        finally:
            sqlite.shutdown()
            monetdb.shutdown()
        assert got == expected, scenario
        assert _monetdb_dump(monetdb_url) == dump(tmp_path / f"{n}.db"), scenario
        conn = pymonetdb.connect(autocommit=True, connect_timeout=30, **parse_monetdb_url(monetdb_url))
        try:
            for table in TABLES:
                if table.name != "schema_version":
                    conn.cursor().execute(f'DELETE FROM "{table.name}"')
        finally:
            conn.close()
