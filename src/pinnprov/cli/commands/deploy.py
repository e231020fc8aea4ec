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
from pathlib import Path
from typing import Any

from pinnprov.deploy.deployment import parse_extra_vars, run_deploy

__all__ = ["parse_extra_vars", "register"]


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
