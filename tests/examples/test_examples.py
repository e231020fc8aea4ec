"""The examples in examples/ run as a user runs them (`python examples/<file>.py --store ...`), each where its
framework is installed (skipped with the reason otherwise): every epoch lands in a real SQLite store with its loss
terms, and `pinnprov steer` typed while the loop trains is applied by it and recorded as an adaptation."""

from __future__ import annotations

import contextlib
import importlib.util
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
from collector_process import rows, wait_for

from pinnprov.cli import main as cli

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
CASES = [("tf_gradient_tape_poisson.py", ("tensorflow",)), ("jax_optax_poisson.py", ("jax", "optax")),
         ("pytorch_poisson.py", ("torch",))]
_ENV = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
        "PINNPROV_CAPTURE", "PINNPROV_CAPTURE_EVERY", "PINNPROV_STORE", "PINNPROV_STEERING_ENDPOINT")


def _needs(modules: tuple[str, ...]) -> None:
    missing = [name for name in modules if importlib.util.find_spec(name) is None]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed here (this example runs where it is)")


def _env(tmp_path: Path) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key not in _ENV}
    env.update(PINNPROV_SPOOL_DIR=str(tmp_path / "spool"), PINNPROV_STEERING_INTERVAL="0.1",
               TF_CPP_MIN_LOG_LEVEL="3")
    return env


def _steer(db: Path, run: str, *flags: str) -> str:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        assert cli(["steer", run, "--store", f"sqlite:///{db}", *flags]) == 0, err.getvalue()
    return out.getvalue().split(" as command ")[1].split()[0]


@pytest.mark.parametrize(("script", "needs"), CASES, ids=[case[0].removesuffix(".py") for case in CASES])
def test_an_example_records_every_epoch(tmp_path: Path, script: str, needs: tuple[str, ...]) -> None:
    _needs(needs)
    db = tmp_path / "prov.db"
    done = subprocess.run([sys.executable, str(EXAMPLES / script), "--store", f"sqlite:///{db}", "--epochs", "200",
                           "--name", "example"], env=_env(tmp_path), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "completed after 200 epochs" in done.stdout
    assert rows(db, "SELECT run_name, status, epochs, experiment FROM run") == [("example", "completed", 200,
                                                                                  "examples")]
    losses = rows(db, "SELECT loss, loss_bc, loss_residual, loss_data, learning_rate FROM epoch_metric ORDER BY epoch")
    assert len(losses) == 200 and all(None not in row for row in losses)
    assert losses[-1][0] < losses[0][0]


@pytest.mark.parametrize(("script", "needs"), CASES, ids=[case[0].removesuffix(".py") for case in CASES])
def test_an_example_applies_steering_while_it_trains(tmp_path: Path, script: str, needs: tuple[str, ...]) -> None:
    """scale_lr, then set_weight, then stop, each typed once the previous one was answered."""
    _needs(needs)
    db = tmp_path / "prov.db"
    process = subprocess.Popen([sys.executable, str(EXAMPLES / script), "--store", f"sqlite:///{db}", "--epochs",
                                "1000000", "--name", "steered"], env=_env(tmp_path), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: db.exists() and rows(db, "SELECT 1 FROM run WHERE run_name = 'steered'"), 120,
                 what="the run in the store")
        sent = []
        for flags in (["--scale-lr", "0.5"], ["--set-weight", "data=5", "--reason", "fit the picks"], ["--stop"]):
            sent.append(_steer(db, "steered", *flags))
            wait_for(lambda: rows(db, "SELECT state FROM steering_command WHERE command_id = ?",  # noqa: B023
                                  (sent[-1],)) != [("pending",)], 60, what=f"{flags[0]} answered")
        out, err = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, err[-3000:]
    assert "stopped after" in out
    states = [state for (state,) in rows(db, "SELECT state FROM steering_command ORDER BY created_at")]
    assert states == ["applied"] * 3
    adaptations = rows(db, "SELECT parameter, old_value, new_value FROM adaptation ORDER BY at")
    assert [a[0] for a in adaptations] == ["learning_rate", "loss_weight.data", "stop"]
    assert float(adaptations[0][2]) == pytest.approx(float(adaptations[0][1]) / 2)
    assert float(adaptations[1][2]) == 5.0
    rates = [rate for (rate,) in rows(db, "SELECT learning_rate FROM epoch_metric ORDER BY epoch")]
    assert rates[0] == pytest.approx(5e-3) and rates[-1] == pytest.approx(2.5e-3)
