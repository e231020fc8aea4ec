"""Place an OAR reservation's hosts: services on the first CPU node, trainers on the GPU nodes.

Which hosts have GPUs? The OAR node file alone cannot say. In order of precedence we use:
1. facts from `$OAR_RESOURCE_PROPERTIES_FILE` or Grid5000 REST API / oarnodes JSON (`gpu_count`, `gpu_devices`);
2. `--gpu-nodes` glob patterns matched against the full or short host name (`chifflot-*`, `gemini-1`);
3. the cluster name (the part of `chifflot-1.lille.grid5000.fr` before `-1`) against a list of GPU clusters
   (`KNOWN_GPU_CLUSTERS`, a snapshot: extend it with `--gpu-cluster NAME` when Grid5000 adds hardware).
Anything else is a CPU node. The result is an Ansible YAML inventory with the groups the playbooks use:
`monetdb`, `elasticsearch`, `kibana`, `collector` (the services host) and `trainers`.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from pinnprov.deploy.oar import HostFacts, parse_nodefile, parse_nodes_json, parse_resource_properties

# Last resort only (OAR node files name hosts, not GPUs): Grid5000 clusters with NVIDIA GPUs of compute capability
# >= 6 on x86_64, derived from the reference API data of 2026-03-23 (deploy/g5k_reference.py derives it live, and
# `pinnprov deploy g5k` uses that). Default queue: chifflot, chuc (lille); exotic (-t exotic): gemini, sirius (lyon),
# grouille (nancy), ecotaxe (nantes); production queue (-q production): the rest. Left out: drac (ppc64le: no
# TensorFlow wheels), orion (Tesla M2075, 2.0), esterel3/4 (Maxwell, 5.2), AMD clusters, retired chifflet.
KNOWN_GPU_CLUSTERS: frozenset[str] = frozenset(
    {
        "chifflot", "chuc",  # lille
        "gemini", "sirius",  # lyon (exotic)
        "grouille", "graffiti", "grat", "gratouille", "grele", "gres", "grue", "gruss",  # nancy
        "ecotaxe",  # nantes (exotic)
        "kinovis", *(f"vercors{n}" for n in (2, 3, 4, 5, 7, 8, 9, 10, 11, 12, 13, 14, 16, 17, 18)),  # grenoble
        *(f"abacus{n}" for n in (1, 2, 3, 4, 5, 8, 9, 10, 11, 12, 14, 16, 17, 18, 19, 20, 21, 22, 25, 26, 27, 28,
                                 29)),  # rennes
        "musa", *(f"esterel{n}" for n in (*range(5, 18), *range(19, 45), 2)),  # sophia
    }
)  # fmt: skip

SERVICE_GROUPS = ("monetdb", "elasticsearch", "kibana", "collector")
TRAINER_GROUP = "trainers"
_NODE_NAME = re.compile(r"^(?P<cluster>[a-z][a-z0-9]*?)-(?P<index>\d+)$")


@dataclass(frozen=True)
class Node:
    """One reserved host and why we think it has (or has not) GPUs."""

    host: str
    cluster: str
    site: str
    has_gpu: bool
    reason: str  # e.g. "gpu_count=2 in $OAR_RESOURCE_PROPERTIES_FILE", "cluster chifflot is a GPU cluster"
    gpu_ids: tuple[int, ...] = ()


@dataclass(frozen=True)
class Placement:
    services: str
    trainers: tuple[str, ...]
    nodes: tuple[Node, ...]
    unused: tuple[str, ...] = ()  # CPU nodes beyond the services host

    def node(self, host: str) -> Node:
        return next(node for node in self.nodes if node.host == host)


@dataclass(frozen=True)
class ConnectionOptions:
    """How Ansible reaches the nodes (see README: Grid5000 walk-through)."""

    remote_user: str = "root"  # root after a deploy (kadeploy3 -k, EnOSlib) or after grant_root_g5k.yml
    proxy_jump: str = ""  # "LOGIN@access.grid5000.fr" when deploying from outside Grid5000
    python_interpreter: str = "/usr/bin/python3"
    extra_vars: Mapping[str, Any] = field(default_factory=dict)


def split_node_name(host: str) -> tuple[str, str]:
    """(cluster, site) of a Grid5000 node name; ("", "") for other names."""
    labels = host.lower().split(".")
    match = _NODE_NAME.match(labels[0])
    cluster = match.group("cluster") if match else ""
    site = labels[1] if len(labels) >= 3 and labels[-2:] == ["grid5000", "fr"] else ""
    return cluster, site


def _facts_for(host: str, facts: Mapping[str, HostFacts]) -> HostFacts | None:
    short = host.split(".")[0]
    return facts.get(host) or facts.get(short)


def classify(
    hosts: Sequence[str],
    *,
    facts: Mapping[str, HostFacts] | None = None,
    gpu_patterns: Iterable[str] = (),
    gpu_clusters: Iterable[str] = KNOWN_GPU_CLUSTERS,
) -> list[Node]:
    """Decide GPU or CPU for every host, keeping the reason so the user can check it."""
    facts = facts or {}
    patterns = [pattern.lower() for pattern in gpu_patterns]
    clusters = {name.lower() for name in gpu_clusters}
    nodes: list[Node] = []
    for host in hosts:
        cluster, site = split_node_name(host)
        known = _facts_for(host, facts)
        cluster = cluster or (known.cluster if known else "")
        short = host.split(".")[0]
        matched = next((p for p in patterns if fnmatch.fnmatchcase(host, p) or fnmatch.fnmatchcase(short, p)), None)
        if known is not None and known.gpu_count is not None:
            has_gpu, reason = known.gpu_count > 0, f"gpu_count={known.gpu_count} in {known.source}"
        elif matched is not None:
            has_gpu, reason = True, f"matches --gpu-nodes {matched!r}"
        elif cluster and cluster in clusters:
            has_gpu, reason = True, f"cluster {cluster} is a GPU cluster"
        else:
            has_gpu, reason = False, "no GPU information (assumed CPU)"
        gpu_ids = known.gpu_ids if (known is not None and has_gpu) else ()
        nodes.append(Node(host, cluster, site, has_gpu, reason, gpu_ids))
    return nodes


def place(nodes: Sequence[Node], services_host: str | None = None) -> Placement:
    """Services on `services_host` or the first CPU node; every GPU node trains."""
    if not nodes:
        raise ValueError("no hosts to place")
    hosts = [node.host for node in nodes]
    if services_host:
        wanted = services_host.lower()
        matches = [h for h in hosts if h == wanted or h.split(".")[0] == wanted]
        if not matches:
            raise ValueError(f"--services-host {services_host!r} is not in the reservation ({', '.join(hosts)})")
        services = matches[0]
    else:
        cpu = [node.host for node in nodes if not node.has_gpu]
        if not cpu:
            raise ValueError(
                "no CPU node in the reservation for MonetDB/Elasticsearch/Kibana/collector: reserve one "
                "(oarsub -l \"{gpu_count=0}/host=1+{gpu_compute_capability_major>=6}/host=2\") or pass "
                "--services-host HOST"
            )
        services = cpu[0]
    trainers = tuple(node.host for node in nodes if node.has_gpu)
    unused = tuple(node.host for node in nodes if not node.has_gpu and node.host != services)
    return Placement(services=services, trainers=trainers, nodes=tuple(nodes), unused=unused)


def inventory_dict(placement: Placement, options: ConnectionOptions | None = None) -> dict[str, Any]:
    """The YAML inventory structure (groups of `ansible/site.yml`)."""
    options = options or ConnectionOptions()
    all_vars: dict[str, Any] = {
        "ansible_user": options.remote_user,
        "ansible_python_interpreter": options.python_interpreter,
    }
    if options.proxy_jump:
        all_vars["ansible_ssh_common_args"] = f"-o ProxyJump={options.proxy_jump}"
    all_vars.update(options.extra_vars)
    children: dict[str, Any] = {group: {"hosts": {placement.services: None}} for group in SERVICE_GROUPS}
    trainers: dict[str, Any] = {}
    for host in placement.trainers:
        node = placement.node(host)
        trainers[host] = {"trainer_gpu_ids": list(node.gpu_ids)} if node.gpu_ids else None
    children[TRAINER_GROUP] = {"hosts": trainers}
    return {"all": {"vars": all_vars, "children": children}}


def render_inventory(placement: Placement, options: ConnectionOptions | None = None) -> str:
    """YAML text with a header explaining each host's role, for humans reading the generated file."""
    lines = ["# Generated by `pinnprov deploy` from an OAR reservation; regenerate rather than edit.", "#"]
    for node in placement.nodes:
        role = "services" if node.host == placement.services else "trainer" if node.has_gpu else "unused"
        lines.append(f"# {node.host}: {role} ({node.reason})")
    body: str = yaml.safe_dump(inventory_dict(placement, options), sort_keys=False, default_flow_style=False)
    return "\n".join(lines) + "\n---\n" + body


def placement_from_oar(
    nodefile: str | Path,
    *,
    resource_properties: str | Path | None = None,
    nodes_json: str | Path | None = None,
    gpu_patterns: Iterable[str] = (),
    extra_gpu_clusters: Iterable[str] = (),
    services_host: str | None = None,
) -> Placement:
    """Read the OAR files and place their hosts (the files are named in every error)."""
    hosts = parse_nodefile(_read(nodefile), str(nodefile))
    facts: dict[str, HostFacts] = {}
    if nodes_json is not None:
        facts.update(parse_nodes_json(_read(nodes_json), str(nodes_json)))
    if resource_properties is not None:  # the reservation's own properties win over a catalogue
        facts.update(parse_resource_properties(_read(resource_properties), str(resource_properties)))
    nodes = classify(
        hosts,
        facts=facts,
        gpu_patterns=gpu_patterns,
        gpu_clusters=KNOWN_GPU_CLUSTERS | {name.lower() for name in extra_gpu_clusters},
    )
    return place(nodes, services_host)


def _read(path: str | Path) -> str:
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"{file}: no such file")
    return file.read_text(encoding="utf-8", errors="replace")
