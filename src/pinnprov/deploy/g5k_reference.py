"""Which Grid5000 clusters can train pinnprov, decided from the reference API instead of a hard-coded list.

The reference API (`GET /stable/sites/SITE/clusters` and `.../clusters/C/nodes`) describes every cluster: its OAR
queues, whether it is `exotic` (reserved only with `-t exotic`), and per node the CPU architecture and the GPUs
(`gpu_devices.*.vendor`, `compute_capability`). A cluster trains pinnprov when every node is x86_64 (TensorFlow's
wheels) with NVIDIA GPUs of compute capability 6.0 or more -- the same test as the OAR filter
`gpu_compute_capability_major>=6`, which also leaves out AMD GPUs (their major is 0) that `gpu_count>0` selects.

Parsing is pure and tested; `fetch_site` is the only network call (testbed only).
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

API = "https://api.grid5000.fr/stable"
NVIDIA_OAR_FILTER = "gpu_compute_capability_major>=6"
MIN_COMPUTE_CAPABILITY = 6
QUEUES = ("default", "production")


@dataclass(frozen=True)
class ClusterFacts:
    """One cluster as the reference API describes it."""

    uid: str
    site: str
    queues: tuple[str, ...]
    exotic: bool
    architectures: frozenset[str]
    nodes: int
    gpus_per_node: int  # smallest over the nodes
    gpu_vendors: frozenset[str]
    min_compute_capability: float  # smallest over every GPU (0 when none or unknown)
    gpu_models: frozenset[str]

    @property
    def has_gpu(self) -> bool:
        return self.gpus_per_node > 0

    def trains_pinnprov(self) -> bool:
        """NVIDIA GPUs of compute capability >= 6 on every node, x86_64 only."""
        return (self.has_gpu and self.gpu_vendors == {"Nvidia"} and self.architectures == {"x86_64"}
                and self.min_compute_capability >= MIN_COMPUTE_CAPABILITY)

    def reachable(self, queue: str, allow_exotic: bool) -> bool:
        return queue in self.queues and (allow_exotic or not self.exotic)


def _items(document: Any) -> list[Mapping[str, Any]]:
    values = document.get("items", document) if isinstance(document, Mapping) else document
    return [item for item in values if isinstance(item, Mapping)] if isinstance(values, list) else []


def _capability(text: object) -> float:
    try:
        return float(str(text))
    except ValueError:
        return 0.0


def cluster_facts(site: str, cluster: Mapping[str, Any], nodes: Any) -> ClusterFacts:
    """Facts of one cluster from its API description and its nodes' (`items` lists or plain lists)."""
    uid = str(cluster.get("uid") or "")
    if not uid:
        raise ValueError(f"{site}: a cluster without uid in the reference API answer")
    node_items = _items(nodes)
    counts, vendors, models, capabilities, architectures = [], set(), set(), [], set()
    for node in node_items:
        devices = node.get("gpu_devices") or {}
        devices = devices if isinstance(devices, Mapping) else {}
        counts.append(len(devices))
        architectures.add(str((node.get("architecture") or {}).get("platform_type") or "unknown"))
        for device in devices.values():
            vendors.add(str(device.get("vendor") or "unknown"))
            models.add(str(device.get("model") or ""))
            capabilities.append(_capability(device.get("compute_capability")))
    return ClusterFacts(
        uid=uid, site=site, queues=tuple(str(q) for q in cluster.get("queues") or ()),
        exotic=bool(cluster.get("exotic", False)), architectures=frozenset(architectures), nodes=len(node_items),
        gpus_per_node=min(counts) if counts else 0, gpu_vendors=frozenset(vendors),
        min_compute_capability=min(capabilities) if capabilities else 0.0, gpu_models=frozenset(models - {""}),
    )


def _check_queue(queue: str) -> None:
    if queue not in QUEUES:
        raise ValueError(f"--queue: expected one of {', '.join(QUEUES)}, got {queue!r}")


def gpu_clusters(facts: Iterable[ClusterFacts], queue: str = "default", allow_exotic: bool = False) -> list[str]:
    """Clusters that train pinnprov and can be reserved in `queue`, most GPUs per node first."""
    _check_queue(queue)
    usable = [f for f in facts if f.trains_pinnprov() and f.reachable(queue, allow_exotic)]
    return [f.uid for f in sorted(usable, key=lambda f: (-f.gpus_per_node, -f.nodes, f.uid))]


def choose_gpu_cluster(facts: Sequence[ClusterFacts], nodes: int, queue: str = "default",
                       allow_exotic: bool = False, wanted: str = "") -> ClusterFacts:
    """The cluster to reserve `nodes` GPU nodes on (`wanted` if given), with a one-line reason when none fits."""
    by_uid = {f.uid: f for f in facts}
    if wanted:
        chosen = by_uid.get(wanted)
        if chosen is None:
            raise ValueError(f"--gpu-cluster {wanted}: no such cluster at this site ({', '.join(sorted(by_uid))})")
        if not chosen.trains_pinnprov():
            raise ValueError(f"--gpu-cluster {wanted}: not NVIDIA compute capability >= {MIN_COMPUTE_CAPABILITY} on "
                             f"x86_64 ({', '.join(sorted(chosen.gpu_models)) or 'no GPU'}, "
                             f"{'/'.join(sorted(chosen.architectures))})")
        if not chosen.reachable(queue, allow_exotic):
            hint = "-q production" if "production" in chosen.queues else "--exotic" if chosen.exotic else ""
            raise ValueError(f"--gpu-cluster {wanted}: not reservable in queue {queue}"
                             + (f" without {hint}" if hint else "") + f" (queues {', '.join(chosen.queues)})")
        candidates = [chosen]
    else:
        candidates = [by_uid[uid] for uid in gpu_clusters(facts, queue, allow_exotic)]
        if not candidates:
            others = gpu_clusters(facts, "production", True) if queue == "default" else []
            raise ValueError(f"no NVIDIA GPU cluster (compute capability >= {MIN_COMPUTE_CAPABILITY}, x86_64) in "
                             f"queue {queue} at this site" + (f"; try --queue production or --exotic "
                                                              f"({', '.join(others)})" if others else ""))
    for cluster in candidates:
        if cluster.nodes >= nodes:
            return cluster
    sizes = ', '.join(f'{c.uid}: {c.nodes}' for c in candidates)
    raise ValueError(f"--gpu-nodes {nodes}: more than any cluster has ({sizes})")


def choose_cpu_cluster(facts: Sequence[ClusterFacts], queue: str = "default", wanted: str = "") -> ClusterFacts:
    """The services node's cluster: no GPU, x86_64, not exotic (GPU nodes are kept for training)."""
    _check_queue(queue)
    by_uid = {f.uid: f for f in facts}
    if wanted:
        if wanted not in by_uid:
            raise ValueError(f"--cpu-cluster {wanted}: no such cluster at this site ({', '.join(sorted(by_uid))})")
        return by_uid[wanted]
    usable = sorted((f for f in facts if not f.has_gpu and f.architectures == {"x86_64"} and f.reachable(queue, False)),
                    key=lambda f: (-f.nodes, f.uid))
    if not usable:
        raise ValueError(f"no CPU cluster (x86_64, not exotic) in queue {queue} at this site: pass --cpu-cluster")
    return usable[0]


def _get(url: str, timeout_s: float) -> Any:  # pragma: no cover - testbed only
    request = urllib.request.Request(url, headers={"Accept": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout_s) as response:  # noqa: S310 - fixed https URL
        return json.loads(response.read())


def fetch_site(site: str, timeout_s: float = 60.0) -> list[ClusterFacts]:  # pragma: no cover - testbed only
    """Every cluster of `site` from the reference API (inside Grid5000: no credentials needed)."""
    clusters = _items(_get(f"{API}/sites/{site}/clusters", timeout_s))
    return [cluster_facts(site, c, _get(f"{API}/sites/{site}/clusters/{c['uid']}/nodes", timeout_s))
            for c in clusters if c.get("uid")]
