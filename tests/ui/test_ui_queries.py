"""The named queries added for the UI (run, hyperparameters, summary, epoch_buckets) return exactly what was logged;
`epoch_buckets` is checked against buckets computed here from the logged rows."""

from __future__ import annotations

from pathlib import Path

import pytest
from prov_builders import request_for, run_id, write_store
from ui_stores import LONG_EPOCHS, long_run, store_runs

from pinnprov.core import vocabulary as v
from pinnprov.store.access import open_store
from pinnprov.store.queries import SERIES_COLUMNS, QueryOptions, run_query

ATTRIBUTE = {"elapsed_s": v.EPOCH_ELAPSED, "loss": v.LOSS_TOTAL, "loss_bc": v.LOSS_BOUNDARY,
             "loss_residual": v.LOSS_RESIDUAL, "loss_data": v.LOSS_DATA, "learning_rate": v.LEARNING_RATE}


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ui-queries") / "prov.db"
    write_store(path, request_for(*store_runs()))
    return path


def _query(store: Path, name: str, **options: object) -> list[dict]:
    with open_store(str(store)) as opened:
        result = run_query(opened, name, QueryOptions(**options))
    return [dict(zip(result.columns, row, strict=True)) for row in result.rows]


def test_run_hyperparameters_and_summary(store: Path) -> None:
    (run,) = _query(store, "run", run_id=run_id(1))
    assert (run["run_name"], run["experiment"], run["status"], run["optimizer"], run["seed"]) == (
        "run-001", "fig3", "completed", "adam", 1337)
    assert run["last_epoch"] == 29 and run["host"] == "node-1" and run["user_name"] == "alice"
    rows = _query(store, "hyperparameters", run_id=run_id(1))
    hyper = {row["name"]: (row["value"], row["value_type"]) for row in rows}
    assert hyper["optimizer"] == ("adam", "str") and hyper["network.tau.units"] == ("20", "int")
    assert hyper["use_bias"] == ("true", "bool")
    summary = _query(store, "summary")
    assert {(row["run_name"], row["name"], row["value"]) for row in summary} == {
        ("run-001", "r2", 0.5), ("run-002", "r2", 0.5), ("run-003", "r2", 0.5)}
    assert [row["run_name"] for row in _query(store, "summary", experiment="other")] == ["run-003"]


def _expected_buckets(lo: int, hi: int, buckets: int) -> list[dict]:
    rows = [row for row in long_run().epochs if lo <= row[v.EPOCH] <= hi]
    first, last = rows[0][v.EPOCH], rows[-1][v.EPOCH]

    def bucket_of(epoch: int) -> int:
        if epoch == first:
            return 0
        if epoch == last:
            return buckets + 1
        return 1 + (epoch - first - 1) * buckets // (last - first - 1)

    grouped: dict[int, list] = {}
    for row in rows:
        grouped.setdefault(bucket_of(row[v.EPOCH]), []).append(row)
    expected = []
    for bucket, members in sorted(grouped.items()):
        record = {"bucket": bucket, "first_epoch": members[0][v.EPOCH], "last_epoch": members[-1][v.EPOCH],
                  "row_count": len(members)}
        for name in SERIES_COLUMNS:
            values = [member[ATTRIBUTE[name]] for member in members]
            record[f"{name}_min"], record[f"{name}_max"] = min(values), max(values)
        expected.append(record)
    return expected


@pytest.mark.parametrize(("lo", "hi", "buckets"), [(0, LONG_EPOCHS - 1, 7), (100, 4999, 50), (10, 12, 5),
                                                   (3, 3, 10), (0, 10**9, 1)])
def test_epoch_buckets_are_min_and_max_of_each_bucket(store: Path, lo: int, hi: int, buckets: int) -> None:
    got = _query(store, "epoch_buckets", run_id=run_id(9), from_epoch=lo, to_epoch=hi, buckets=buckets)
    expected = _expected_buckets(lo, min(hi, LONG_EPOCHS - 1), buckets)
    assert got == expected
    assert sum(row["row_count"] for row in got) == min(hi, LONG_EPOCHS - 1) - lo + 1
    assert len(got) <= buckets + 2


def test_epoch_buckets_options(store: Path) -> None:
    assert _query(store, "epoch_buckets", run_id=run_id(9), from_epoch=7000) == []
    default = _query(store, "epoch_buckets", run_id=run_id(9))
    assert len(default) == 1002 and default[0]["first_epoch"] == 0 and default[-1]["last_epoch"] == LONG_EPOCHS - 1
    for bad, message in ((0, "--buckets must be >= 1"), (10**6, "--buckets must be <= 100000")):
        with pytest.raises(ValueError, match=message), open_store(str(store)) as opened:
            run_query(opened, "epoch_buckets", QueryOptions(run_id=run_id(9), buckets=bad))


def test_query_cli_has_the_new_queries_and_their_flags(store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from pinnprov.cli import main

    assert main(["query", "epoch_buckets", "--run", "long-9", "--from", "10", "--to", "12", "--buckets", "5",
                 "--store", str(store), "--format", "csv"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("bucket,first_epoch,last_epoch,row_count,") and len(lines) == 4
    assert main(["query", "run", "--run", "run-001", "--store", str(store)]) == 0
    assert "run-001" in capsys.readouterr().out
