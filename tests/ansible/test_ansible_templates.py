"""Every role template rendered by Ansible's real template engine, then read by what consumes it.

The collector's config goes through pinnprov's own collector config loader, the env files through sh, the unit
through a systemd-syntax parser, the Elastic configs through YAML, the Dask command lines through Dask's own
command-line parser, and the control scripts are run for their status.
"""

from __future__ import annotations

import configparser
import io
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pinnprov.collector.config import load_config
from pinnprov.deploy.progress import Progress
from pinnprov.deploy.runner import run_playbook

ANSIBLE_DIR = Path(__file__).resolve().parents[2] / "ansible"
TOKEN = "collector-token-0123456789"
KEY = "kibana-encryption-key-0123456789-abcdef"


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("rendered")
    (out / "tls").mkdir()
    for name in ("cert.pem", "key.pem"):
        (out / "tls" / name).write_text("placeholder\n")
    (out / "collector.token").write_text(TOKEN + "\n")  # the role writes it; load_config reads it
    inventory = out / "hosts.yml"
    inventory.write_text(f"all:\n  hosts:\n    chiclet-3.lille.grid5000.fr:\n      ansible_connection: local\n"
                         f"      ansible_python_interpreter: {sys.executable}\n")
    extravars = {
        "render_dir": str(out),
        "collector_config_dir": str(out),
        "collector_state_dir": "/var/lib/pinnprov/collector",
        "collector_listen_address": "0.0.0.0",
        "collector_token": TOKEN,
        "collector_tls_cert_file": str(out / "tls" / "cert.pem"),
        "collector_tls_key_file": str(out / "tls" / "key.pem"),
        "collector_stores": ["monetdb://pinnprov:s3cret-pass-word@127.0.0.1:50000/pinnprov"],
        "collector_elasticsearch_url": "https://127.0.0.1:9200",
        "collector_elasticsearch_username": "pinnprov_collector",
        "collector_elasticsearch_password": "es-password-123",
        "collector_elasticsearch_ca_source": "/etc/elasticsearch/certs/http_ca.crt",
        "collector_environment": {"PINNPROV_EXTRA": "on"},
        "collector_alert_rules": [{"name": "loss-high-late", "kind": "threshold", "metric": "loss", "op": ">",
                                   "threshold": 0.01, "after_epoch": 5000}],
        "collector_settings": {"fsync": False, "batch_linger_s": 0.05},
        "trainer_otlp_endpoint": "http://chiclet-3.lille.grid5000.fr:4318",
        "trainer_collector_token": TOKEN,
        "trainer_environment": {"TF_FORCE_GPU_ALLOW_GROWTH": "true"},
        "trainer_runs_dir": str(out / "runs"),
        "trainer_config_dir": str(out),
        "trainer_scheduler_address": "tls://chiclet-3.lille.grid5000.fr:8786",
        "trainer_worker_port_base": 40000,
        "dask_scheduler_listen_address": "0.0.0.0",
        "dask_scheduler_config_dir": str(out),
        "elasticsearch_heap_size": "8g",
        "elasticsearch_extra_settings": {"indices.query.bool.max_clause_count": 4096},
        "kibana_system_password": "kibana-system-pw",
        "kibana_encryption_key": KEY,
    }
    progress = Progress(stream=io.StringIO())
    result = run_playbook(ANSIBLE_DIR / "tests" / "render_templates.yml", inventory=inventory,
                          ansible_dir=ANSIBLE_DIR, extravars=extravars, progress=progress, timeout=300)
    assert result.ok, [f.message for f in result.failures] or result.error
    return out


@pytest.mark.slow
def test_collector_config_is_accepted_by_the_collector(rendered: Path) -> None:
    config = load_config(rendered / "collector.yml")
    assert config.http_endpoint == "0.0.0.0:4318" and config.grpc_endpoint == "0.0.0.0:4317"
    assert config.token == TOKEN  # through token_file, never inline
    assert TOKEN not in (rendered / "collector.yml").read_text()
    assert config.stores == ("monetdb://pinnprov:s3cret-pass-word@127.0.0.1:50000/pinnprov",
                             "elasticsearch+https://127.0.0.1:9200")
    assert str(config.spool_dir) == "/var/lib/pinnprov/collector/collector-spool"
    assert config.tls_cert_file == rendered / "tls" / "cert.pem"
    assert config.fsync is False and config.batch_linger_s == 0.05
    assert [rule.name for rule in config.rules] == ["loss-high-late"]


@pytest.mark.slow
def test_collector_environment_file_reads_the_same_in_sh(rendered: Path) -> None:
    script = f"set -a; . {rendered / 'collector.env'}; set +a; env"
    env = dict(line.split("=", 1) for line in subprocess.run(["sh", "-c", script], capture_output=True, text=True,
                                                              check=True, env={}).stdout.splitlines() if "=" in line)
    assert env["PINNPROV_ES_USERNAME"] == "pinnprov_collector"
    assert env["PINNPROV_ES_PASSWORD_FILE"] == str(rendered / "elasticsearch.password")
    assert env["PINNPROV_ES_CA_CERTS"] == str(rendered / "elasticsearch-ca.crt")
    assert env["PINNPROV_EXTRA"] == "on"
    assert "es-password-123" not in (rendered / "collector.env").read_text()


@pytest.mark.slow
def test_collector_unit_and_control_script(rendered: Path) -> None:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]  # systemd keys are case-sensitive
    unit.read_string((rendered / "pinnprov-collector.service").read_text())
    service = unit["Service"]
    venv = "/opt/pinnprov/collector-venv"
    assert service["ExecStart"] == f"{venv}/bin/pinnprov collector --config {rendered}/collector.yml"
    assert service["EnvironmentFile"] == f"{rendered}/collector.env"
    assert service["User"] == "pinnprov" and service["ProtectSystem"] == "strict"
    assert set(service["ReadWritePaths"].split()) == {"/var/lib/pinnprov/collector",
                                                      "/var/lib/pinnprov/collector/collector-spool",
                                                      "/var/log/pinnprov"}
    assert unit["Install"]["WantedBy"] == "multi-user.target"
    subprocess.run(["sh", "-n", str(rendered / "collector-control.sh")], check=True)


@pytest.mark.slow
def test_trainer_environment_points_runs_at_the_collector(rendered: Path) -> None:
    script = f"set -a; . {rendered / 'trainer.env'}; set +a; env"
    lines = subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=True, env={}).stdout
    env = dict(line.split("=", 1) for line in lines.splitlines() if "=" in line)
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://chiclet-3.lille.grid5000.fr:4318"
    assert env["OTEL_EXPORTER_OTLP_PROTOCOL"] == "http/protobuf"
    assert env["OTEL_EXPORTER_OTLP_HEADERS"] == f"Authorization=Bearer%20{TOKEN}"
    assert env["TF_FORCE_GPU_ALLOW_GROWTH"] == "true"


def _unit(path: Path) -> dict[str, list[str]]:
    """systemd keys of a unit file, each with every value it is given (EnvironmentFile= repeats)."""
    values: dict[str, list[str]] = {}
    for line in path.read_text().splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, value = line.split("=", 1)
            values.setdefault(key, []).append(value)
    return values


def _dask_accepts(argv: list[str]) -> None:
    """Dask's own command-line parser accepts every option of `argv` (an unknown option fails before --help)."""
    assert argv[1] == "-m" and argv[2].startswith("distributed.cli.dask_")
    done = subprocess.run([sys.executable, "-m", argv[2], *argv[3:], "--help"], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0 and "Usage:" in done.stdout and "--tls-ca-file" in done.stdout, done.stderr


@pytest.mark.slow
def test_scheduler_runs_tls_on_its_port_with_the_dashboard_on_loopback(rendered: Path) -> None:
    import shlex

    unit = _unit(rendered / "pinnprov-dask-scheduler.service")
    argv = shlex.split(unit["ExecStart"][0])
    tls = f"{rendered}/dask-tls"
    assert argv == ["/opt/pinnprov/scheduler-venv/bin/python", "-m", "distributed.cli.dask_scheduler",
                    "--host", "0.0.0.0", "--port", "8786",
                    "--protocol", "tls", "--tls-ca-file", f"{tls}/ca.pem", "--tls-cert", f"{tls}/scheduler.pem",
                    "--tls-key", f"{tls}/scheduler.key", "--dashboard-address", "127.0.0.1:8787",
                    "--scheduler-file", "/var/lib/pinnprov/dask-scheduler/scheduler.json"]
    _dask_accepts(argv)
    assert unit["EnvironmentFile"] == [f"{rendered}/dask-scheduler.env"] and unit["User"] == ["pinnprov"]
    script = f"set -a; . {rendered / 'dask-scheduler.env'}; set +a; env"
    env = dict(line.split("=", 1) for line in subprocess.run(["sh", "-c", script], capture_output=True, text=True,
                                                              check=True, env={}).stdout.splitlines() if "=" in line)
    assert env["DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES"] == "0"
    assert env["DASK_DISTRIBUTED__COMM__REQUIRE_ENCRYPTION"] == "True"
    control = rendered / "dask-scheduler-control.sh"
    subprocess.run(["sh", "-n", str(control)], check=True)
    assert shlex.join(argv) in control.read_text()  # the same command line without systemd


@pytest.mark.slow
def test_one_worker_per_gpu_pinned_to_its_gpu_with_one_thread_and_fixed_ports(rendered: Path) -> None:
    import shlex

    unit = _unit(rendered / "worker-gpu1.service")
    argv = shlex.split(unit["ExecStart"][0])
    tls = f"{rendered}/dask-tls"
    assert argv == ["/opt/pinnprov/trainer-venv/bin/python", "-m", "distributed.cli.dask_worker",
                    "tls://chiclet-3.lille.grid5000.fr:8786",
                    "--name", "chiclet-3-gpu1", "--nthreads", "1", "--nworkers", "1", "--resources", "GPU=1",
                    "--memory-limit", "auto", "--no-dashboard", "--local-directory", f"{rendered}/runs/dask-gpu1",
                    "--worker-port", "40001", "--nanny-port", "40101", "--tls-ca-file", f"{tls}/ca.pem",
                    "--tls-cert", f"{tls}/worker.pem", "--tls-key", f"{tls}/worker.key"]
    _dask_accepts(argv)
    assert unit["EnvironmentFile"] == [f"{rendered}/trainer.env", f"{rendered}/pinnprov-dask-worker-gpu1.env"]
    assert unit["KillMode"] == ["control-group"] and unit["User"] == ["pinnprov"]

    def sourced(*files: Path) -> dict[str, str]:
        script = "set -a; " + " ".join(f". {file};" for file in files) + " set +a; env"
        lines = subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=True, env={}).stdout
        return dict(line.split("=", 1) for line in lines.splitlines() if "=" in line)

    gpu = sourced(rendered / "trainer.env", rendered / "worker-gpu1.env")
    assert gpu["CUDA_VISIBLE_DEVICES"] == "1" and gpu["PINNPROV_RUNS_DIR"] == f"{rendered}/runs"
    assert gpu["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://chiclet-3.lille.grid5000.fr:4318"
    cpu = sourced(rendered / "worker-cpu0.env")
    assert cpu["CUDA_VISIBLE_DEVICES"] == ""  # a CPU worker hides every GPU
    control = rendered / "worker-cpu0.sh"
    subprocess.run(["sh", "-n", str(control)], check=True)
    assert "--resources CPU=1" in control.read_text() and "--name chiclet-3-cpu0" in control.read_text()
    status = subprocess.run(["sh", str(control), "status"], capture_output=True, text=True)
    assert status.returncode == 3 and status.stdout.strip() == "stopped"
    assert subprocess.run(["sh", str(control), "stop"], capture_output=True, text=True).stdout.strip() == "not running"
    usage = subprocess.run(["sh", str(control), "bogus"], capture_output=True, text=True)
    assert usage.returncode == 2 and "usage:" in usage.stderr


@pytest.mark.slow
def test_elasticsearch_config_keeps_security_on(rendered: Path) -> None:
    settings = yaml.safe_load((rendered / "elasticsearch.yml").read_text())
    assert settings["xpack.security.enabled"] is True
    assert settings["xpack.security.http.ssl.enabled"] is True
    assert settings["xpack.security.http.ssl.keystore.path"] == "certs/http.p12"
    assert settings["xpack.security.transport.ssl.enabled"] is True
    assert settings["discovery.type"] == "single-node" and "cluster.initial_master_nodes" not in settings
    assert settings["network.host"] == "127.0.0.1" and settings["http.port"] == 9200
    assert settings["node.name"] == "chiclet-3.lille.grid5000.fr"
    assert settings["indices.query.bool.max_clause_count"] == 4096


@pytest.mark.slow
def test_kibana_config_has_tls_and_three_distinct_encryption_keys(rendered: Path) -> None:
    settings = yaml.safe_load((rendered / "kibana.yml").read_text())
    keys = [settings[f"xpack.{name}.encryptionKey"] for name in ("encryptedSavedObjects", "security", "reporting")]
    assert len(set(keys)) == 3 and all(len(key) == 64 for key in keys)
    assert KEY not in (rendered / "kibana.yml").read_text()  # derived, the secret itself is not written
    assert settings["server.ssl.enabled"] is True
    assert settings["server.ssl.certificate"] == "/etc/kibana/certs/kibana.crt"
    assert settings["elasticsearch.hosts"] == ["https://127.0.0.1:9200"]
    assert settings["elasticsearch.username"] == "kibana_system"
    assert settings["elasticsearch.password"] == "kibana-system-pw"
    assert settings["elasticsearch.ssl.certificateAuthorities"] == ["/etc/kibana/certs/elasticsearch-ca.crt"]
    assert settings["server.publicBaseUrl"] == "https://localhost:5601"
    assert settings["server.port"] == 5601 and settings["server.host"] == "127.0.0.1"
