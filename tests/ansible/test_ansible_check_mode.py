"""The service roles (MonetDB, Elasticsearch, Kibana) in check mode on this machine, and bad variables.

Their packages come from external repositories this machine cannot reach, so they run in check mode: preflight
asserts, the key download (from a local file:// copy of a key, the only substitution), the repository and package
steps are evaluated for real and nothing is changed. A second part runs plays with bad variables and checks that
each fails with its own clear message, from the argument specs or from the preflight asserts.
"""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest
import yaml

from pinnprov.deploy.progress import Progress
from pinnprov.deploy.runner import run_playbook

ANSIBLE_DIR = Path(__file__).resolve().parents[2] / "ansible"

GOOD = {
    "monetdb_admin_password": "admin-password-123",
    "monetdb_app_password": "app-password-1234",
    "elasticsearch_elastic_password": "elastic-password-1",
    "elasticsearch_kibana_system_password": "kibana-system-pw-1",
    "elasticsearch_collector_password": "collector-pw-12345",
    "kibana_system_password": "kibana-system-pw-1",
    "kibana_encryption_key": "k" * 40,
    "kibana_admin_password": "elastic-password-1",
    # The Dask roles' good hosts: a plain scheduler on loopback (the TLS files are the controller's, not here).
    "dask_scheduler_tls": False,
    "trainer_worker_tls": False,
    "trainer_scheduler_address": "tcp://127.0.0.1:8786",
}


def local_host(extra: dict[str, object] | None = None) -> dict[str, object]:
    return {"ansible_connection": "local", "ansible_python_interpreter": sys.executable, **(extra or {})}


@pytest.mark.slow
def test_service_roles_in_check_mode_change_nothing(tmp_path: Path) -> None:
    key = tmp_path / "repository-key.asc"
    key.write_text("-----BEGIN PGP PUBLIC KEY BLOCK-----\nplaceholder\n-----END PGP PUBLIC KEY BLOCK-----\n")
    host_vars = {**GOOD, "monetdb_repository_key_url": key.as_uri(),
                 "elasticsearch_repository_key_url": key.as_uri(), "kibana_repository_key_url": key.as_uri()}
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(yaml.safe_dump({"all": {"hosts": {"services": local_host(host_vars)}}}))
    watched = [Path("/etc/apt/sources.list.d/monetdb.list"), Path("/etc/apt/sources.list.d/elastic.list"),
               Path("/etc/apt/keyrings/monetdb.gpg"), Path("/etc/apt/keyrings/elastic.asc")]
    before = {path: path.exists() for path in watched}
    progress = Progress(stream=io.StringIO())
    result = run_playbook(ANSIBLE_DIR / "tests" / "check_services.yml", inventory=inventory, ansible_dir=ANSIBLE_DIR,
                          check=True, progress=progress, timeout=600)
    assert result.ok, [f"{f.task}: {f.message}" for f in result.failures] or result.error
    by_task = {r.task: r.status for r in progress.results}
    for role, repository in (("monetdb", "Add MonetDB's Debian repository"),
                             ("elasticsearch", "Add Elastic's Debian repository")):
        assert by_task[repository] == "changed", role  # would be added
    assert by_task["Install the MonetDB server and client"] == "skipped"  # no package lists yet: nothing to ask apt
    assert by_task["Install the Elasticsearch package"] == "skipped"
    assert by_task["Install the Kibana package"] == "skipped"
    for task in ("Check MonetDB's passwords", "Check Elasticsearch's passwords", "Check Kibana's secrets",
                 "Download MonetDB's repository signing key", "Download Elastic's repository signing key"):
        assert by_task[task] in ("ok", "changed"), task
    # Whatever needs the installed services is skipped, not failed, and nothing was started.
    for task in ("Initialise the dbfarm", "Create the database", "Render elasticsearch.yml",
                 "Give elastic its password", "Render kibana.yml", "Wait for Kibana's port"):
        assert by_task.get(task, "skipped") == "skipped", task
    assert {path: path.exists() for path in watched} == before


BAD_CASES: dict[str, tuple[str, dict[str, object], str]] = {
    # host: (role, variables, expected message fragment)
    "collector-manager": ("collector", {"collector_service_manager": "supervisor"},
                          "value of collector_service_manager must be one of: systemd, process, none, got: supervisor"),
    "collector-port-type": ("collector", {"collector_http_port": "eighty"},
                            "argument 'collector_http_port' is of type"),
    "collector-exposed": ("collector", {"collector_listen_address": "0.0.0.0"},
                          "collector_listen_address 0.0.0.0 is not loopback: set collector_token"),
    "collector-env": ("collector", {"collector_environment": {"PATH_EXTRA": "$HOME/bin"}},
                      "collector_environment needs shell-style names and values without $"),
    "collector-rules-key": ("collector", {"collector_settings": {"rules_file": "/etc/rules.yml"}},
                            "collector_settings must not set rules_file"),
    "trainer-plain-remote": ("trainer", {"trainer_scheduler_address": "tcp://chiclet-3.lille.grid5000.fr:8786",
                                         "trainer_worker_tls": False},
                             "trainer_scheduler_address must be tls://HOST:PORT with trainer_worker_tls"),
    "trainer-no-tls-files": ("trainer", {"trainer_worker_tls_ca_source": "/nonexistent/pinnprov/ca.pem"},
                             "trainer_worker_tls needs the CA, the workers' certificate and its key"),
    "trainer-ports": ("trainer", {"trainer_worker_tls": False, "trainer_scheduler_address": "tcp://127.0.0.1:8786",
                                  "trainer_worker_port_base": 80}, "trainer_worker_port_base 0 (random) or in"),
    "scheduler-exposed": ("dask_scheduler", {"dask_scheduler_listen_address": "0.0.0.0", "dask_scheduler_tls": False},
                          "dask_scheduler_listen_address 0.0.0.0 is not loopback: set dask_scheduler_tls"),
    "scheduler-dashboard": ("dask_scheduler", {"dask_scheduler_tls": False,
                                               "dask_scheduler_dashboard_address": "0.0.0.0:8787"},
                            "dask_scheduler_dashboard_address must be 127.0.0.1:PORT"),
    "scheduler-no-tls-files": ("dask_scheduler", {"dask_scheduler_tls_ca_source": "/nonexistent/pinnprov/ca.pem"},
                               "dask_scheduler_tls needs the CA, the scheduler's certificate"),
    "trainer-protocol": ("trainer", {"trainer_otlp_protocol": "udp"},
                         "value of trainer_otlp_protocol must be one of: grpc, http/protobuf, got: udp"),
    "trainer-gpu-ids": ("trainer", {"trainer_gpu_ids": ["first"]}, "trainer_gpu_ids"),
    "trainer-no-token": ("trainer", {"trainer_otlp_endpoint": "http://chiclet-3.lille.grid5000.fr:4318"},
                         "a collector on another host needs trainer_collector_token"),
    "monetdb-password": ("monetdb", {**GOOD, "monetdb_admin_password": "short"},
                         "monetdb_admin_password and monetdb_app_password must have at least 12 characters"),
    "monetdb-quote": ("monetdb", {**GOOD, "monetdb_app_password": "it's-a-password"}, "none of ' \" \\ / @ : %"),
    "elasticsearch-heap": ("elasticsearch", {**GOOD, "elasticsearch_heap_size": "4 GB"},
                           "elasticsearch_heap_size like 4g or 512m (4 GB)"),
    "elasticsearch-major": ("elasticsearch", {**GOOD, "elasticsearch_major_version": 7},
                            "value of elasticsearch_major_version must be one of: 8, 9, got: 7"),
    "kibana-key": ("kibana", {**GOOD, "kibana_encryption_key": "too-short"},
                   "kibana_encryption_key needs at least 32 characters"),
}


ROLES = ("collector", "trainer", "dask_scheduler", "monetdb", "elasticsearch", "kibana")


@pytest.mark.slow
def test_bad_variables_fail_with_a_clear_message(tmp_path: Path) -> None:
    # One play per role over its bad cases plus a good control host: Ansible stops a playbook whose play has no
    # host left, and the control also proves the failures come from the bad variables, not from the setup.
    groups: dict[str, dict[str, object]] = {
        role: {"hosts": {f"{role}-good": local_host(GOOD)}} for role in ROLES
    }
    for name, (role, variables, _) in BAD_CASES.items():
        groups[role]["hosts"][name] = local_host(variables)  # type: ignore[index]
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(yaml.safe_dump({"all": {"children": groups}}))
    plays = [{"name": f"Validate the {role} role's variables", "hosts": role, "gather_facts": False,
              "roles": [{"role": role}]} for role in ROLES]
    playbook = tmp_path / "bad.yml"
    playbook.write_text(yaml.safe_dump(plays, sort_keys=False))
    progress = Progress(stream=io.StringIO())
    # Only the validation and the preflight asserts run (--tags preflight; validation is tagged always).
    result = run_playbook(playbook, inventory=inventory, ansible_dir=ANSIBLE_DIR, check=True, tags=["preflight"],
                          progress=progress, timeout=600)
    failures = {f.host: f.message for f in result.failures}
    for host, (_, _, expected) in BAD_CASES.items():
        assert host in failures, f"{host} did not fail"
        assert expected in failures[host], f"{host}: {failures[host]!r}"
    for role in ROLES:
        assert f"{role}-good" not in failures, failures.get(f"{role}-good")
        assert result.stats["ok"].get(f"{role}-good", 0) >= 2, role
