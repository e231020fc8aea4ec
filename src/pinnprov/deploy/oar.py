"""Readers for what an OAR reservation tells us about its nodes.

Three sources, from weakest to strongest:

* the node file (`$OAR_NODEFILE`): one line per reserved *core*, so every host appears many times; it names
  hosts and nothing else — it cannot say which hosts have GPUs;
* the resource properties file (`$OAR_RESOURCE_PROPERTIES_FILE`): one line per reserved resource with every
  OAR property (`host = '...', cluster = '...', gpu_count = '2', gpudevice = '0', ...`); authoritative;
* JSON: the Grid5000 REST API node descriptions (`GET /stable/sites/SITE/clusters/CLUSTER/nodes`, each item
  with `uid` and `gpu_devices`) or `oarnodes -J` (an object keyed by resource id, each resource with every OAR
  property: `network_address`/`host`, `gpu_count`, `gpudevice`, `cluster`; one per core, so hosts repeat).
  `oarstat -fJ` is *not* a GPU source: it lists jobs (`assigned_network_address` = host names,
  `assigned_resources` = resource ids) with no per-host property; it is refused with that explanation.

Every reader raises ValueError naming the file and the problem, so the CLI shows one clear line.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

# Host names as OAR writes them: letters, digits, dots, hyphens (chifflot-1.lille.grid5000.fr).
_HOSTNAME = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$")
# One `key = 'value'` pair of the resource properties file; values may contain escaped quotes.
_PROPERTY = re.compile(r"(\w+)\s*=\s*'((?:[^'\\]|\\.)*)'")


@dataclass(frozen=True)
class HostFacts:
    """What a reservation source says about one host; None/empty means "this source does not say"."""

    gpu_count: int | None = None
    gpu_ids: tuple[int, ...] = ()  # GPU device indices reserved on the host (OAR `gpudevice`), if known
    cluster: str = ""
    source: str = ""  # file the facts came from, shown when explaining the placement

    def merged(self, other: HostFacts) -> HostFacts:
        """Combine two resources of the same host: the largest count, the union of device ids."""
        counts = [c for c in (self.gpu_count, other.gpu_count) if c is not None]
        return HostFacts(
            gpu_count=max(counts) if counts else None,
            gpu_ids=tuple(sorted(set(self.gpu_ids) | set(other.gpu_ids))),
            cluster=self.cluster or other.cluster,
            source=self.source or other.source,
        )


@dataclass
class _Collector:
    facts: dict[str, HostFacts] = field(default_factory=dict)

    def add(self, host: str, facts: HostFacts) -> None:
        previous = self.facts.get(host)
        self.facts[host] = facts if previous is None else previous.merged(facts)


def validate_hostname(host: str, where: str) -> str:
    if not _HOSTNAME.match(host) or ".." in host:
        raise ValueError(f"{where}: {host!r} is not a host name")
    return host


def parse_nodefile(text: str, source: str = "node file") -> list[str]:
    """Distinct hosts in reservation order (OAR repeats a host once per reserved core)."""
    hosts: list[str] = []
    seen: set[str] = set()
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        host = validate_hostname(line, f"{source}:{number}").lower()
        if host not in seen:
            seen.add(host)
            hosts.append(host)
    if not hosts:
        raise ValueError(
            f"{source}: lists no host (an OAR node file has one line per reserved core; "
            "run inside the job or pass the file of a running job: oarstat -u; oarsub -C JOB_ID)"
        )
    return hosts


def _int_or_none(value: object, where: str) -> int | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ValueError(f"{where}: expected a number, got {value!r}")
    try:
        number = int(str(value).strip())
    except ValueError:
        raise ValueError(f"{where}: expected a number, got {value!r}") from None
    if number < 0:
        raise ValueError(f"{where}: must not be negative, got {number}")
    return number


def parse_resource_properties(text: str, source: str = "resource properties file") -> dict[str, HostFacts]:
    """Host -> facts from `$OAR_RESOURCE_PROPERTIES_FILE` (one `key = 'value', ...` line per resource)."""
    collector = _Collector()
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        where = f"{source}:{number}"
        properties = {key: value.replace("\\'", "'") for key, value in _PROPERTY.findall(line)}
        if not properties:
            raise ValueError(f"{where}: expected `key = 'value'` pairs, got {line[:60]!r}")
        host = properties.get("host") or properties.get("network_address")
        if not host:
            raise ValueError(f"{where}: resource has no host or network_address property")
        device = _int_or_none(properties.get("gpudevice"), f"{where}: gpudevice")
        collector.add(
            validate_hostname(host, where).lower(),
            HostFacts(
                gpu_count=_int_or_none(properties.get("gpu_count"), f"{where}: gpu_count"),
                gpu_ids=(device,) if device is not None else (),
                cluster=properties.get("cluster", ""),
                source=source,
            ),
        )
    if not collector.facts:
        raise ValueError(f"{source}: lists no resource")
    return collector.facts


def _json_records(document: Any) -> Iterator[Mapping[str, Any]]:
    """Node-like objects of the shapes we accept: {"items": [...]}, [...], or {"<resource id>": {...}}."""
    if isinstance(document, Mapping) and isinstance(document.get("items"), list):
        document = document["items"]
    if isinstance(document, Mapping):
        values: Iterable[Any] = document.values()
    elif isinstance(document, list):
        values = document
    else:
        values = ()
    for value in values:
        if isinstance(value, Mapping):
            yield value


def parse_nodes_json(text: str, source: str = "nodes JSON") -> dict[str, HostFacts]:
    """Host -> facts from Grid5000 REST API node descriptions or oarnodes/oarstat JSON."""
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"{source}: not JSON ({error.msg} at line {error.lineno})") from None
    records = list(_json_records(document))
    if records and all("assigned_network_address" in record or "Job_Id" in record for record in records):
        raise ValueError(f"{source}: this is `oarstat -fJ` output (jobs and their host names, no GPU facts); give "
                         "`oarnodes -J HOST...` or the REST API nodes (GET /stable/sites/SITE/clusters/C/nodes)")
    collector = _Collector()
    for index, record in enumerate(records):
        where = f"{source}: item {index}"
        host = record.get("host") or record.get("network_address") or record.get("uid")
        if not isinstance(host, str) or not host:
            continue  # not a node (e.g. a `links` entry); the REST API mixes those in
        devices = record.get("gpu_devices")
        if isinstance(devices, Mapping):
            gpu_count: int | None = len(devices)
        elif isinstance(record.get("gpu"), Mapping) and "gpu_count" in record["gpu"]:
            gpu_count = _int_or_none(record["gpu"]["gpu_count"], f"{where}: gpu.gpu_count")  # older API shape
        else:
            gpu_count = _int_or_none(record.get("gpu_count"), f"{where}: gpu_count")
        device = _int_or_none(record.get("gpudevice"), f"{where}: gpudevice")
        collector.add(
            validate_hostname(host, where).lower(),
            HostFacts(
                gpu_count=gpu_count,
                gpu_ids=(device,) if device is not None else (),
                cluster=str(record.get("cluster") or ""),
                source=source,
            ),
        )
    if not collector.facts:
        raise ValueError(f"{source}: no node with a host, network_address or uid field")
    return collector.facts
