"""`pinnprov paper`: the study end to end on a real embedded store, shrunk for the test (tiny networks, the
paper's Adam-vs-RMSProp-with-Sigmoid pair, a short PyGIMLi run). The RMSProp run is stopped at runtime from a
query of the store; the report's tables are byte-identical to `pinnprov query` against the same store."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys

import pytest
from collector_process import rows

pytest.importorskip("tensorflow")
pytestmark = pytest.mark.slow

TINY = {"tau_layers": 2, "tau_units": 8, "velocity_layers": 2, "velocity_units": 8, "collocation_count": 200,
        "boundary_points": 20, "steps_per_call": 20, "stopping": "none", "seed": 11, "jit_compile": False}
# Long enough that the RMSProp run is still training for several of the driver's 1 s checks after the warm-up.
EPOCHS = 8000


def _env() -> dict[str, str]:
    env = {k: val for k, val in os.environ.items() if not k.startswith(("OTEL_", "PINNPROV_"))}
    env.update(TF_CPP_MIN_LOG_LEVEL="3", PYTHONUNBUFFERED="1")
    return env


def _pinnprov(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pinnprov", *args], capture_output=True, text=True, env=_env(),
                          timeout=timeout)


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> dict:
    import inspect

    import pinnprov.cli.commands.train as train_command

    if "command_source_for" not in inspect.getsource(train_command):
        pytest.fail("`pinnprov train` does not poll steering commands: it must pass "
                    "pinnprov.capture.steering_poller.command_source_for(...) to pinn.trainer.train (see H8's report)")
    out = tmp_path_factory.mktemp("paper") / "report"
    config = out.parent / "tiny.json"
    config.write_text(json.dumps(TINY))
    # Two runs, so a low factor: the rule stops the RMSProp run unless it is 3x better than Adam at the warm-up
    # (tests/test_poor_run_rule.py tests the rule itself on eight runs); here: the whole path to a stopped run.
    done = _pinnprov("paper", "--quick", "--activation", "sigmoid", "--epochs", str(EPOCHS), "--steer-factor", "0.5",
                     "--config", str(config),
                     "--baseline-max-iter", "2", "--baseline-sec-nodes", "1", "--out", str(out))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return {"out": out, "db": out / "pinnprov.db", "stdout": done.stdout,
            "summary": json.loads((out / "report.json").read_text())}


def test_the_report_tables_equal_direct_queries_of_the_store(study: dict) -> None:
    out, summary = study["out"], study["summary"]
    assert set(summary["tables"]) == {"table1", "table2", "table3", "adaptations"}
    html = (out / "report.html").read_text()
    for name, table in summary["tables"].items():
        direct = _pinnprov("query", *table["query"], "--store", str(study["db"]), "--format", "csv")
        assert direct.returncode == 0, direct.stderr
        assert (out / table["csv"]).read_text() == direct.stdout, name
        assert len(direct.stdout.splitlines()) == table["rows"] + 1
        assert "pinnprov query " + " ".join(table["query"]) in html
    assert summary["tables"]["table2"]["rows"] == 2 and summary["tables"]["table3"]["rows"] == 2
    assert summary["tables"]["table1"]["query"][2].startswith(f"{summary['experiment']}-adam-sigmoid-")
    assert summary["tables"]["table1"]["rows"] == 4  # epochs 0, 2000, 4000, 6000, like the paper's Table 1
    # every run's adaptations: the per-run `adaptations` queries, one after the other
    from pinnprov.experiments.compare import read_csv

    combined = read_csv(out / summary["tables_per_run"]["adaptations_all"]["csv"])
    expected = []
    for (name,) in rows(study["db"], "SELECT run_name FROM run ORDER BY started_at, run_id"):
        direct = _pinnprov("query", "adaptations", "--run", name, "--store", str(study["db"]), "--format", "csv")
        expected += [{"run_name": name, **row} for row in csv.DictReader(io.StringIO(direct.stdout))]
    assert sorted(combined, key=str) == sorted(expected, key=str)
    agents = {row["agent"] for row in combined}
    assert "schedule" in agents and any(a.startswith("user:") for a in agents)  # automatic and user adaptations


def test_the_worst_rmsprop_run_was_stopped_at_runtime_by_the_user(study: dict) -> None:
    import getpass

    db, steering = study["db"], study["summary"]["steering"]
    assert steering["command_id"], steering["note"]
    assert steering["agent"] == f"user:{getpass.getuser()}" and "standing rule" in steering["reason"]
    assert f"at the warm-up epoch {EPOCHS // 5} is more than 0.5 x the median L=" in steering["reason"]
    rule = study["summary"]["steering_rule"]
    assert [stop["run_name"] for stop in rule["stopped"]] == [steering["run_name"]]  # every poor run, here one
    assert steering["run_name"].startswith(f"{study['summary']['experiment']}-rmsprop-sigmoid-")
    (status, epochs), = rows(db, "SELECT status, epochs FROM run WHERE run_id = ?", (steering["run_id"],))
    assert status == "stopped" and steering["epoch"] < epochs < EPOCHS
    (agent, reason, parameter), = rows(db, "SELECT agent, reason, parameter FROM adaptation WHERE command_id = ?",
                                       (steering["command_id"],))
    assert (agent, reason, parameter) == (steering["agent"], steering["reason"], "stop")
    assert rows(db, "SELECT state FROM steering_command") == [("applied",)]
    adam = [r for r in rows(db, "SELECT status, epochs FROM run WHERE optimizer = 'adam'")]
    assert adam == [("completed", EPOCHS)]
    assert f"steering: stop {steering['run_name']}" in study["stdout"]


def test_the_report_has_both_figures_and_the_labelled_estimate(study: dict) -> None:
    out, summary = study["out"], study["summary"]
    html = (out / "report.html").read_text()
    assert html.count('src="data:image/png;base64,') == 2
    for name in ("figure2", "figure3"):
        assert (out / summary["figures"][name]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "PyGIMLi" in html and "chosen by the data alone" in html
    assert summary["timing"]["epochs_per_s"] > 0 and summary["timing"]["full_study_estimate_s"] > 0
    assert "ESTIMATE for the full study" in html and "--config" in html  # the overrides are stated with it
    assert (out / "baseline" / "velocity_pygimli.npy").is_file()
