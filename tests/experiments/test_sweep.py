"""`pinnprov sweep`: a grid of real `pinnprov train` processes into one SQLite store under one experiment.

One configuration is given a malformed picks file (it fails before its run starts: the driver records it as
failed with the loader's error), another is SIGKILLed mid-run (the driver marks it failed and its epochs stay);
the other configurations complete with their full provenance."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from collector_process import rows

from pinnprov.experiments.grid import GridPoint, expand, split_values

TINY = {"tau_layers": 2, "tau_units": 8, "velocity_layers": 2, "velocity_units": 8, "collocation_count": 200,
        "boundary_points": 20, "steps_per_call": 20, "stopping": "none", "seed": 11}


def _env() -> dict[str, str]:
    env = {k: val for k, val in os.environ.items() if not k.startswith(("OTEL_", "PINNPROV_"))}
    env.update(TF_CPP_MIN_LOG_LEVEL="3", PYTHONUNBUFFERED="1")
    return env


def _pinnprov(*args: str, cwd: Path | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pinnprov", *args], capture_output=True, text=True, env=_env(),
                          timeout=timeout, cwd=cwd)


# --- grid -------------------------------------------------------------------------------------------
def test_grid_is_the_cartesian_product_first_axis_slowest() -> None:
    points = expand({"activation": "tanh,sigmoid", "optimizer": "adam,rmsprop"}, ["--epochs", "10"])
    assert [p.label for p in points] == ["tanh-adam", "tanh-rmsprop", "sigmoid-adam", "sigmoid-rmsprop"]
    assert points[1].train_args() == ["--epochs", "10", "--activation", "tanh", "--optimizer", "rmsprop"]
    assert GridPoint((("data", "/tmp/x/good.csv"),)).label == "good"


@pytest.mark.parametrize(("text", "message"), [("a,,b", "empty value"), ("", "empty value"), ("a,b,a", "duplicate")])
def test_bad_lists_are_refused(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        split_values("activation", text)


@pytest.mark.parametrize(
    ("flags", "error"),
    [
        (["--epochs", "10,ten"], "--epochs: invalid value 'ten'"),
        (["--stopping", "none,never"],
         "--stopping: invalid choice 'never' (choose from converged, discrepancy, holdout, none"),
        (["--activation", "tanh,tanh"], "--activation: duplicate value(s) tanh in 'tanh,tanh'"),
        (["--parallel", "0"], "--parallel: must be at least 1, got 0"),
    ],
)
def test_bad_sweeps_fail_before_anything_starts(tmp_path: Path, flags: list[str], error: str) -> None:
    out = _pinnprov("sweep", *flags, "--store", str(tmp_path / "prov.db"), "--out", str(tmp_path / "out"))
    assert out.returncode == 2 and out.stderr.startswith(f"pinnprov sweep: error: {error}"), out.stderr
    assert out.stderr.count("\n") == 1 and not (tmp_path / "prov.db").exists() and not (tmp_path / "out").exists()


# --- real sweeps ----------------------------------------------------------------------------------
@pytest.mark.slow
def test_a_failing_configuration_is_marked_failed_and_the_others_complete(tmp_path: Path) -> None:
    from pinnprov.pinn.benchmark import crosshole_benchmark
    from pinnprov.pinn.picks_csv import write_picks

    good = write_picks(tmp_path / "good.csv", crosshole_benchmark())
    bad = tmp_path / "bad.csv"
    bad.write_text("sx,sz,rx,rz,t\n0,2.5,20,2.5,0.01\n0,5.0,20\n")
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps(TINY))
    db = tmp_path / "prov.db"
    out = _pinnprov("sweep", "--optimizer", "adam", "--data", f"{good},{bad}", "--domain", "0,20,0,28",
                    "--config", str(config), "--epochs", "40", "--parallel", "2", "--experiment", "sw",
                    "--store", f"sqlite:///{db}", "--out", str(tmp_path / "out"))
    assert out.returncode == 1, out.stderr  # one configuration failed: the sweep says so
    assert "sweep sw: 2 configuration(s), 2 at a time" in out.stdout
    runs = {name: (status, epochs, error) for name, status, epochs, error in
            rows(db, "SELECT run_name, status, epochs, error FROM run WHERE experiment = 'sw'")}
    assert len(runs) == 2
    completed = {n: r for n, r in runs.items() if n.startswith("sw-tanh-adam-good-")}
    failed = {n: r for n, r in runs.items() if n.startswith("sw-tanh-adam-bad-")}
    assert len(completed) == len(failed) == 1
    assert all(status == "completed" and epochs == 40 and not error for status, epochs, error in completed.values())
    for name, (status, epochs, error) in failed.items():
        assert status == "failed" and epochs == 0
        assert "bad.csv" in error and "(exit status 2)" in error and error.startswith("pinnprov train: error:")
        assert f"{name}: failed: {error}" in out.stderr
    for name in completed:  # complete provenance of the runs that trained
        (run_id, optimizer, activation, sha), = rows(db, "SELECT run_id, optimizer, activation, dataset_sha256 "
                                                         "FROM run WHERE run_name = ?", (name,))
        assert optimizer == "adam" and activation == "tanh" and len(sha) == 64
        assert [r[0] for r in rows(db, "SELECT epoch FROM epoch_metric WHERE run_id = ? ORDER BY epoch",
                                   (run_id,))] == list(range(40))
        assert rows(db, "SELECT value FROM run_hyperparameter WHERE run_id = ? AND name = 'threads'",
                    (run_id,)) == [("1",)]  # each process pinned to one TensorFlow thread
        assert (tmp_path / "out" / name / "result.json").is_file()
    # Table 2 printed at the end lists both configurations
    table = out.stdout.split("\n\n", 1)[1]
    assert all(name in table for name in runs)


@pytest.mark.slow
def test_a_killed_run_is_marked_failed_and_keeps_its_epochs(tmp_path: Path) -> None:
    from pinnprov.experiments.storeview import StoreView
    from pinnprov.experiments.sweep import Sweep, SweepSpec

    config = tmp_path / "tiny.json"
    config.write_text(json.dumps(TINY))
    url = f"sqlite:///{tmp_path / 'prov.db'}"
    doomed = GridPoint((("optimizer", "adam"), ("epochs", "10000000")), ("--config", str(config)))
    survivor = GridPoint((("optimizer", "rmsprop"), ("epochs", "40")), ("--config", str(config)))
    spec = SweepSpec(experiment="kill", points=[doomed, survivor], store=url, out_dir=tmp_path / "out", parallel=2,
                     name_tag="t", progress_every_s=1.0)
    lines: list[str] = []
    view = StoreView(url)
    killed: list[int] = []

    def monitor(sweep: Sweep) -> None:
        target = sweep.runs[0]
        if killed or target.process is None:
            return
        if not any(line.startswith(f"[{target.run_name}] epoch ") for line in lines):
            return  # kill only after the driver has shown live progress for it
        progress = view.progress("kill")
        if target.run_name in progress and progress[target.run_name].epoch >= 40:
            target.process.send_signal(signal.SIGKILL)
            killed.append(progress[target.run_name].epoch)

    runs = Sweep(spec, view, echo=lines.append).run(monitor=monitor, poll_s=0.2)
    assert killed, lines
    by_name = {run.run_name: run for run in runs}
    dead, alive = by_name["kill-adam-10000000-t"], by_name["kill-rmsprop-40-t"]
    assert dead.status == "failed" and dead.error.endswith("(killed by signal 9)")
    assert alive.status == "completed" and alive.error == ""
    status, epochs, error = rows(tmp_path / "prov.db", "SELECT status, epochs, error FROM run WHERE run_id = ?",
                                 (dead.run_id,))[0]
    stored = rows(tmp_path / "prov.db", "SELECT COUNT(*) FROM epoch_metric WHERE run_id = ?", (dead.run_id,))[0][0]
    assert status == "failed" and error == dead.error and epochs == stored >= killed[0] + 1
    assert any(line.startswith("[kill-adam-10000000-t] epoch ") for line in lines)  # live progress from the store
    assert any(line == f"[kill-adam-10000000-t] failed after {dead.elapsed_s:.0f} s: {dead.error}" for line in lines)
