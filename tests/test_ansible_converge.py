"""A real converge of the `collector` role and the GPU-free part of the `trainer` role on this machine.

Local connection, every path under a scratch prefix, `process` service managers (no systemd here). pinnprov is
installed into the roles' virtualenvs from a wheel of this checkout with `--no-deps --no-index`, the
dependencies coming from this test environment through `*_site_dirs` (a .pth file): fast and offline.
Checked: check mode on the fresh host writes nothing; the collector answers OTLP/HTTP and refuses requests
without its token; a second converge changes nothing; a tiny training run started by the trainer role reaches
the collector's store through OTLP with the token; the roles' teardown stops both and keeps the data.
"""

from __future__ import annotations

import io
import socket
import sqlite3
import sys
import sysconfig
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from deploy.progress import Progress
from deploy.runner import run_playbook
from deploy.wheel import build_wheel

ANSIBLE_DIR = Path(__file__).resolve().parents[1] / "ansible"
TOKEN = "converge-test-token-0123456789"
TINY_RUN = {"epochs": 200, "steps_per_call": 100, "collocation_count": 200, "boundary_points": 20,
            "tau_layers": 2, "tau_units": 8, "velocity_layers": 2, "velocity_units": 8, "stopping": "none",
            "threads": 1}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def post_traces(port: int, token: str | None) -> tuple[int, bytes]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/v1/traces", data=ExportTraceServiceRequest().SerializeToString(), method="POST",
        headers={"Content-Type": "application/x-protobuf", **({"Authorization": f"Bearer {token}"} if token else {})},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def converge(playbook: str, inventory: Path, check: bool = False) -> tuple[object, Progress]:
    progress = Progress(stream=io.StringIO())
    result = run_playbook(ANSIBLE_DIR / "tests" / playbook, inventory=inventory, ansible_dir=ANSIBLE_DIR,
                          progress=progress, check=check, timeout=900)
    assert result.ok, [f"{f.task}: {f.message}" for f in result.failures] or result.error
    return result, progress


@pytest.mark.slow
def test_collector_and_trainer_converge_serve_and_are_idempotent(tmp_path: Path) -> None:
    root = tmp_path / "prefix"
    wheel = build_wheel(cache_dir=tmp_path / "wheels")
    http_port, grpc_port = free_port(), free_port()
    site_packages = sysconfig.get_paths()["purelib"]  # this test environment: pinnprov's dependencies
    base_python = str(Path(sys.base_prefix) / "bin" / f"python{sys.version_info.major}.{sys.version_info.minor}")
    host = {
        "ansible_connection": "local",
        "ansible_python_interpreter": sys.executable,
        "collector_install_root": f"{root}/opt", "collector_config_dir": f"{root}/etc",
        "collector_state_dir": f"{root}/var/lib/collector", "collector_log_dir": f"{root}/var/log",
        "collector_wheel": str(wheel), "collector_pip_extra_args": ["--no-deps", "--no-index"],
        "collector_site_dirs": [site_packages], "collector_python": base_python,
        "collector_manage_packages": False, "collector_manage_user": False, "collector_service_manager": "process",
        "collector_http_port": http_port, "collector_grpc_port": grpc_port, "collector_token": TOKEN,
        "collector_settings": {"fsync": False},
        "trainer_install_root": f"{root}/opt", "trainer_config_dir": f"{root}/etc",
        "trainer_runs_dir": f"{root}/var/lib/runs",
        "trainer_wheel": str(wheel), "trainer_pip_extra_args": ["--no-deps", "--no-index"],
        "trainer_site_dirs": [site_packages], "trainer_python": base_python, "trainer_extras": ["cpu"],
        "trainer_manage_packages": False, "trainer_manage_user": False, "trainer_require_gpu": False,
        "trainer_service_manager": "process", "trainer_otlp_endpoint": f"http://127.0.0.1:{http_port}",
        "trainer_collector_token": TOKEN, "trainer_experiment": "converge-test",
        "trainer_sweep": [{"run_name": "converge-adam-tanh"}], "trainer_common_config": TINY_RUN,
    }
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(yaml.safe_dump({"all": {"hosts": {"testhost": host}, "children": {
        "collector": {"hosts": {"testhost": None}}, "trainers": {"hosts": {"testhost": None}}}}}))
    store = root / "var/lib/collector/prov.sqlite"

    # Check mode on the fresh host (what `pinnprov deploy --check` does): predicts changes, writes nothing.
    dry, _ = converge("converge_local.yml", inventory, check=True)
    assert dry.changed() > 0
    assert not root.exists()
    try:
        first, progress = converge("converge_local.yml", inventory)
        assert first.changed() > 0
        started = [r for r in progress.results if r.task == "Start the pending lanes as background processes"]
        assert [r.status for r in started] == ["changed"]

        # The collector answers OTLP/HTTP with a protobuf response, and only with the token.
        status, body = post_traces(http_port, TOKEN)
        assert status == 200
        ExportTraceServiceResponse.FromString(body)
        assert post_traces(http_port, None)[0] == 401
        assert post_traces(http_port, "wrong-token")[0] == 401
        with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/healthz", timeout=30) as response:
            assert response.status == 200

        # Idempotence, while the run trains (the two overlap to keep the test short): the second converge changes
        # nothing and does not start the run again.
        second, progress = converge("converge_local.yml", inventory)
        assert second.changed() == 0, [(r.task, r.status) for r in progress.results if r.status == "changed"]
        lane = [r for r in progress.results if r.task == "Start the pending lanes as background processes"]
        assert [r.status for r in lane] == ["skipped"]  # running or done: never started twice

        # The run the trainer role started reaches the collector's store over OTLP, and its lane records the end.
        run_dir = root / "var/lib/runs/converge-adam-tanh"
        deadline, row = time.monotonic() + 300, None
        while time.monotonic() < deadline:
            if store.exists():
                with sqlite3.connect(f"file:{store}?mode=ro", uri=True) as db:
                    row = db.execute("SELECT run_name, experiment, status FROM run WHERE run_name = ?",
                                     ("converge-adam-tanh",)).fetchone()
                if row is not None and row[2] == "completed" and (run_dir / "exit-status").exists():
                    break
            time.sleep(1)
        assert row == ("converge-adam-tanh", "converge-test", "completed"), row
        assert (run_dir / "exit-status").read_text().strip() == "0"
        assert "experiment: converge-test" in (run_dir / "config.yml").read_text()
        assert "start converge-adam-tanh on cpu" in (root / "var/lib/runs/lanes/cpu.log").read_text()
    finally:
        _, progress = converge("teardown_local.yml", inventory)

    stops = {r.task: r.status for r in progress.results}
    assert stops["Stop the collector process"] == "changed"
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", http_port), timeout=2).close()
    assert store.exists() and (root / "opt/collector-venv/bin/pinnprov").exists()  # teardown keeps data
