"""The Ansible content is lint-clean (yamllint, ansible-lint's production profile) and every playbook parses."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ANSIBLE_DIR = Path(__file__).resolve().parents[2] / "ansible"
BIN = Path(sys.executable).parent
PLAYBOOKS = sorted(str(path.relative_to(ANSIBLE_DIR)) for path in [*ANSIBLE_DIR.glob("*.yml"),
                                                                   *(ANSIBLE_DIR / "tests").glob("*.yml")])
ROLES = ("monetdb", "elasticsearch", "kibana", "collector", "dask_scheduler", "dask_tls", "trainer",
         "pinnprov_venv")


def run(command: list[str], timeout: int = 600) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ANSIBLE_CONFIG": str(ANSIBLE_DIR / "ansible.cfg"), "NO_COLOR": "1",
           "PATH": os.pathsep.join([str(BIN), os.environ.get("PATH", "")])}
    return subprocess.run(command, cwd=ANSIBLE_DIR, env=env, capture_output=True, text=True, timeout=timeout,
                          check=False)


def test_playbooks_are_the_expected_ones() -> None:
    assert {"site.yml", "teardown.yml"} <= set(PLAYBOOKS)


def test_yamllint_is_clean() -> None:
    result = run([str(BIN / "yamllint"), "--strict", "."])
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow
def test_ansible_lint_production_profile_is_clean() -> None:
    result = run([str(BIN / "ansible-lint"), "--profile", "production", "--nocolor"], timeout=900)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert "Profile 'production' was required, and it passed" in result.stderr + result.stdout


@pytest.mark.parametrize("playbook", PLAYBOOKS)
def test_playbook_syntax(playbook: str) -> None:
    result = run([str(BIN / "ansible-playbook"), "--syntax-check", "-i", "inventories/example/hosts.yml", playbook])
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("role", ROLES)
def test_every_role_has_documented_defaults_an_argument_spec_and_meta(role: str) -> None:
    import yaml

    root = ANSIBLE_DIR / "roles" / role
    defaults = yaml.safe_load((root / "defaults" / "main.yml").read_text()) or {}
    specs = yaml.safe_load((root / "meta" / "argument_specs.yml").read_text())["argument_specs"]
    options = specs["main"]["options"]
    assert all(name.startswith(f"{role}_") for name in defaults), "public variables carry the role's prefix"
    documented = set(options) | set(specs.get("teardown", {}).get("options", {}))
    assert set(defaults) <= documented, f"undocumented in argument_specs: {set(defaults) - documented}"
    assert all(option.get("description") for option in options.values())
    assert (root / "meta" / "main.yml").is_file()


def test_task_names_are_sentences_and_modules_fully_qualified() -> None:
    import yaml

    for path in sorted((ANSIBLE_DIR / "roles").glob("*/tasks/*.yml")) + sorted((ANSIBLE_DIR / "roles").glob(
            "*/handlers/*.yml")):
        tasks = yaml.safe_load(path.read_text()) or []
        stack = list(tasks)
        while stack:
            task = stack.pop()
            stack.extend(task.get("block", []) + task.get("always", []) + task.get("rescue", []))
            name = task.get("name", "")
            assert name and name[0].isupper(), f"{path.name}: task without a sentence name: {task}"
            modules = [key for key in task if key.startswith("ansible.")]
            if "block" not in task:
                assert modules and all(key.startswith("ansible.builtin.") for key in modules), f"{path}: {name}"
