"""`pinnprov sweep --scheduler`: a real Dask scheduler and two real worker processes on loopback.

The worker training the long configuration is SIGKILLed mid-run (as a crashed node would be): its attempt is
marked failed in the store with the reason, the configuration is trained again on the other worker as a new run,
and the store links the two (run_relation retry_of, PROV wasInformedBy). Every configuration ends completed
exactly once.
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

from pinnprov.experiments.dask_client import TlsFiles, check_address, security_for
from pinnprov.experiments.dask_task import AttemptSpec, attempt_names, destination_args, task_resources

TINY = {"tau_layers": 2, "tau_units": 8, "velocity_layers": 2, "velocity_units": 8, "collocation_count": 200,
        "boundary_points": 20, "steps_per_call": 20, "stopping": "none", "seed": 11}
LONG_EPOCHS, SHORT_EPOCHS, KILL_AFTER = 3000, 40, 40


def _pinnprov(*args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pinnprov", *args], capture_output=True, text=True,
                          env=clean_env(), timeout=timeout, cwd=ROOT)


# --- the pieces, without a cluster ------------------------------------------------------------------
def test_attempts_get_new_names_and_one_resource_unit() -> None:
    assert attempt_names("sw-tanh-adam-ab12", 3) == ["sw-tanh-adam-ab12", "sw-tanh-adam-ab12-r1",
                                                     "sw-tanh-adam-ab12-r2"]
    assert task_resources("GPU") == {"GPU": 1.0} and task_resources("CPU") == {"CPU": 1.0}
    with pytest.raises(ValueError, match="--resource: expected GPU or CPU, got 'TPU'"):
        task_resources("TPU")


def test_telemetry_goes_to_the_driver_collector_else_the_worker_collector_else_the_store() -> None:
    spec = AttemptSpec("r", "e", (), "/tmp", "", store="sqlite:///x.db")
    assert destination_args(spec, {}) == ["--store", "sqlite:///x.db"]
    assert destination_args(spec, {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}) == []
    explicit = AttemptSpec("r", "e", (), "/tmp", "", store="sqlite:///x.db", otlp_endpoint="http://c:4318")
    assert destination_args(explicit, {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://other:4318"}) == [
        "--otlp-endpoint", "http://c:4318"]


@pytest.mark.parametrize("address", ["127.0.0.1:8786", "http://h:8786", "tcp://h", "tcp://h:0", "tls://h:99999",
                                     "tcp://h:8786/x"])
def test_bad_scheduler_addresses_are_refused(address: str) -> None:
    with pytest.raises(ValueError, match="--scheduler: expected tcp://HOST:PORT or tls://HOST:PORT"):
        check_address(address)


def test_tls_needs_all_three_files_and_tcp_none(tmp_path: Path) -> None:
    assert check_address("tls://chiclet-3.lille.grid5000.fr:8786") == ("tls", "chiclet-3.lille.grid5000.fr", 8786)
    with pytest.raises(ValueError, match="--tls-cert, --tls-key: a tls:// scheduler needs"):
        security_for("tls://h:8786", TlsFiles(ca_file="ca.pem"))
    with pytest.raises(ValueError, match="only with a tls:// scheduler"):
        security_for("tcp://h:8786", TlsFiles(ca_file="ca.pem"))
    with pytest.raises(FileNotFoundError, match="--tls-ca-file .*: no such file"):
        security_for("tls://h:8786", TlsFiles(str(tmp_path / "ca.pem"), str(tmp_path / "c"), str(tmp_path / "k")))


@pytest.mark.parametrize(("flags", "error"), [
    (["--scheduler", "localhost:8786"], "--scheduler: expected tcp://HOST:PORT or tls://HOST:PORT"),
    (["--scheduler", "tcp://127.0.0.1:9", "--parallel", "2"], "--parallel: not with --scheduler"),
    (["--scheduler", "tcp://127.0.0.1:9", "--resource", "TPU"], "argument --resource: invalid choice: 'TPU'"),
])
def test_bad_cluster_flags_are_one_line(tmp_path: Path, flags: list[str], error: str) -> None:
    out = _pinnprov("sweep", *flags, "--store", str(tmp_path / "prov.db"), "--out", str(tmp_path / "out"))
    assert out.returncode == 2 and error in out.stderr and out.stderr.count("\n") == 1, out.stderr


# --- a real cluster -------------------------------------------------------------------------------
def _kill_the_worker_of(db: Path, run_prefix: str, cluster: object, killed: list[str], stop: threading.Event) -> None:
    """Once the run has KILL_AFTER epochs stored, SIGKILL the worker process whose child trains it."""
    while not stop.is_set() and not killed:
        time.sleep(0.3)
        if not db.exists():
            continue
        try:
            found = rows(db, "SELECT r.process_pid, MAX(e.\"epoch\") FROM run r JOIN epoch_metric e "
                             "ON e.run_id = r.run_id WHERE r.run_name LIKE ? GROUP BY r.run_id", (run_prefix + "%",))
        except Exception:  # noqa: BLE001 - the store is being created
            continue
        if not found or found[0][1] is None or found[0][1] < KILL_AFTER:
            continue
        trainer_pid = int(found[0][0])
        parent = int(Path(f"/proc/{trainer_pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        for name, process in cluster.workers.items():  # type: ignore[attr-defined]
            if process.pid == parent:
                cluster.kill(name)  # type: ignore[attr-defined]
                killed.append(name)
                return


@pytest.mark.slow
def test_a_sweep_survives_a_killed_worker_and_every_configuration_completes_once(tmp_path: Path) -> None:
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps(TINY))
    db = tmp_path / "prov.db"
    with local_dask_cluster(tmp_path, {"w1": "CPU=1", "w2": "CPU=1"}) as cluster:
        killed: list[str] = []
        stop = threading.Event()
        killer = threading.Thread(target=_kill_the_worker_of, daemon=True,
                                  args=(db, "dk-tanh-adam-3000-", cluster, killed, stop))
        killer.start()
        try:
            out = _pinnprov("sweep", "--scheduler", cluster.address, "--resource", "CPU", "--optimizer",
                            "adam", "--activation", "tanh", "--config", str(config), "--epochs",
                            f"{LONG_EPOCHS},{SHORT_EPOCHS},{SHORT_EPOCHS + 1}", "--experiment", "dk", "--store", f"sqlite:///{db}",
                            "--out", str(tmp_path / "out"))
        finally:
            stop.set()
            killer.join(10)
    assert killed, out.stdout[-3000:] + out.stderr[-3000:]
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "3 configuration(s) on tcp://127.0.0.1:" in out.stdout and "(2 worker(s), 2 x CPU now)" in out.stdout

    stored = {name: (status, epochs, error, run_id) for name, status, epochs, error, run_id in
              rows(db, "SELECT run_name, status, epochs, error, run_id FROM run WHERE experiment = 'dk'")}
    failed = {name: row for name, row in stored.items() if row[0] == "failed"}
    completed = {name: row for name, row in stored.items() if row[0] == "completed"}
    assert len(failed) == 1 and len(completed) == 3, stored
    (failed_name, (_, failed_epochs, failed_error, failed_id)), = failed.items()
    assert failed_name.startswith("dk-tanh-adam-3000-") and not failed_name.endswith("-r1")
    assert "lost during the run" in failed_error and failed_epochs >= KILL_AFTER
    retry = failed_name + "-r1"
    assert completed[retry][1] == LONG_EPOCHS  # trained again, in full, on the surviving worker
    # every configuration completed exactly once
    labels = sorted(name.removesuffix("-r1").rsplit("-", 1)[0] for name in completed)
    assert labels == ["dk-tanh-adam-3000", "dk-tanh-adam-40", "dk-tanh-adam-41"], labels
    # the retry is linked to the failed attempt, queryably (PROV view and the relation table)
    assert rows(db, "SELECT informed_id, informant_id FROM was_informed_by WHERE informed_id LIKE 'run/%'") == [
        (f"run/{completed[retry][3]}", f"run/{failed_id}")]
    (relation, agent), = rows(db, "SELECT relation, agent FROM run_relation")
    assert relation == "retry_of" and agent.startswith("sweep:")
    assert f"[{failed_name}] failed after" in out.stdout and f"[{retry}] submitted again" in out.stdout
    assert f"{failed_name}: failed (retried as a new run): worker tcp://127.0.0.1:" in out.stderr
    table = out.stdout.split("\n\n", 1)[1]  # Table 2 at the end lists every run, the failed attempt too
    assert all(name in table for name in stored)
    assert any(line.startswith(f"[{failed_name}] epoch ") for line in out.stdout.splitlines())  # live progress
