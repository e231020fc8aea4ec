"""Run the playbooks of `ansible/` through ansible-runner's Python API.

Why ansible-runner rather than a subprocess of ansible-playbook: it gives us structured events (host, task,
result) to print one readable line per task, and the final per-host stats, without parsing Ansible's text.

Secrets never travel as extra vars: ansible-runner puts extra vars on the ansible-playbook command line, which
other users of a shared Grid5000 frontend can read with `ps`. The playbooks read secrets from the environment
(`lookup('ansible.builtin.env', ...)`) or from ansible-vault files, and this process's environment is inherited.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pinnprov.core.settings import resolve
from pinnprov.deploy.progress import Progress, TaskResult

PLAYBOOKS = ("site.yml", "teardown.yml")
ANSIBLE_DIR_ENV = "PINNPROV_ANSIBLE_DIR"


@dataclass(frozen=True)
class PlaybookRun:
    """What a playbook run did: runner's status and rc, per-host stats and the failed tasks."""

    status: str  # successful | failed | timeout | canceled
    rc: int
    stats: dict[str, dict[str, int]] = field(default_factory=dict)
    failures: tuple[TaskResult, ...] = ()
    error: str = ""  # Ansible's own error (bad inventory, syntax error) when no task failed

    @property
    def ok(self) -> bool:
        return self.status == "successful" and self.rc == 0

    def changed(self) -> int:
        return sum(self.stats.get("changed", {}).values())


def find_ansible_dir(explicit: str | Path | None = None) -> Path:
    """The `ansible/` folder: --ansible-dir, then $PINNPROV_ANSIBLE_DIR, then the one beside this checkout."""
    default = Path(__file__).resolve().parents[3] / "ansible"  # <root>/src/pinnprov/deploy/runner.py
    directory = resolve("ansible_dir", None if explicit is None else str(explicit), ANSIBLE_DIR_ENV, str(default), str)
    path = Path(directory).expanduser().resolve()
    if not (path / "site.yml").is_file():
        raise FileNotFoundError(
            f"{path}: no site.yml here; pass --ansible-dir or set PINNPROV_ANSIBLE_DIR to pinnprov's ansible/ folder"
        )
    return path


def _environment(ansible_dir: Path, extra: Mapping[str, str] | None) -> dict[str, str]:
    # ansible-playbook must be the one of this interpreter's environment even when the venv is not activated.
    bin_dir = str(Path(sys.executable).parent)
    env = {
        "ANSIBLE_CONFIG": str(ansible_dir / "ansible.cfg"),
        "PATH": os.pathsep.join([bin_dir, os.environ.get("PATH", "")]),
        "ANSIBLE_FORCE_COLOR": "0",
        "ANSIBLE_NOCOLOR": "1",
    }
    env.update(extra or {})
    return env


def run_playbook(
    playbook: str | Path,
    *,
    inventory: str | Path,
    ansible_dir: str | Path | None = None,
    extravars: Mapping[str, Any] | None = None,
    check: bool = False,
    tags: Sequence[str] = (),
    skip_tags: Sequence[str] = (),
    limit: str | None = None,
    vault_password_file: str | Path | None = None,
    envvars: Mapping[str, str] | None = None,
    progress: Progress | None = None,
    timeout: int | None = None,
) -> PlaybookRun:
    """Run one playbook; stream progress lines; return its outcome (never raises for a failed task)."""
    import ansible_runner  # heavy import: only when deploying

    directory = find_ansible_dir(ansible_dir)
    playbook_path = Path(playbook) if Path(playbook).is_absolute() else directory / playbook
    if not playbook_path.is_file():
        raise FileNotFoundError(f"{playbook_path}: no such playbook")
    inventory_path = Path(inventory).expanduser().resolve()
    if not inventory_path.exists():
        raise FileNotFoundError(f"{inventory_path}: no such inventory")
    cmdline: list[str] = []
    if check:
        cmdline.append("--check")
    if vault_password_file is not None:
        vault_file = Path(vault_password_file).expanduser().resolve()
        if not vault_file.is_file():
            raise FileNotFoundError(f"{vault_file}: no such vault password file")
        cmdline += ["--vault-password-file", str(vault_file)]
    progress = progress if progress is not None else Progress()
    # Runner writes its artifacts (job events, stdout) here; they may hold task output, so they go away with it.
    with tempfile.TemporaryDirectory(prefix="pinnprov-deploy-") as private_dir:
        runner = ansible_runner.run(
            private_data_dir=private_dir,
            project_dir=str(directory),
            playbook=str(playbook_path),
            inventory=str(inventory_path),
            extravars=dict(extravars or {}),
            cmdline=" ".join(cmdline) or None,
            tags=",".join(tags) or None,
            skip_tags=",".join(skip_tags) or None,
            limit=limit,
            envvars=_environment(directory, envvars),
            event_handler=progress,
            quiet=True,
            suppress_env_files=True,
            timeout=timeout,
        )
        status, rc = str(runner.status), int(runner.rc if runner.rc is not None else 1)
        error = ""
        if (status != "successful" or rc != 0) and not progress.failures:
            error = _ansible_error(runner)
    return PlaybookRun(status=status, rc=rc, stats=progress.stats, failures=tuple(progress.failures), error=error)


def _ansible_error(runner: Any) -> str:
    """The ERROR lines ansible-playbook printed before any task ran (or its last line)."""
    try:
        text = runner.stdout.read()
    except (OSError, AttributeError):
        return ""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith(("ERROR", "[ERROR]"))]
    return (errors[0] if errors else lines[-1] if lines else "")[:500]
