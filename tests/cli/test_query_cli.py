"""`pinnprov query` / `pinnprov runs` as a user runs them: formats, run selection, read-only SQL, bad input."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
from prov_builders import request_for, sample_run, write_store

from pinnprov.cli import main


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cli") / "cli.db"
    runs = [
        sample_run(1, epochs=6),
        sample_run(2, epochs=4, optimizer="rmsprop", ended=False),
        sample_run(3, epochs=3, name="other-run"),
    ]
    for n, spec in enumerate(runs):
        spec.start += n * 100  # run 3 is the latest
    write_store(path, request_for(*runs))
    return path


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_table_is_aligned_with_six_significant_digits(store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = cli(capsys, "query", "epochs", "--run", "run-001", "--store", str(store))
    assert code == 0 and err == ""
    lines = out.splitlines()
    assert lines[0].split() == [
        "epoch",
        "elapsed_s",
        "loss",
        "loss_bc",
        "loss_residual",
        "loss_data",
        "learning_rate",
        "ended_at",
    ]
    assert len(lines) == 2 + 6 and len({len(line) for line in lines[2:]}) == 1  # aligned rows
    fields = lines[4].split()  # epoch 2
    assert fields[:7] == ["2", "0.27", "26", "0.0333333", "0.5", "13.3333", "0.0009801"]
    assert fields[7].startswith("2023-11-14T22:") and fields[7].endswith("Z")


def test_csv_and_json_carry_full_precision(store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(
        capsys, "query", "epochs", "--run", "run-001", "--every", "2", "--format", "csv", "--store", str(store)
    )
    rows = list(csv.DictReader(io.StringIO(out)))
    assert code == 0 and [r["epoch"] for r in rows] == ["0", "2", "4"]
    assert float(rows[1]["loss_bc"]) == 0.1 / 3 and float(rows[1]["learning_rate"]) == 1e-3 * 0.99**2
    code, out, _ = cli(capsys, "query", "latest", "--format", "json", "--store", str(store))
    latest = json.loads(out)
    assert code == 0 and [r["run_name"] for r in latest] == ["run-001", "run-002", "other-run"]
    assert latest[1] == {**latest[1], "epoch": 3, "loss_residual": 0.375, "optimizer": "rmsprop", "status": "running"}
    code, out, _ = cli(capsys, "query", "lr", "--format", "json", "--store", str(store))
    assert json.loads(out)[0]["lr_lowest"] == min(1e-3 * 0.99**e for e in range(6))


def test_run_selectors(store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(capsys, "query", "adaptations", "--run", "latest", "--format", "json", "--store", str(store))
    assert code == 0 and json.loads(out)[0]["command_id"] == "cmd-3"
    code, out, _ = cli(
        capsys, "query", "epochs", "--run", "oth", "--last", "1", "--format", "csv", "--store", str(store)
    )
    assert code == 0 and out.splitlines()[1].startswith("2,")
    code, out, err = cli(capsys, "query", "epochs", "--run", "run-00", "--store", str(store))
    assert code == 2 and out == "" and len(err.splitlines()) == 1
    assert "ambiguous run 'run-00' matches 2 runs: run-001" in err and "run-002" in err
    code, _, err = cli(capsys, "query", "epochs", "--run", "nope", "--store", str(store))
    assert (
        code == 2
        and err.strip() == "pinnprov query: error: unknown run 'nope' (see `pinnprov runs` for the runs in this store)"
    )


@pytest.mark.parametrize(
    "sql",
    [
        "DELETE FROM run",
        "DROP TABLE run",
        "INSERT INTO run (run_id) VALUES ('x')",
        "WITH x AS (SELECT 1) DELETE FROM run",
        "PRAGMA query_only=OFF",
        "ATTACH DATABASE 'evil.db' AS evil",
        "SELECT 1; DROP TABLE run",
    ],
)
def test_writing_sql_is_refused(
    store: Path, sql: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    code, out, err = cli(capsys, "query", "--sql", sql, "--store", str(store))
    assert code == 2 and out == "" and len(err.splitlines()) == 1 and err.startswith("pinnprov query: error: ")
    assert not (tmp_path / "evil.db").exists()
    code, out, _ = cli(
        capsys, "query", "--sql", "SELECT COUNT(*) AS runs FROM run", "--format", "csv", "--store", str(store)
    )
    assert (code, out) == (0, "runs\n3\n")


def test_missing_store_is_a_clear_error_and_is_not_created(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = tmp_path / "nope.db"
    code, _, err = cli(capsys, "query", "lr", "--store", f"sqlite:///{missing}")
    assert (
        code == 2
        and err.strip() == f"pinnprov query: error: store not found: {missing} (give --store URL or set PINNPROV_STORE)"
    )
    assert not missing.exists()
    monkeypatch.setenv("PINNPROV_STORE", str(missing))
    code, _, err = cli(capsys, "runs")
    assert code == 2 and "store not found" in err and not missing.exists()
    code, _, err = cli(capsys, "query", "lr", "--store", "postgres://x/y")
    assert code == 2 and "unsupported scheme 'postgres'" in err


def test_env_store_and_runs_command(
    store: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PINNPROV_STORE", f"sqlite:///{store}")
    code, out, _ = cli(capsys, "runs", "--format", "json", "--limit", "2")
    assert code == 0 and [r["run_name"] for r in json.loads(out)] == ["run-002", "other-run"]
    code, _, err = cli(capsys, "query")
    names = ("adaptations, epoch_buckets, epochs, hyperparameters, latest, lr, metric_epochs, metrics, run, runs, "
             "summary")
    assert code == 2 and f"name a query ({names}) or give --sql" in err
    code, _, err = cli(capsys, "query", "epochs", "--every", "0")
    assert code == 2 and "--every must be >= 1" in err


def test_console_script_in_a_real_process(store: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pinnprov", "query", "lr", "--store", str(store)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    header = done.stdout.splitlines()[0].split()
    assert header == [
        "run_name",
        "lr_schedule",
        "lr_decay_rate",
        "lr_decay_steps",
        "lr_initial",
        "lr_lowest",
        "last_epoch",
        "status",
    ]
    assert "lr" not in header  # the residual loss is never abbreviated to "lr"
