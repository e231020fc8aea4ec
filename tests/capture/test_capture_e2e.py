"""End to end: `pinnprov train` in a subprocess writes the embedded store while another process reads it.

Real processes, a real SQLite file, the real CLI on both sides. One trainer is interrupted mid-run (its epochs
must be visible *while* it trains, and every epoch it finished must be in the store afterwards); another
finishes, and the store must hold exactly what it reported in result.json.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("tensorflow")
pytestmark = pytest.mark.slow

TINY = {"tau_layers": 2, "tau_units": 8, "velocity_layers": 2, "velocity_units": 8, "collocation_count": 200,
        "boundary_points": 20, "steps_per_call": 20, "stopping": "none", "threads": 1, "seed": 11}


def _env(spool: Path | None = None) -> dict[str, str]:
    env = {k: val for k, val in os.environ.items() if not k.startswith(("OTEL_", "PINNPROV_"))}
    env.update(TF_CPP_MIN_LOG_LEVEL="3", PYTHONUNBUFFERED="1")
    if spool is not None:
        env["PINNPROV_SPOOL_DIR"] = str(spool)  # a failed delivery must not litter the user's ~/.cache
    return env


def _pinnprov(*args: str) -> list[str]:
    return [sys.executable, "-m", "pinnprov", *args]


def _train(tmp_path: Path, name: str, epochs: int) -> tuple[list[str], Path]:
    config = tmp_path / f"{name}.json"
    config.write_text(json.dumps(TINY | {"epochs": epochs}))
    store = tmp_path / "prov.sqlite"
    command = _pinnprov("train", "--config", str(config), "--run-name", name, "--no-progress",
                        "--store", f"sqlite:///{store}", "--out", str(tmp_path / name))
    return command, store


def _query_epochs(store: Path) -> list[dict]:
    out = subprocess.run(_pinnprov("query", "epochs", "--run", "latest", "--format", "json", "--store", str(store)),
                         capture_output=True, text=True, env=_env(), timeout=60)
    if out.returncode != 0:
        return []  # the store or the run may not exist yet
    return json.loads(out.stdout)


def test_epochs_are_visible_while_training_and_complete_after_an_interrupt(tmp_path: Path) -> None:
    command, store = _train(tmp_path, "e2e-interrupted", epochs=1_000_000)
    trainer = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env=_env(tmp_path / "spool"))
    try:
        seen: list[int] = []
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and trainer.poll() is None:
            rows = _query_epochs(store)
            if rows and (not seen or len(rows) > seen[-1]):
                seen.append(len(rows))
            if len(seen) >= 2:
                break
            time.sleep(0.2)
        assert trainer.poll() is None, f"trainer ended early: {trainer.communicate()[1][-2000:]}"
        assert len(seen) >= 2 and seen[1] > seen[0] > 0  # rows appear and grow while the trainer runs
    finally:
        trainer.send_signal(signal.SIGINT)
        _, stderr = trainer.communicate(timeout=60)
    assert trainer.returncode == 130, stderr[-2000:]
    with sqlite3.connect(store) as conn:
        status, epochs, error = conn.execute(
            "SELECT status, epochs, error FROM run WHERE run_name = 'e2e-interrupted'").fetchone()
        stored = [r[0] for r in conn.execute(
            "SELECT epoch FROM epoch_metric JOIN run USING (run_id) WHERE run_name = 'e2e-interrupted' ORDER BY epoch")]
    assert status == "failed" and error.startswith("KeyboardInterrupt")
    assert epochs >= seen[1] and stored == list(range(epochs))  # every finished epoch reached the store


def test_store_holds_exactly_what_the_trainer_reported(tmp_path: Path) -> None:
    command, store = _train(tmp_path, "e2e-finished", epochs=120)
    done = subprocess.run(command, capture_output=True, text=True, env=_env(tmp_path / "spool"), timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads((tmp_path / "e2e-finished" / "result.json").read_text())
    with sqlite3.connect(store) as conn:
        conn.row_factory = sqlite3.Row
        run = conn.execute("SELECT * FROM run WHERE run_name = 'e2e-finished'").fetchone()
        hp = {r["name"]: (r["value"], r["value_type"]) for r in conn.execute(
            "SELECT name, value, value_type FROM run_hyperparameter WHERE run_id = ?", (run["run_id"],))}
        rows = conn.execute("SELECT * FROM epoch_metric WHERE run_id = ? ORDER BY epoch", (run["run_id"],)).fetchall()
        extra = dict(conn.execute("SELECT name, value FROM epoch_extra WHERE run_id = ? AND epoch = ?",
                                  (run["run_id"], rows[-1]["epoch"])).fetchall())
        summary = dict(conn.execute("SELECT name, value FROM run_summary WHERE run_id = ?", (run["run_id"],)))
    assert run["run_id"] == result["run_id"] and run["status"] == result["status"] == "completed"
    assert run["epochs"] == result["epochs"] == 120 and [r["epoch"] for r in rows] == list(range(120))
    assert _decoded(hp) == result["hyperparameters"]  # every hyperparameter, with its type
    metrics = result["metrics"]
    assert rows[-1]["loss"] == pytest.approx(metrics["loss"], rel=1e-6)
    assert rows[-1]["learning_rate"] == pytest.approx(metrics["learning_rate"], rel=1e-6)
    assert summary == pytest.approx(metrics)
    assert extra["data_rms_s"] == pytest.approx(metrics["data_rms_s"], rel=1e-3)
    assert run["dataset_sha256"] == result["dataset"]["sha256"]


def _decoded(stored: dict[str, tuple[str, str]]) -> dict[str, object]:
    """Stored (text, type) pairs back to Python values."""
    decode = {"bool": lambda t: t == "true", "int": int, "float": float, "str": str}
    return {key: decode[kind](text) for key, (text, kind) in stored.items()}
