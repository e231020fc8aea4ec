"""`pinnprov compare`: Table 2 and Figure 3 of an experiment, read from a real SQLite store written by the real
sink, equal to what `pinnprov query` returns; thinning of long runs; clear errors."""

from __future__ import annotations

import contextlib
import io
import secrets
from pathlib import Path

import numpy as np
import pytest

from pinnprov.cli import main as cli
from pinnprov.experiments.compare import loss_curves, read_csv
from pinnprov.experiments.storeview import StoreView
from pinnprov.store.records import EpochRecord, RunEndRecord, RunStartRecord
from pinnprov.store.sqlite_sink import SqliteSink


def _cli(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli(list(args))
    return code, out.getvalue(), err.getvalue()


def _loss(run: int, epoch: int) -> float:
    return 10.0 / (1 + epoch) ** (0.5 + 0.2 * run)


def _write(db: Path) -> dict[str, str]:
    """Three runs of experiment 'cmp' (5000, 300 and 0 epochs) and one of another experiment."""
    sink = SqliteSink(db)
    ids: dict[str, str] = {}
    specs = [("adam-tanh", "adam", "tanh", 5000, "completed"), ("rmsprop-tanh", "rmsprop", "tanh", 300, "stopped"),
             ("adam-relu", "adam", "relu", 0, "failed"), ("other", "adam", "sine", 10, "completed")]
    try:
        for n, (name, optimizer, activation, epochs, status) in enumerate(specs):
            run_id = ids[name] = secrets.token_hex(16)
            experiment = "elsewhere" if name == "other" else "cmp"
            records: list = [RunStartRecord(run_id, secrets.token_hex(8), name, experiment, 1000.0 + n,
                                            {"optimizer": optimizer, "activation": activation})]
            records += [EpochRecord(run_id, secrets.token_hex(8), e, 1000.0 + e, 1000.5 + e, 0.5, _loss(n, e),
                                    1e-3, 0.1, 0.2, 1e-3 * 0.99 ** (e / 1000)) for e in range(epochs)]
            records.append(RunEndRecord(run_id, secrets.token_hex(8), 9000.0 + n, status, epochs,
                                        error="boom" if status == "failed" else ""))
            assert sink.export(records).ok
    finally:
        sink.shutdown()
    return ids


def test_compare_writes_table2_and_loss_curves_equal_to_the_store(tmp_path: Path) -> None:
    db = tmp_path / "prov.db"
    ids = _write(db)
    code, out, err = _cli("compare", "cmp", "--store", str(db), "--out", str(tmp_path / "cmp"))
    assert code == 0, err
    assert out.splitlines()[0].split()[:3] == ["run_name", "experiment", "epoch"]
    assert all(name in out for name in ("adam-tanh", "rmsprop-tanh", "adam-relu")) and "other" not in out
    code, direct, _ = _cli("query", "latest", "--experiment", "cmp", "--store", str(db), "--format", "csv")
    assert (tmp_path / "cmp" / "table2.csv").read_text() == direct  # Table 2 is the named query, byte for byte
    assert [row["run_name"] for row in read_csv(tmp_path / "cmp" / "table2.csv")] == [
        "adam-tanh", "rmsprop-tanh", "adam-relu"]
    png = tmp_path / "cmp" / "loss_curves.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000

    curves = {c.run_name: c for c in loss_curves(StoreView(str(db)), "cmp")}
    assert set(curves) == {"adam-tanh", "rmsprop-tanh"}  # the failed run stored no epoch: no curve
    assert curves["rmsprop-tanh"].label == "rmsprop + tanh (stopped)" and curves["adam-tanh"].label == "adam + tanh"
    short = curves["rmsprop-tanh"]
    assert np.array_equal(short.epochs, np.arange(300)) and np.allclose(short.loss, [_loss(1, e) for e in range(300)])
    long = curves["adam-tanh"]  # 5000 epochs thinned to every 3rd: at most 2000 points, still the stored values
    assert np.array_equal(long.epochs, np.arange(0, 5000, 3))
    assert np.allclose(long.loss, [_loss(0, e) for e in range(0, 5000, 3)])
    assert ids  # the store was written through the real sink


def test_unknown_experiment_and_missing_store_are_one_line_errors(tmp_path: Path) -> None:
    db = tmp_path / "prov.db"
    _write(db)
    code, out, err = _cli("compare", "nope", "--store", str(db), "--out", str(tmp_path / "x"))
    assert code == 2 and out == ""
    assert err == "pinnprov compare: error: no runs in experiment 'nope' (experiments in this store: cmp, elsewhere)\n"
    assert not (tmp_path / "x").exists()
    code, _, err = _cli("compare", "cmp", "--store", str(tmp_path / "absent.db"))
    assert code == 2 and err.startswith("pinnprov compare: error: store not found:") and err.count("\n") == 1


@pytest.mark.parametrize("experiment", ["cmp"])
def test_compare_of_a_store_with_runs_but_no_epochs_still_gives_table2(tmp_path: Path, experiment: str) -> None:
    db = tmp_path / "prov.db"
    sink = SqliteSink(db)
    run_id = secrets.token_hex(16)
    assert sink.export([RunStartRecord(run_id, secrets.token_hex(8), "only", experiment, 1.0, {})]).ok
    sink.shutdown()
    code, out, err = _cli("compare", experiment, "--store", str(db), "--out", str(tmp_path / "o"))
    assert code == 0 and "only" in out and "no loss curves" in err
    assert (tmp_path / "o" / "table2.csv").exists() and not (tmp_path / "o" / "loss_curves.png").exists()
