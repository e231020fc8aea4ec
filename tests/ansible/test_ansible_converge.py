"""A real converge of the `collector`, `dask_scheduler` and GPU-free `trainer` roles on this machine.

Local connection, every path under a scratch prefix, `process` service managers (no systemd here). pinnprov is
installed into the roles' virtualenvs from a wheel of this checkout with `--no-deps --no-index`, the
dependencies coming from this test environment through `*_site_dirs` (a .pth file): fast and offline.
Checked: check mode on the fresh host writes nothing there; the collector answers OTLP/HTTP and refuses requests
without its token; the scheduler speaks mutual TLS only and has the role's CPU worker (CPU=1); a second converge
changes nothing; `pinnprov sweep --scheduler tls://...` with the client certificate trains a tiny run on that
worker, which exports it to the collector's store with the token; the roles' teardown stops all three and keeps
the data.
"""

from __future__ import annotations

import io
import json
import os
import socket
import sqlite3
import subprocess
import sys
import sysconfig
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from pinnprov.deploy.progress import Progress
from pinnprov.deploy.runner import run_playbook
from pinnprov.deploy.wheel import build_wheel

ANSIBLE_DIR = Path(__file__).resolve().parents[2] / "ansible"
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


def _client(port: int, ca: Path, cert: Path, key: Path) -> object:
    from distributed import Client
    from distributed.security import Security

    security = Security(tls_ca_file=str(ca), tls_client_cert=str(cert), tls_client_key=str(key),
                        require_encryption=True)
    return Client(f"tls://127.0.0.1:{port}", security=security, timeout=15, set_as_default=False)


def _foreign_certificate(directory: Path) -> tuple[Path, Path, Path]:
    """A CA and a client certificate that the deployment never saw (what an intruder could make)."""
    directory.mkdir()
    ca, key = directory / "ca.pem", directory / "ca.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(ca),
                    "-days", "1", "-subj", "/CN=someone else"], check=True, capture_output=True)
    return ca, ca, key  # a self-signed certificate is its own CA


@pytest.mark.slow
def test_collector_scheduler_and_worker_converge_serve_and_are_idempotent(tmp_path: Path) -> None:
    root = tmp_path / "prefix"
    tls = tmp_path / "controller-tls"
    wheel = build_wheel(cache_dir=tmp_path / "wheels")
    http_port, grpc_port, scheduler_port = free_port(), free_port(), free_port()
    site_packages = sysconfig.get_paths()["purelib"]  # this test environment: pinnprov's dependencies
    base_python = str(Path(sys.base_prefix) / "bin" / f"python{sys.version_info.major}.{sys.version_info.minor}")
    venv = {"wheel": str(wheel), "pip_extra_args": ["--no-deps", "--no-index"], "site_dirs": [site_packages],
            "python": base_python, "manage_packages": False, "manage_user": False, "service_manager": "process"}
    host = {
        "ansible_connection": "local",
        "ansible_python_interpreter": sys.executable,
        "collector_install_root": f"{root}/opt", "collector_config_dir": f"{root}/etc",
        "collector_state_dir": f"{root}/var/lib/collector", "collector_log_dir": f"{root}/var/log",
        **{f"collector_{key}": value for key, value in venv.items()},
        "collector_http_port": http_port, "collector_grpc_port": grpc_port, "collector_token": TOKEN,
        "collector_settings": {"fsync": False},
        "dask_scheduler_install_root": f"{root}/opt", "dask_scheduler_config_dir": f"{root}/etc",
        "dask_scheduler_state_dir": f"{root}/var/lib/dask-scheduler", "dask_scheduler_log_dir": f"{root}/var/log",
        **{f"dask_scheduler_{key}": value for key, value in venv.items()},
        "dask_scheduler_port": scheduler_port, "dask_scheduler_dashboard_address": "",
        "dask_scheduler_tls_ca_source": str(tls / "ca.pem"),
        "dask_scheduler_tls_cert_source": str(tls / "scheduler.pem"),
        "dask_scheduler_tls_key_source": str(tls / "scheduler.key"),
        "trainer_install_root": f"{root}/opt", "trainer_config_dir": f"{root}/etc",
        "trainer_runs_dir": f"{root}/var/lib/runs", "trainer_log_dir": f"{root}/var/log",
        **{f"trainer_{key}": value for key, value in venv.items()}, "trainer_extras": ["cpu"],
        "trainer_require_gpu": False, "trainer_otlp_endpoint": f"http://127.0.0.1:{http_port}",
        "trainer_collector_token": TOKEN, "trainer_scheduler_address": f"tls://127.0.0.1:{scheduler_port}",
        "trainer_worker_tls_ca_source": str(tls / "ca.pem"), "trainer_worker_tls_cert_source": str(tls / "worker.pem"),
        "trainer_worker_tls_key_source": str(tls / "worker.key"),
    }
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(yaml.safe_dump({"all": {"vars": {"dask_tls_dir": str(tls)}, "hosts": {"testhost": host},
                                                 "children": {"collector": {"hosts": {"testhost": None}},
                                                              "trainers": {"hosts": {"testhost": None}}}}}))
    store = root / "var/lib/collector/prov.sqlite"

    # Check mode on the fresh host (what `pinnprov deploy --check` does): predicts changes, writes nothing there
    # (the controller's certificates are made for real: the rest of the play reads them).
    dry, _ = converge("converge_local.yml", inventory, check=True)
    assert dry.changed() > 0
    assert not root.exists()
    assert {p.name for p in tls.iterdir()} >= {"ca.pem", "ca.key", "client.pem", "client.key", "worker.pem"}
    assert all(oct((tls / f"{n}.key").stat().st_mode & 0o777) == "0o600" for n in ("ca", "scheduler", "worker"))
    try:
        first, progress = converge("converge_local.yml", inventory)
        assert first.changed() > 0
        started = {r.task: r.status for r in progress.results if r.task.startswith("Start the") and "process" in r.task}
        assert started == {"Start the collector process": "changed", "Start the scheduler process": "changed",
                           "Start the Dask worker processes": "changed"}, started

        # The collector answers OTLP/HTTP with a protobuf response, and only with the token.
        status, body = post_traces(http_port, TOKEN)
        assert status == 200
        ExportTraceServiceResponse.FromString(body)
        assert post_traces(http_port, None)[0] == 401
        assert post_traces(http_port, "wrong-token")[0] == 401
        with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/healthz", timeout=30) as response:
            assert response.status == 200

        # The scheduler speaks mutual TLS: a client with the CA's certificate sees the role's CPU worker ...
        with _client(scheduler_port, tls / "ca.pem", tls / "client.pem",  # type: ignore[attr-defined]
                     tls / "client.key") as client:
            client.wait_for_workers(1, timeout=60)
            workers = client.scheduler_info()["workers"].values()
            assert [(w["name"], w["resources"], w["nthreads"]) for w in workers] == [("testhost-cpu0", {"CPU": 1}, 1)]
        # ... and nothing else gets in: neither a certificate of another CA nor plain TCP.
        from distributed import Client

        foreign = _foreign_certificate(tmp_path / "foreign")
        with pytest.raises((OSError, TimeoutError)):
            _client(scheduler_port, tls / "ca.pem", foreign[1], foreign[2]).close()  # type: ignore[attr-defined]
        with pytest.raises((OSError, TimeoutError)):
            Client(f"tcp://127.0.0.1:{scheduler_port}", timeout=5, set_as_default=False).close()

        # Idempotence: the second converge changes nothing and restarts nothing.
        second, progress = converge("converge_local.yml", inventory)
        assert second.changed() == 0, [(r.task, r.status) for r in progress.results if r.status == "changed"]

        # A sweep through the TLS scheduler trains on that worker; the run reaches the collector's store over OTLP.
        config = tmp_path / "tiny.json"
        config.write_text(json.dumps(TINY_RUN))
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "PINNPROV_", "DASK_"))}
        done = subprocess.run(
            [sys.executable, "-m", "pinnprov", "sweep", "--scheduler", f"tls://127.0.0.1:{scheduler_port}",
             "--resource", "CPU", "--tls-ca-file", str(tls / "ca.pem"), "--tls-cert", str(tls / "client.pem"),
             "--tls-key", str(tls / "client.key"), "--config", str(config), "--experiment", "converge-test",
             "--store", f"sqlite:///{store}", "--out", str(tmp_path / "sweep-out")],
            capture_output=True, text=True, timeout=600, env={**env, "PYTHONPATH": str(ANSIBLE_DIR.parent)})
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        assert "started on tls://127.0.0.1:" in done.stdout
        (name, experiment, status, epochs), = sqlite3.connect(f"file:{store}?mode=ro", uri=True).execute(
            "SELECT run_name, experiment, status, epochs FROM run").fetchall()
        assert (experiment, status, epochs) == ("converge-test", "completed", TINY_RUN["epochs"])
        assert (root / "var/lib/runs" / name / "result.json").is_file()  # outputs on the worker's node
        assert (root / "var/lib/runs/logs" / f"{name}.log").is_file()
    finally:
        _, progress = converge("teardown_local.yml", inventory)

    stops = {r.task: r.status for r in progress.results}
    assert stops["Stop the collector process"] == "changed"
    assert stops["Stop the scheduler process"] == "changed"
    assert stops["Stop the Dask worker processes"] == "changed"
    for port in (http_port, scheduler_port):
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
    assert store.exists() and (root / "opt/collector-venv/bin/pinnprov").exists()  # teardown keeps data
