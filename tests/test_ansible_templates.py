"""Every role template rendered by Ansible's real template engine, then read by what consumes it.

The collector's config goes through pinnprov's own collector config loader, the env files through sh, the unit
through a systemd-syntax parser, the Elastic configs through YAML, and the lane script is run for its status.
"""

from __future__ import annotations

import configparser
import io
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from collector.config import load_config
from deploy.progress import Progress
from deploy.runner import run_playbook

ANSIBLE_DIR = Path(__file__).resolve().parents[1] / "ansible"
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


@pytest.mark.slow
def test_lane_scripts_track_pending_and_finished_runs(rendered: Path) -> None:
    runs = rendered / "runs"
    for name in ("adam-tanh", "rmsprop-sine", "adam-relu"):
        (runs / name).mkdir(parents=True, exist_ok=True)
    (runs / "lanes").mkdir(exist_ok=True)
    gpu, cpu = rendered / "lane-gpu1.sh", rendered / "lane-cpu.sh"
    for script in (gpu, cpu):
        subprocess.run(["sh", "-n", str(script)], check=True)
    assert "export CUDA_VISIBLE_DEVICES=1\n" in gpu.read_text()
    assert "export CUDA_VISIBLE_DEVICES=\n" in cpu.read_text()  # the CPU lane hides every GPU

    def status(script: Path) -> str:
        return subprocess.run(["sh", str(script), "status"], capture_output=True, text=True, check=True).stdout.strip()

    assert status(gpu) == "pending 2"
    (runs / "adam-tanh" / "exit-status").write_text("0\n")
    assert status(gpu) == "pending 1"
    (runs / "rmsprop-sine" / "exit-status").write_text("1\n")
    assert status(gpu) == "done"  # a failed run is finished unless trainer_rerun_failed
    (runs / "adam-relu" / "exit-status").write_text("1\n")
    assert status(cpu) == "pending 1"  # this lane was rendered with trainer_rerun_failed: true
    assert subprocess.run(["sh", str(cpu), "stop"], capture_output=True, text=True).stdout.strip() == "not running"
    usage = subprocess.run(["sh", str(cpu), "bogus"], capture_output=True, text=True)
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
