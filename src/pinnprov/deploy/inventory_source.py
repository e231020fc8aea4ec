"""Where `pinnprov deploy` gets its hosts: an inventory file, an OAR reservation, or EnOSlib's Grid5000 job.

The placement (services on the first CPU node, a trainer on every GPU node) and the rendered inventory come
from deploy/inventory.py; the Grid5000 request and plan from deploy/g5k_plan.py and deploy/g5k_run.py.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any


def generated_inventory(args: argparse.Namespace) -> tuple[Path, Any, Any]:
    """Write the inventory of an OAR reservation; returns its path, the placement and the connection options."""
    from pinnprov.deploy.inventory import ConnectionOptions, placement_from_oar

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
    from pinnprov.deploy.inventory import render_inventory

    text = render_inventory(placement, options)
    if args.show_inventory:
        print(text, end="")
    out = args.inventory_out or _default_inventory_path()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    return out, placement, options


def g5k_request(args: argparse.Namespace) -> Any:
    """The G5kRequest of `pinnprov deploy g5k` flags (one clear error per bad flag)."""
    from pinnprov.deploy.g5k_plan import G5kRequest, check_request

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
    from pinnprov.deploy.g5k_run import plan, reserve_and_deploy

    request = g5k_request(args)
    configuration = plan(request, gpu_cluster=(args.gpu_cluster or [""])[0], cpu_cluster=args.cpu_cluster or "",
                         echo=lambda line: print(line, file=sys.stderr))
    return reserve_and_deploy(configuration)


def show_g5k_plan(args: argparse.Namespace) -> int:
    """--show-plan: EnOSlib's configuration as JSON, from named clusters only (no testbed call)."""
    from pinnprov.deploy.g5k_plan import provider_configuration

    request = g5k_request(args)
    if not args.gpu_cluster or not args.cpu_cluster:
        raise ValueError("--show-plan: give --gpu-cluster and --cpu-cluster (choosing them asks the reference API)")
    print(json.dumps(provider_configuration(request, args.gpu_cluster[0], args.cpu_cluster), indent=2))
    return 0


def _default_inventory_path() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    job = os.environ.get("OAR_JOB_ID") or "manual"
    return Path(base) / "pinnprov" / f"inventory-oar-{job}.yml"


def hosts_of(inventory: Path) -> tuple[str, tuple[str, ...]]:
    """(services host, trainers) of an inventory file, read with Ansible's own inventory parser."""
    from ansible.inventory.manager import InventoryManager
    from ansible.parsing.dataloader import DataLoader

    manager = InventoryManager(loader=DataLoader(), sources=[str(inventory)])
    collector = [host.name for host in manager.get_hosts("collector")]
    if not collector:
        raise ValueError(f"{inventory}: no host in group collector (see ansible/inventories/example/hosts.yml)")
    trainers = tuple(host.name for host in manager.get_hosts("trainers"))
    return collector[0], trainers
