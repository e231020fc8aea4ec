"""`pinnprov deploy`: bring the pinnprov stack up on Grid5000 (or any Debian hosts) with the Ansible playbooks.

  pinnprov deploy                                   inside an OAR job: hosts from $OAR_NODEFILE
  pinnprov deploy --oar-nodefile FILE --gpu-nodes 'chifflot-*'
  pinnprov deploy --inventory hosts.yml --tags collector,trainer --limit chifflot-1.lille.grid5000.fr
  pinnprov deploy --check                           dry run: what would change
  pinnprov deploy --teardown [--purge]              stop everything (--purge also deletes data)
  pinnprov deploy g5k --site lille --gpu-nodes 2 --walltime 2:00     reserve, deploy debian12-x64-big, run site.yml
  pinnprov deploy g5k --site lille --job-id 123456 ...               the same in an existing deploy job

`deploy g5k` (needs the `g5k` extra: EnOSlib, in its own venv) reserves one CPU node and --gpu-nodes nodes of an
NVIDIA cluster (compute capability >= 6, x86_64, chosen from the reference API unless --gpu-cluster names one),
deploys debian12-x64-big on them with kadeploy and connects as root. --show-plan prints EnOSlib's configuration
without calling the testbed (give --gpu-cluster and --cpu-cluster).

Placement: MonetDB, Elasticsearch, Kibana and the collector on the first CPU node, a trainer on every GPU node.
An OAR node file cannot say which nodes have GPUs; they are known from $OAR_RESOURCE_PROPERTIES_FILE
(--oar-resources), Grid5000 REST API or oarnodes JSON (--nodes-json), --gpu-nodes patterns, or the cluster
name (a list of Grid5000 GPU clusters, extended with --gpu-cluster). Secrets come from the environment
(PINNPROV_*_PASSWORD, PINNPROV_KIBANA_ENCRYPTION_KEY, PINNPROV_COLLECTOR_TOKEN) or a 0600 secrets file generated
on first use (--secrets). Exit status: 0 deployed, 1 a task failed, 2 bad arguments.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import sys
from pathlib import Path
from typing import Any


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("deploy", help="deploy the stack to Grid5000 with Ansible",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("target", nargs="?", choices=("g5k",), help="g5k: reserve and deploy with EnOSlib first")
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
                       help="glob of GPU hosts, e.g. 'chifflot-*' (repeatable); with g5k: how many GPU nodes")
    hosts.add_argument("--gpu-cluster", action="append", default=[], metavar="NAME",
                       help="a cluster with GPUs besides the known ones (repeatable); with g5k: the one to reserve")
    hosts.add_argument("--services-host", metavar="HOST", help="host of the services (default: first CPU node)")
    hosts.add_argument("--user", default="root", help="SSH user (default root, as after kadeploy3 -k)")
    hosts.add_argument("--sudo-g5k", action="store_true",
                       help="standard environment: run sudo-g5k once per node to authorise your key for root, then "
                       "connect as root (--user LOGIN); its Python 3.9 is refused by the roles, see README")
    hosts.add_argument("--proxy-jump", metavar="LOGIN@access.grid5000.fr",
                       help="SSH through the access gateway (deploying from outside Grid5000)")
    hosts.add_argument("--inventory-out", type=Path, metavar="FILE", help="where to write the generated inventory")
    hosts.add_argument("--show-inventory", action="store_true", help="print the generated inventory and exit")
    g5k = parser.add_argument_group("Grid5000 with EnOSlib (pinnprov deploy g5k)")
    g5k.add_argument("--site", help="Grid5000 site, e.g. lille")
    g5k.add_argument("--walltime", default="2:00", metavar="H:MM", help="reservation length (default 2:00)")
    g5k.add_argument("--job-id", type=int, metavar="N", help="reuse this OAR job (type deploy) instead of reserving")
    g5k.add_argument("--queue", default="default", choices=("default", "production"), help="OAR queue")
    g5k.add_argument("--exotic", action="store_true", help="allow exotic clusters (oarsub -t exotic)")
    g5k.add_argument("--cpu-cluster", metavar="NAME", help="cluster of the services node (default: from the API)")
    g5k.add_argument("--environment", default="debian12-x64-big", metavar="ENV", help="kadeploy environment")
    g5k.add_argument("--show-plan", action="store_true", help="print the EnOSlib configuration and exit")
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
                     "-e 'trainer_environment={\"TF_FORCE_GPU_ALLOW_GROWTH\": \"true\"}'; never a secret "
                     "(command lines are public)")
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
    from deploy.inventory import ConnectionOptions, placement_from_oar

    if args.target == "g5k":  # EnOSlib deployed the nodes: root over SSH with your key
        return _write_inventory(args, _g5k_placement(args), ConnectionOptions(proxy_jump=args.proxy_jump or ""))
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
    # --sudo-g5k: the grant-root playbook authorised your key for root (sudo-g5k once); then root over SSH.
    options = ConnectionOptions(remote_user="root" if args.sudo_g5k else args.user, proxy_jump=args.proxy_jump or "")
    return _write_inventory(args, placement, options)


def _write_inventory(args: argparse.Namespace, placement: Any, options: Any) -> tuple[Path, Any, Any]:
    from deploy.inventory import render_inventory

    text = render_inventory(placement, options)
    if args.show_inventory:
        print(text, end="")
    out = args.inventory_out or _default_inventory_path()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    return out, placement, options


def g5k_request(args: argparse.Namespace) -> Any:
    """The G5kRequest of `pinnprov deploy g5k` flags (one clear error per bad flag)."""
    from deploy.g5k_plan import G5kRequest, check_request

    if not args.site:
        raise ValueError("--site: required with g5k (e.g. --site lille)")
    if args.inventory is not None or args.oar_nodefile is not None:
        raise ValueError("g5k: reserves its own nodes; drop --inventory/--oar-nodefile (or drop g5k)")
    if args.sudo_g5k:
        raise ValueError("--sudo-g5k: not with g5k (deployed nodes are reached as root)")
    counts = args.gpu_nodes or ["2"]
    if len(counts) != 1 or not counts[0].isdigit():
        raise ValueError(f"--gpu-nodes: with g5k, one number of GPU nodes (got {', '.join(counts)})")
    if len(args.gpu_cluster) > 1:
        raise ValueError("--gpu-cluster: with g5k, at most one cluster to reserve")
    request = G5kRequest(site=args.site, gpu_nodes=int(counts[0]), walltime=args.walltime, job_id=args.job_id,
                         queue=args.queue, exotic=args.exotic, environment=args.environment)
    check_request(request)
    return request


def _g5k_placement(args: argparse.Namespace) -> Any:  # pragma: no cover - testbed only
    from deploy.g5k_run import plan, reserve_and_deploy

    request = g5k_request(args)
    configuration = plan(request, gpu_cluster=(args.gpu_cluster or [""])[0], cpu_cluster=args.cpu_cluster or "",
                         echo=lambda line: print(line, file=sys.stderr))
    return reserve_and_deploy(configuration)


def show_g5k_plan(args: argparse.Namespace) -> int:
    """--show-plan: EnOSlib's configuration as JSON, from named clusters only (no testbed call)."""
    from deploy.g5k_plan import provider_configuration

    request = g5k_request(args)
    if not args.gpu_cluster or not args.cpu_cluster:
        raise ValueError("--show-plan: give --gpu-cluster and --cpu-cluster (choosing them asks the reference API)")
    print(json.dumps(provider_configuration(request, args.gpu_cluster[0], args.cpu_cluster), indent=2))
    return 0


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
    if args.target == "g5k" and args.show_plan:
        return show_g5k_plan(args)
    if args.target != "g5k" and (args.site or args.job_id is not None or args.show_plan):
        raise ValueError("--site/--job-id/--show-plan: only with `pinnprov deploy g5k`")
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
        # The Dask CA and certificates live beside the secrets (the client certificate is for `pinnprov sweep`).
        extravars.setdefault("pinnprov_dask_tls_dir", str(secrets_file.parent / "dask-tls"))
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
    if not args.teardown:  # controller state first, like the secrets: the CA and certificates of the Dask cluster
        tls = run_playbook("dask_tls.yml", inventory=inventory, ansible_dir=ansible_dir,
                           extravars={"pinnprov_dask_tls_dir": extravars["pinnprov_dask_tls_dir"]},
                           progress=Progress(stream=io.StringIO()))
        if not tls.ok:
            print(f"pinnprov deploy: could not create the Dask certificates in {extravars['pinnprov_dask_tls_dir']}: "
                  f"{tls.error or '; '.join(f.message for f in tls.failures)}", file=sys.stderr)
            return 1
    if args.sudo_g5k and not args.check:
        granted = run_playbook("grant_root_g5k.yml", inventory=inventory, ansible_dir=ansible_dir,
                               extravars={"ansible_user": user}, limit=args.limit, progress=progress)
        if not granted.ok:
            print("pinnprov deploy: sudo-g5k could not authorise your key for root (is this the standard "
                  "environment, and --user your login?)", file=sys.stderr)
            return 1
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
                      dask_tls_dir=str(extravars.get("pinnprov_dask_tls_dir", "~/.config/pinnprov/dask-tls")),
                      secrets_file=secrets_file if generated or not all(
                          os.environ.get(name) for name in envvars) else None,
                      generated=tuple(generated))
        for line in summary_lines(stack):
            print(line)
    return 0
