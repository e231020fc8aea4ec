"""The Ansible roles install the Elasticsearch client of the deployed stack's major: the same requirements
as pinnprov's extras es8 / es9, for the collector (its pinnprov extra) and for Kibana's content loading."""

from __future__ import annotations

import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
ROLES = ROOT / "ansible" / "roles"


def test_kibana_role_installs_exactly_the_extras_requirements() -> None:
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    table = yaml.safe_load((ROLES / "kibana" / "vars" / "main.yml").read_text())
    assert table["kibana_elasticsearch_client_requirements"] == {8: extras["es8"], 9: extras["es9"]}


def test_collector_role_installs_the_extra_of_the_elasticsearch_major() -> None:
    defaults = yaml.safe_load((ROLES / "collector" / "defaults" / "main.yml").read_text())
    assert "'es' ~ collector_elasticsearch_major_version" in defaults["collector_extras"]
    install = yaml.safe_load((ROLES / "collector" / "tasks" / "install.yml").read_text())
    venv = next(task for task in install if task.get("ansible.builtin.include_role", {}).get("name") == "pinnprov_venv")
    assert venv["vars"]["pinnprov_venv_extras"] == "{{ collector_extras }}"
    site = (ROOT / "ansible" / "site.yml").read_text()
    assert "collector_elasticsearch_major_version: >-" in site and "kibana_major_version: >-" in site
    es_vars = yaml.safe_load((ROLES / "elasticsearch" / "vars" / "main.yml").read_text())
    assert es_vars["elasticsearch_python_extra"] == "es{{ elasticsearch_major_version }}"
