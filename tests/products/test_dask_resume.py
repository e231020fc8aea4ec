"""A Dask retry resumes from the lost attempt's last checkpoint when the runs folder is shared (here: one machine).

A real scheduler and two real workers on loopback; the worker training the configuration is SIGKILLed once a
checkpoint is on disk. The retry (a new run on the other worker) starts at the checkpoint's epoch, completes the
configuration, and the store says so: relation resumed_from (the trainer, agent sweep:retry) and retry_of (the
driver), both wasInformedBy(retry, lost attempt).
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from collector_process import rows
from dask_cluster import ROOT, clean_env, local_dask_cluster

from pinnprov.experiments.dask_task import AttemptSpec, resume_args
from pinnprov.pinn.checkpoints import file_name

TINY = {"tau_layers": 2, "tau_units": 8, "velocity_layers": 2, "velocity_units": 8, "collocation_count": 200,
        "boundary_points": 20, "steps_per_call": 20, "stopping": "none", "seed": 11}
EPOCHS, EVERY = 3000, 200


def test_resume_args_only_when_the_lost_attempt_left_a_checkpoint(tmp_path: Path) -> None:
    spec = AttemptSpec("c-r1", "e", (), str(tmp_path), "", resume_from="c")
    assert resume_args(spec, tmp_path) == []
    (tmp_path / "c" / "checkpoints").mkdir(parents=True)
    (tmp_path / "c" / "checkpoints" / file_name(400)).write_bytes(b"x")
    assert resume_args(spec, tmp_path) == ["--resume", str(tmp_path / "c" / "checkpoints"), "--resume-agent",
                                           "sweep:retry"]
    assert resume_args(AttemptSpec("c", "e", (), str(tmp_path), ""), tmp_path) == []


def _kill_after_checkpoint(out: Path, cluster: object, killed: list[str], stop: threading.Event) -> None:
    """SIGKILL the worker whose child trains the first attempt once its second checkpoint is written."""
    while not stop.is_set() and not killed:
        time.sleep(0.2)
        found = list(out.glob(f"*/checkpoints/{file_name(2 * EVERY)}"))
        if not found:
            continue
        run_dir = found[0].parent.parent
        for process_dir in Path("/proc").iterdir():
            if not process_dir.name.isdigit():
                continue
            try:
                command = (process_dir / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"train" in command and str(run_dir).encode() in command:
                parent = int((process_dir / "stat").read_text().rsplit(")", 1)[1].split()[1])
                for name, worker in cluster.workers.items():  # type: ignore[attr-defined]
                    if worker.pid == parent:
                        cluster.kill(name)  # type: ignore[attr-defined]
                        killed.append(name)
                        return


@pytest.mark.slow
def test_a_killed_attempt_is_resumed_by_its_retry(tmp_path: Path) -> None:
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps(TINY))
    db, out = tmp_path / "prov.db", tmp_path / "out"
    with local_dask_cluster(tmp_path, {"w1": "CPU=1", "w2": "CPU=1"}) as cluster:
        killed: list[str] = []
        stop = threading.Event()
        killer = threading.Thread(target=_kill_after_checkpoint, args=(out, cluster, killed, stop), daemon=True)
        killer.start()
        try:
            done = subprocess.run(
                [sys.executable, "-m", "pinnprov", "sweep", "--scheduler", cluster.address, "--resource", "CPU",
                 "--optimizer", "adam", "--activation", "tanh", "--config", str(config), "--epochs", str(EPOCHS),
                 "--checkpoint-every", str(EVERY), "--experiment", "dr", "--store", f"sqlite:///{db}",
                 "--out", str(out)], capture_output=True, text=True, env=clean_env(), timeout=900, cwd=ROOT)
        finally:
            stop.set()
            killer.join(10)
    assert killed, done.stdout[-3000:] + done.stderr[-3000:]
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    runs = {name: (status, run_id) for name, status, run_id in rows(db, "SELECT run_name, status, run_id FROM run")}
    (lost, (_, lost_id)), = [(n, r) for n, r in runs.items() if r[0] == "failed"]
    retry_id = runs[lost + "-r1"][1]
    assert runs[lost + "-r1"][0] == "completed"
    (first, last), = rows(db, 'SELECT MIN("epoch"), MAX("epoch") FROM epoch_metric WHERE run_id = ?', (retry_id,))
    assert first >= 2 * EVERY and first % EVERY == 0 and last == EPOCHS - 1  # continued, not started again
    relations = sorted(rows(db, "SELECT relation, related_run_id, agent FROM run_relation WHERE run_id = ?",
                            (retry_id,)))
    assert [(r[0], r[1]) for r in relations] == [("resumed_from", lost_id), ("retry_of", lost_id)]
    assert dict((r[0], r[2]) for r in relations)["resumed_from"] == "sweep:retry"
    hp = dict(rows(db, "SELECT name, value FROM run_hyperparameter WHERE run_id = ?", (retry_id,)))
    assert hp["run.resumed_from"] == lost_id
