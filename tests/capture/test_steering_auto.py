"""Automatic adaptations land in the store exactly like user commands: learning-rate decay steps (agent
`schedule`), the switch to L-BFGS and the data-only early stop (agent `trainer`), with real training runs and the
real embedded capture; the named query and the PROV export list them with their agents."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pytest
from collector_process import rows

pytest.importorskip("tensorflow")
pytestmark = pytest.mark.slow

TINY = dict(lr_decay_rate=0.99, tau_layers=2, tau_units=8, velocity_layers=2, velocity_units=8, collocation_count=200,
            boundary_points=20, steps_per_call=10, threads=1, seed=5, lr_initial=1e-3)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from pinnprov.pinn.benchmark import crosshole_benchmark
    from pinnprov.pinn.config import TrainConfig
    from pinnprov.pinn.trainer import configure_threads, train
    from pinnprov.wiring import open_capture

    configure_threads(1)
    db = tmp_path_factory.mktemp("auto") / "prov.db"
    data = crosshole_benchmark()
    with open_capture(store=f"sqlite:///{db}") as observers:
        scheduled = train(TrainConfig(**TINY, epochs=120, lr_decay_steps=50, lbfgs_steps=5, stopping="none",
                                      run_name="auto-schedule"), data, observers)
    with open_capture(store=f"sqlite:///{db}") as observers:
        # a noise level of a whole second: the discrepancy principle is met at once and the trainer stops
        stopped = train(TrainConfig(**TINY, epochs=1000, stopping="discrepancy", noise_level_s=1.0,
                                    run_name="auto-stop"), data, observers)
    assert scheduled.status == "completed" and stopped.epochs < 1000
    return db


def _adaptations(db: Path, run_name: str) -> list[tuple]:
    return rows(db, "SELECT a.epoch, a.parameter, a.old_value, a.new_value, a.agent, a.reason FROM adaptation a "
                    "JOIN run r USING (run_id) WHERE r.run_name = ? ORDER BY a.at, a.epoch", (run_name,))


def test_schedule_steps_and_the_lbfgs_switch_are_adaptations(store: Path) -> None:
    found = _adaptations(store, "auto-schedule")
    decay = [row for row in found if row[1] == "learning_rate"]
    assert [row[0] for row in decay] == [50, 100] and {row[4] for row in decay} == {"schedule"}
    assert float(decay[0][3]) == pytest.approx(1e-3 * 0.99, rel=1e-5)
    assert float(decay[1][2]) == pytest.approx(float(decay[0][3]), rel=1e-6)
    (switch,) = [row for row in found if row[1] == "optimizer"]
    assert switch[0] == 120 and switch[2:5] == ("adam", "lbfgs", "trainer") and "L-BFGS" in switch[5]


def test_the_data_only_early_stop_is_an_adaptation_and_the_run_completes(store: Path) -> None:
    (stop,) = [row for row in _adaptations(store, "auto-stop") if row[1] == "stop"]
    assert stop[4] == "trainer" and stop[5]  # the stopping rule says why
    (status, epochs), = rows(store, "SELECT status, epochs FROM run WHERE run_name = 'auto-stop'")
    assert status == "completed" and epochs == stop[0]


def test_named_query_and_prov_export_carry_the_automatic_agents(store: Path) -> None:
    from pinnprov.cli import main as cli

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert cli(["query", "adaptations", "--run", "auto-schedule", "--store", str(store), "--format", "json"]) == 0
    listed = json.loads(out.getvalue())
    assert [(r["parameter"], r["agent"]) for r in listed] == [("learning_rate", "schedule")] * 2 + [
        ("optimizer", "trainer")]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert cli(["export-prov", "auto-schedule", "--store", str(store)]) == 0
    agents = json.dumps(json.loads(out.getvalue()).get("agent", {}))
    assert "schedule" in agents and "trainer" in agents
