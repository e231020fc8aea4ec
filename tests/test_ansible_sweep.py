"""The trainer role's `assign_runs` filter: a sweep dealt round-robin over every GPU of every trainer."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

PLUGIN = Path(__file__).resolve().parents[1] / "ansible/roles/trainer/filter_plugins/trainer_sweep.py"
spec = importlib.util.spec_from_file_location("trainer_sweep", PLUGIN)
assert spec is not None and spec.loader is not None
trainer_sweep = importlib.util.module_from_spec(spec)
spec.loader.exec_module(trainer_sweep)
assign_runs = trainer_sweep.assign_runs

SWEEP = [{"run_name": f"run-{i}"} for i in range(7)]
LANES = {"gpu-b.lille.grid5000.fr": ["0"], "gpu-a.lille.grid5000.fr": ["0", "1"]}


def test_every_run_goes_to_exactly_one_gpu_spreading_before_stacking() -> None:
    mine = {host: assign_runs(SWEEP, LANES, host) for host in LANES}
    # Slots in sorted host order: (a,0) (a,1) (b,0), then again.
    assert [(r["run_name"], r["lane"]) for r in mine["gpu-a.lille.grid5000.fr"]] == [
        ("run-0", "0"), ("run-1", "1"), ("run-3", "0"), ("run-4", "1"), ("run-6", "0")]
    assert [(r["run_name"], r["lane"]) for r in mine["gpu-b.lille.grid5000.fr"]] == [("run-2", "0"), ("run-5", "0")]
    names = [r["run_name"] for runs in mine.values() for r in runs]
    assert sorted(names) == sorted(r["run_name"] for r in SWEEP)
    assert SWEEP[0] == {"run_name": "run-0"}  # the sweep itself is not modified


def test_a_host_outside_the_play_gets_nothing_and_no_lanes_is_an_error() -> None:
    assert assign_runs(SWEEP, LANES, "elsewhere") == []
    assert assign_runs(SWEEP, {"cpu-node": ["cpu"]}, "cpu-node")[0]["lane"] == "cpu"
    with pytest.raises(ValueError, match="no trainer has a GPU or CPU lane"):
        assign_runs(SWEEP, {"h": []}, "h")
    assert trainer_sweep.FilterModule().filters()["assign_runs"] is assign_runs
