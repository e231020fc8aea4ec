"""One `pinnprov deploy`: hosts, playbook inputs (secrets, wheel, TLS material), the playbooks, the report.

Split by step so each can be read alone: `_inventory` (where the hosts come from, pinnprov/deploy/inventory_source.py),
`_playbook_inputs` (site or teardown, extra variables, secrets to the environment, the wheel to install),
`_controller_steps` (the Dask certificates made here, sudo-g5k's root grant), then the playbook and its report.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pinnprov.deploy.inventory_source import generated_inventory, hosts_of, show_g5k_plan


def _split(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


_SECRET_NAME = re.compile(r"password|token|secret|encryption_key|api_key", re.IGNORECASE)
_VAR_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def parse_extra_vars(items: list[str]) -> dict[str, Any]:
    """NAME=VALUE pairs; VALUE is JSON when it parses, else a plain string. Secrets are refused by name."""
    result: dict[str, Any] = {}
    for item in items:
        name, sep, raw = item.partition("=")
        if not sep or not _VAR_NAME.match(name):
            raise ValueError(f"--extra-var {item!r}: expected NAME=VALUE")
        if _SECRET_NAME.search(name):
            raise ValueError(f"--extra-var {name}: secrets go in the environment or the secrets file, not on the "
                             "command line (other users can read it)")
        try:
            result[name] = json.loads(raw)
        except json.JSONDecodeError:
            result[name] = raw
    return result


@dataclass
class PlaybookInputs:
    """What the main playbook runs with: its name, extra variables, environment (secrets), the secrets file."""

    playbook: str
    extravars: dict[str, Any]
    envvars: dict[str, str] = field(default_factory=dict)
    secrets_file: Path | None = None
    generated: list[str] = field(default_factory=list)


def _check_flags(args: argparse.Namespace) -> None:
    if args.purge and not args.teardown:
        raise ValueError("--purge only goes with --teardown")
    if args.target != "g5k" and (args.site or args.job_id is not None or args.show_plan):
        raise ValueError("--site/--job-id/--show-plan: only with `pinnprov deploy g5k`")


def _inventory(args: argparse.Namespace) -> Path | None:
    """The inventory to run on (None: only show the generated one); placement lines go to stderr."""
    if args.inventory is not None:
        if not args.inventory.exists():
            raise FileNotFoundError(f"--inventory {args.inventory}: no such file")
        return Path(args.inventory)
    inventory, placement, _ = generated_inventory(args)
    for node in placement.nodes:
        role = "services" if node.host == placement.services else "trainer" if node.has_gpu else "unused"
        print(f"  {role:<8} {node.host} ({node.reason})", file=sys.stderr)
    print(f"inventory: {inventory}", file=sys.stderr)
    return None if args.show_inventory else inventory


def _playbook_inputs(args: argparse.Namespace) -> PlaybookInputs:
    extravars: dict[str, Any] = parse_extra_vars(args.extra_var)
    if args.teardown:
        extravars["pinnprov_purge"] = bool(args.purge)
        return PlaybookInputs("teardown.yml", extravars)
    from pinnprov.deploy.secrets import default_secrets_file, resolve_secrets

    secrets_file = args.secrets or default_secrets_file()
    envvars, generated = resolve_secrets(secrets_file)  # to the environment: never on a command line
    # The Dask CA and certificates live beside the secrets (the client certificate is for `pinnprov sweep`).
    extravars.setdefault("pinnprov_dask_tls_dir", str(secrets_file.parent / "dask-tls"))
    if args.package:
        extravars["pinnprov_package"] = args.package
    else:
        from pinnprov.deploy.wheel import build_wheel

        wheel = args.wheel if args.wheel is not None else build_wheel()
        if not wheel.is_file():
            raise FileNotFoundError(f"--wheel {wheel}: no such file")
        extravars["pinnprov_wheel"] = str(wheel.resolve())
        print(f"wheel: {wheel}", file=sys.stderr)
    return PlaybookInputs("site.yml", extravars, envvars, secrets_file, list(generated))


def _controller_steps(args: argparse.Namespace, inventory: Path, ansible_dir: Path, inputs: PlaybookInputs,
                      progress: Any) -> bool:
    """The Dask certificates (made on this machine, like the secrets) and sudo-g5k's root grant; False on failure."""
    from pinnprov.deploy.progress import Progress
    from pinnprov.deploy.runner import run_playbook

    if not args.teardown:
        tls_dir = inputs.extravars["pinnprov_dask_tls_dir"]
        tls = run_playbook("dask_tls.yml", inventory=inventory, ansible_dir=ansible_dir,
                           extravars={"pinnprov_dask_tls_dir": tls_dir}, progress=Progress(stream=io.StringIO()))
        if not tls.ok:
            print(f"pinnprov deploy: could not create the Dask certificates in {tls_dir}: "
                  f"{tls.error or '; '.join(f.message for f in tls.failures)}", file=sys.stderr)
            return False
    if args.sudo_g5k and not args.check:
        granted = run_playbook("grant_root_g5k.yml", inventory=inventory, ansible_dir=ansible_dir,
                               extravars={"ansible_user": args.user}, limit=args.limit, progress=progress)
        if not granted.ok:
            print("pinnprov deploy: sudo-g5k could not authorise your key for root (is this the standard "
                  "environment, and --user your login?)", file=sys.stderr)
            return False
    return True


def _report_failure(playbook: str, result: Any) -> None:
    if result.error:
        print(f"pinnprov deploy: ansible: {result.error}", file=sys.stderr)
    for failure in result.failures:
        print(f"pinnprov deploy: failed on {failure.host}: {failure.task}: {failure.message}", file=sys.stderr)
    if not result.error and not result.failures:
        print(f"pinnprov deploy: {playbook} ended with status {result.status} (rc {result.rc})", file=sys.stderr)


def run_deploy(args: argparse.Namespace) -> int:
    """Deploy (or tear down) the stack; exit status 0 deployed, 1 a task failed (bad flags raise ValueError)."""
    from pinnprov.deploy.progress import Progress
    from pinnprov.deploy.runner import find_ansible_dir, run_playbook
    from pinnprov.deploy.summary import Stack, summary_lines

    _check_flags(args)
    if args.target == "g5k" and args.show_plan:
        return show_g5k_plan(args)
    ansible_dir = find_ansible_dir(args.ansible_dir)
    inventory = _inventory(args)
    if inventory is None:
        return 0
    services, trainers = hosts_of(inventory)
    inputs = _playbook_inputs(args)
    progress = Progress(show_skipped=args.show_skipped)
    if not _controller_steps(args, inventory, ansible_dir, inputs, progress):
        return 1
    result = run_playbook(inputs.playbook, inventory=inventory, ansible_dir=ansible_dir, extravars=inputs.extravars,
                          check=args.check, tags=_split(args.tags), skip_tags=_split(args.skip_tags),
                          limit=args.limit, vault_password_file=args.vault_password_file, envvars=inputs.envvars,
                          progress=progress)
    for line in progress.recap():
        print(line)
    if not result.ok:
        _report_failure(inputs.playbook, result)
        return 1
    if args.check:
        print(f"check mode: {result.changed()} task(s) would change something; nothing was changed")
        return 0
    if not args.teardown:
        stack = Stack(services=services, trainers=trainers, user=args.user, proxy_jump=args.proxy_jump or "",
                      dask_tls_dir=str(inputs.extravars.get("pinnprov_dask_tls_dir", "~/.config/pinnprov/dask-tls")),
                      secrets_file=inputs.secrets_file if inputs.generated or not all(
                          os.environ.get(name) for name in inputs.envvars) else None,
                      generated=tuple(inputs.generated))
        for line in summary_lines(stack):
            print(line)
    return 0
