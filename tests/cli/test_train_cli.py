"""`pinnprov train` run in-process: results and files on success, one-line errors and exit 2 on bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pinnprov.cli import main
from pinnprov.pinn.benchmark import crosshole_benchmark
from pinnprov.pinn.picks_csv import write_picks

FAST = ["--epochs", "60", "--collocation", "200", "--threads", "1", "--no-progress", "--no-capture", "--no-jit",
        "--stopping", "none"]


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    try:
        code = main(["train", *argv])
    except SystemExit as exit_:  # argparse errors
        code = int(exit_.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("argv,message", [
    (["--epochs", "x"], "argument --epochs: invalid int value: 'x'"),
    (["--activation", "softsign"], "unknown activation 'softsign'"),
    (["--optimizer", "sgd"], "unknown optimizer 'sgd'"),
    (["--epochs", "0"], "epochs: must be at least 1"),
    (["--lr", "-1"], "lr_initial: must be in (0, 10)"),
    (["--w-data", "-3"], "weight_data: must be finite and >= 0"),
    (["--capture-every", "0"], "--capture-every: must be at least 1"),
    (["--stopping", "sometimes"], "argument --stopping: invalid choice"),
    (["--domain", "0,20,0,28"], "--domain needs --data"),
    (["--data", "picks.csv"], "--data needs --domain"),
    (["--config", "missing.yaml"], "missing.yaml: no such file"),
])
def test_bad_flags_one_line_exit_2(capsys: pytest.CaptureFixture[str], argv: list[str], message: str) -> None:
    code, out, err = run_cli(capsys, *argv)
    assert code == 2
    assert message in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_config_file_unknown_key_and_bad_yaml(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    (tmp_path / "c.yaml").write_text("epochs: 10\nlearning_rat: 0.1\n")
    code, _, err = run_cli(capsys, "--config", str(tmp_path / "c.yaml"))
    assert code == 2 and "unknown config key 'learning_rat'" in err and len(err.strip().splitlines()) == 1
    (tmp_path / "bad.yaml").write_text("epochs: [1,\n")
    code, _, err = run_cli(capsys, "--config", str(tmp_path / "bad.yaml"))
    assert code == 2 and "invalid YAML" in err and len(err.strip().splitlines()) == 1
    (tmp_path / "list.json").write_text("[1, 2]")
    code, _, err = run_cli(capsys, "--config", str(tmp_path / "list.json"))
    assert code == 2 and "expected a mapping" in err


def test_bad_csv_is_one_line(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    (tmp_path / "p.csv").write_text("sx,sz,rx,rz,t\n0,1,20,1,0.01\n0,1,20,1,oops\n")
    code, _, err = run_cli(capsys, "--data", str(tmp_path / "p.csv"), "--domain", "0,20,0,28")
    assert code == 2 and "row 2 (line 3), column t: not a number: 'oops'" in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.slow
def test_train_benchmark_writes_results(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    (tmp_path / "c.json").write_text(json.dumps({"epochs": 1000, "tau_layers": 2, "velocity_layers": 2,
                                                 "activation": "sine"}))
    out = tmp_path / "run"
    code, stdout, err = run_cli(capsys, *FAST, "--config", str(tmp_path / "c.json"), "--out", str(out),
                                "--run-name", "cli-test", "--experiment", "tests", "--decay-steps", "30")
    assert code == 0, err
    result = json.loads((out / "result.json").read_text())
    assert result["run_name"] == "cli-test" and result["epochs"] == 60  # the flag overrides the file's 1000
    hp = result["hyperparameters"]
    assert hp["activation"] == "sine" and hp["network.tau.layers"] == 2 and hp["lr.decay_steps"] == 30
    assert set(result["metrics"]) >= {"r2", "rmse_m_s", "data_rms_s", "seconds"}
    assert np.load(out / "velocity_pinn.npy").shape == (44, 32) == np.load(out / "velocity_true.npy").shape
    assert "cli-test" in stdout and "R2" in stdout and "data RMS" in stdout
    assert "Traceback" not in err


@pytest.mark.slow
def test_train_user_csv(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    csv = write_picks(tmp_path / "survey.csv", crosshole_benchmark())
    out = tmp_path / "user"
    code, stdout, err = run_cli(capsys, *FAST, "--data", str(csv), "--domain", "0,20,0,28", "--out", str(out))
    assert code == 0, err
    result = json.loads((out / "result.json").read_text())
    assert result["dataset"]["name"] == "survey" and result["dataset"]["picks"] == 100
    assert "r2" not in result["metrics"]  # no true model for user data: nothing to score against
    assert np.load(out / "velocity_pinn.npy").shape == np.load(out / "grid_x.npy").shape
    assert "R2" not in stdout


def test_holdout_stopping_works_from_flags_alone(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    # a user's first try in issue 12 failed with "holdout_fraction: must be > 0"; the rule now brings its share
    flags = [f for f in FAST if f not in ("--stopping", "none")]
    code, stdout, err = run_cli(capsys, *flags, "--stopping", "holdout", "--out", str(tmp_path / "run"))
    assert code == 0, err
    result = json.loads((tmp_path / "run" / "result.json").read_text())
    assert result["hyperparameters"]["stopping.rule"] == "holdout"
    assert result["hyperparameters"]["stopping.holdout_fraction"] == 0.1
    code, _, err = run_cli(capsys, *flags, "--stopping", "holdout", "--holdout-fraction", "1.5")
    assert code == 2 and "holdout_fraction: must be in [0, 1)" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("switch", [False, True])
def test_no_system_metrics_flag(capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                switch: bool) -> None:
    """System metrics are on by default; `--no-system-metrics` turns them off for this run (the loss gauges stay)."""
    import sqlite3

    from pinnprov.core import vocabulary as v

    monkeypatch.delenv("PINNPROV_SYSTEM_METRICS", raising=False)
    monkeypatch.setenv("PINNPROV_SYSTEM_METRICS_INTERVAL", "0.2")
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    db = tmp_path / "prov.db"
    argv = [a for a in FAST if a != "--no-capture"] + ["--epochs", "400", "--out", str(tmp_path / "run"),
                                                       "--store", f"sqlite:///{db}"]
    code, _, err = run_cli(capsys, *argv, *(["--no-system-metrics"] if switch else []))
    assert code == 0, err
    names = {row[0] for row in sqlite3.connect(db).execute("SELECT DISTINCT name FROM metric_point")}
    assert v.METRIC_LOSS in names
    assert (v.METRIC_PROCESS_CPU in names) is not switch
