"""`pinnprov deploy`: bring the pinnprov stack up on Grid5000 (or any Debian hosts) with the Ansible playbooks.

  pinnprov deploy                                   inside an OAR job: hosts from $OAR_NODEFILE
  pinnprov deploy --oar-nodefile FILE --gpu-nodes 'chifflot-*'
  pinnprov deploy --inventory hosts.yml --tags collector,trainer --limit chifflot-1.lille.grid5000.fr
  pinnprov deploy --check                           dry run: what would change
  pinnprov deploy --teardown [--purge]              stop everything (--purge also deletes data)

Placement: MonetDB, Elasticsearch, Kibana and the collector on the first CPU node, a trainer on every GPU node.
An OAR node file cannot say which nodes have GPUs; they are known from $OAR_RESOURCE_PROPERTIES_FILE
(--oar-resources), Grid5000 REST API or oarnodes JSON (--nodes-json), --gpu-nodes patterns, or the cluster
name (a list of Grid5000 GPU clusters, extended with --gpu-cluster). Secrets come from the environment
(PINNPROV_*_PASSWORD, PINNPROV_KIBANA_ENCRYPTION_KEY, PINNPROV_COLLECTOR_TOKEN) or a 0600 secrets file generated
on first use (--secrets). Exit status: 0 deployed, 1 a task failed, 2 bad arguments.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path
from typing import Any


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("deploy", help="deploy the stack to Grid5000 with Ansible",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    hosts = parser.add_argument_group("hosts")
    source = hosts.add_mutually_exclusive_group()
    source.add_argument("-i", "--inventory", type=Path, metavar="FILE", help="an Ansible inventory with the groups "
                        "monetdb, elasticsearch, kibana, collector, trainers (see ansible/inventories/example)")
    source.add_argument("--oar-nodefile", type=Path, metavar="FILE", help="OAR node file (default $OAR_NODEFILE)")
    hosts.add_argument("--oar-resources", type=Path, metavar="FILE",
                       help="OAR resource properties, for gpu_count (default $OAR_RESOURCE_PROPERTIES_FILE)")
    hosts.add_argument("--nodes-json", type=Path, metavar="FILE",
                       help="Grid5000 REST API nodes or oarnodes -J output, for GPU facts")
    hosts.add_argument("--gpu-nodes", action="append", default=[], metavar="PATTERN",
                       help="glob of GPU hosts, e.g. 'chifflot-*' (repeatable)")
    hosts.add_argument("--gpu-cluster", action="append", default=[], metavar="NAME",
                       help="a cluster with GPUs besides the known ones (repeatable)")
    hosts.add_argument("--services-host", metavar="HOST", help="host of the services (default: first CPU node)")
    hosts.add_argument("--user", default="root", help="SSH user (default root, as after kadeploy3 -k)")
    hosts.add_argument("--sudo-g5k", action="store_true",
                       help="become root with sudo-g5k (Grid5000 standard environment, --user LOGIN)")
    hosts.add_argument("--proxy-jump", metavar="LOGIN@access.grid5000.fr",
                       help="SSH through the access gateway (deploying from outside Grid5000)")
    hosts.add_argument("--inventory-out", type=Path, metavar="FILE", help="where to write the generated inventory")
    hosts.add_argument("--show-inventory", action="store_true", help="print the generated inventory and exit")
    run = parser.add_argument_group("run")
    run.add_argument("--check", action="store_true", help="dry run (ansible --check): report what would change")
    run.add_argument("--tags", default="", metavar="T1,T2", help="only these roles: monetdb, elasticsearch, kibana, "
                     "collector, trainer, preflight")
    run.add_argument("--skip-tags", default="", metavar="T1,T2", help="skip these roles")
    run.add_argument("--limit", metavar="PATTERN", help="only these hosts (Ansible pattern)")
    run.add_argument("--teardown", action="store_true", help="run teardown.yml instead of site.yml")
    run.add_argument("--purge", action="store_true", help="with --teardown: also delete data and installations")
    package = run.add_mutually_exclusive_group()
    package.add_argument("--wheel", type=Path, metavar="FILE", help="install this pinnprov wheel (default: built "
                         "from this checkout)")
    package.add_argument("--package", metavar="SPEC", help="install this pip requirement instead of a wheel")
    run.add_argument("-e", "--extra-var", action="append", default=[], metavar="NAME=VALUE",
                     help="set a playbook variable (VALUE as JSON, else a string), e.g. "
                     "-e 'trainer_common_config={\"epochs\": 50000}'; never a secret (command lines are public)")
    run.add_argument("--secrets", type=Path, metavar="FILE", help="secrets file (default "
                     "~/.config/deploy-secrets.env; created with random values when missing)")
    run.add_argument("--vault-password-file", type=Path, metavar="FILE", help="for group_vars/all/vault.yml")
    run.add_argument("--ansible-dir", type=Path, metavar="DIR", help="pinnprov's ansible/ folder "
                     "(default $PINNPROV_ANSIBLE_DIR, else the checkout's)")
    run.add_argument("--show-skipped", action="store_true", help="also print skipped tasks")
    parser.set_defaults(handler=run_deploy)


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


def _generated_inventory(args: argparse.Namespace) -> tuple[Path, Any, Any]:
    """Write the inventory of an OAR reservation; returns its path, the placement and the connection options."""
    from deploy.inventory import ConnectionOptions, placement_from_oar, render_inventory

    nodefile = args.oar_nodefile
    resources = args.oar_resources
    if nodefile is None:
        env_nodefile = os.environ.get("OAR_NODEFILE") or os.environ.get("OAR_FILE_NODES")
        if not env_nodefile:
            raise ValueError("no hosts: give --inventory FILE or --oar-nodefile FILE, or run inside an OAR job "
                             "($OAR_NODEFILE)")
        nodefile = Path(env_nodefile)
        # The job's own properties file describes the same nodes; an explicit node file may be another job's.
        if resources is None and os.environ.get("OAR_RESOURCE_PROPERTIES_FILE"):
            resources = Path(os.environ["OAR_RESOURCE_PROPERTIES_FILE"])
    placement = placement_from_oar(nodefile, resource_properties=resources, nodes_json=args.nodes_json,
                                   gpu_patterns=args.gpu_nodes, extra_gpu_clusters=args.gpu_cluster,
                                   services_host=args.services_host)
    options = ConnectionOptions(remote_user=args.user, become_exe="sudo-g5k" if args.sudo_g5k else "",
                                proxy_jump=args.proxy_jump or "")
    text = render_inventory(placement, options)
    if args.show_inventory:
        print(text, end="")
    out = args.inventory_out or _default_inventory_path()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    return out, placement, options


def _default_inventory_path() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    job = os.environ.get("OAR_JOB_ID") or "manual"
    return Path(base) / "pinnprov" / f"inventory-oar-{job}.yml"


def _hosts_of(inventory: Path) -> tuple[str, tuple[str, ...]]:
    """(services host, trainers) of an inventory file, read with Ansible's own inventory parser."""
    from ansible.inventory.manager import InventoryManager
    from ansible.parsing.dataloader import DataLoader

    manager = InventoryManager(loader=DataLoader(), sources=[str(inventory)])
    collector = [host.name for host in manager.get_hosts("collector")]
    if not collector:
        raise ValueError(f"{inventory}: no host in group collector (see ansible/inventories/example/hosts.yml)")
    trainers = tuple(host.name for host in manager.get_hosts("trainers"))
    return collector[0], trainers


def run_deploy(args: argparse.Namespace) -> int:
    from deploy.progress import Progress
    from deploy.runner import find_ansible_dir, run_playbook
    from deploy.summary import Stack, summary_lines

    if args.purge and not args.teardown:
        raise ValueError("--purge only goes with --teardown")
    ansible_dir = find_ansible_dir(args.ansible_dir)
    proxy_jump, user = args.proxy_jump or "", args.user
    if args.inventory is not None:
        if not args.inventory.exists():
            raise FileNotFoundError(f"--inventory {args.inventory}: no such file")
        inventory = args.inventory
    else:
        inventory, placement, _ = _generated_inventory(args)
        for node in placement.nodes:
            role = "services" if node.host == placement.services else "trainer" if node.has_gpu else "unused"
            print(f"  {role:<8} {node.host} ({node.reason})", file=sys.stderr)
        print(f"inventory: {inventory}", file=sys.stderr)
        if args.show_inventory:
            return 0
    services, trainers = _hosts_of(inventory)

    extravars: dict[str, Any] = parse_extra_vars(args.extra_var)
    envvars: dict[str, str] = {}
    secrets_file: Path | None = None
    generated: list[str] = []
    if args.teardown:
        playbook = "teardown.yml"
        extravars["pinnprov_purge"] = bool(args.purge)
    else:
        from deploy.secrets import default_secrets_file, resolve_secrets

        playbook = "site.yml"
        secrets_file = args.secrets or default_secrets_file()
        envvars, generated = resolve_secrets(secrets_file)  # to the environment: never on a command line
        if args.package:
            extravars["pinnprov_package"] = args.package
        else:
            from deploy.wheel import build_wheel

            wheel = args.wheel if args.wheel is not None else build_wheel()
            if not wheel.is_file():
                raise FileNotFoundError(f"--wheel {wheel}: no such file")
            extravars["pinnprov_wheel"] = str(wheel.resolve())
            print(f"wheel: {wheel}", file=sys.stderr)

    progress = Progress(show_skipped=args.show_skipped)
    result = run_playbook(playbook, inventory=inventory, ansible_dir=ansible_dir, extravars=extravars,
                          check=args.check, tags=_split(args.tags), skip_tags=_split(args.skip_tags),
                          limit=args.limit, vault_password_file=args.vault_password_file, envvars=envvars,
                          progress=progress)
    for line in progress.recap():
        print(line)
    if not result.ok:
        if result.error:
            print(f"pinnprov deploy: ansible: {result.error}", file=sys.stderr)
        for failure in result.failures:
            print(f"pinnprov deploy: failed on {failure.host}: {failure.task}: {failure.message}", file=sys.stderr)
        if not result.error and not result.failures:
            print(f"pinnprov deploy: {playbook} ended with status {result.status} (rc {result.rc})", file=sys.stderr)
        return 1
    if args.check:
        print(f"check mode: {result.changed()} task(s) would change something; nothing was changed")
        return 0
    if not args.teardown:
        stack = Stack(services=services, trainers=trainers, user=user, proxy_jump=proxy_jump,
                      secrets_file=secrets_file if generated or not all(
                          os.environ.get(name) for name in envvars) else None,
                      generated=tuple(generated))
        for line in summary_lines(stack):
            print(line)
    return 0
