"""`pinnprov deploy g5k`: what to ask EnOSlib for, and the inventory its answer becomes.

One CPU node (role `services`: MonetDB, Elasticsearch, Kibana, collector, Dask scheduler) and N GPU nodes (role
`trainers`, one Dask worker per GPU), both deployed with `debian12-x64-big`: Python 3.11 for the venvs and
NVIDIA's proprietary driver, which still drives Pascal and Volta GPUs (debian13 images use the open kernel
module: Turing and newer only). EnOSlib machine groups name a cluster, not an OAR filter, so the NVIDIA filter is
applied when the cluster is chosen from the reference API (pinnprov/deploy/g5k_reference.py).

Everything here is pure: the configuration is EnOSlib's documented user schema (a dict), checked with EnOSlib's
own validator where enoslib is installed; g5k_run.py does the API calls.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from pinnprov.deploy.inventory import Placement, classify, place

ENVIRONMENT = "debian12-x64-big"
SERVICES_ROLE = "services"
TRAINERS_ROLE = "trainers"
JOB_NAME = "pinnprov"
_WALLTIME = re.compile(r"^(?P<h>\d{1,3}):(?P<m>[0-5]\d)(?::(?P<s>[0-5]\d))?$")
_SITE = re.compile(r"^[a-z]+$")


@dataclass(frozen=True)
class G5kRequest:
    site: str
    gpu_nodes: int = 2
    walltime: str = "2:00"
    job_id: int | None = None  # reuse this reservation instead of submitting one
    queue: str = "default"
    exotic: bool = False
    environment: str = ENVIRONMENT
    job_name: str = JOB_NAME


def walltime_hms(text: str) -> str:
    """'2:00' or '2:00:00' -> '02:00:00' (EnOSlib's format); ValueError naming --walltime otherwise."""
    match = _WALLTIME.match(text.strip())
    if not match or (int(match.group("h")) == 0 and int(match.group("m")) == 0 and not int(match.group("s") or 0)):
        raise ValueError(f"--walltime: expected H:MM or H:MM:SS (e.g. 2:00), got {text!r}")
    return f"{int(match.group('h')):02d}:{match.group('m')}:{match.group('s') or '00'}"


def check_request(request: G5kRequest) -> None:
    if not _SITE.match(request.site):
        raise ValueError(f"--site: expected a Grid5000 site name such as lille, got {request.site!r}")
    if request.gpu_nodes < 1:
        raise ValueError(f"--gpu-nodes: must be at least 1, got {request.gpu_nodes}")
    if request.job_id is not None and request.job_id < 1:
        raise ValueError(f"--job-id: must be a positive OAR job id, got {request.job_id}")
    walltime_hms(request.walltime)


def provider_configuration(request: G5kRequest, gpu_cluster: str, cpu_cluster: str) -> dict[str, object]:
    """EnOSlib's G5k configuration (user schema) for a new reservation, or for the job `request.job_id`."""
    check_request(request)
    job_types = ["deploy"] + (["exotic"] if request.exotic else [])
    configuration: dict[str, object] = {
        "job_name": request.job_name,
        "walltime": walltime_hms(request.walltime),
        "queue": request.queue,
        "job_type": job_types,
        "env_name": request.environment,
        "resources": {
            "machines": [
                {"roles": [SERVICES_ROLE], "cluster": cpu_cluster, "nodes": 1, "primary_network": "prod"},
                {"roles": [TRAINERS_ROLE], "cluster": gpu_cluster, "nodes": request.gpu_nodes,
                 "primary_network": "prod"},
            ],
            "networks": [{"id": "prod", "type": "prod", "roles": ["prod"], "site": request.site}],
        },
    }
    if request.job_id is not None:
        configuration["oargrid_jobids"] = [[request.site, str(request.job_id)]]
    return configuration


def placement_from_roles(roles: Mapping[str, Iterable[str]], gpu_ids: Mapping[str, tuple[int, ...]] | None = None
                         ) -> Placement:
    """The placement of the hosts EnOSlib returned per role (host names = their FQDN addresses)."""
    services = sorted(set(roles.get(SERVICES_ROLE, ())))
    trainers = sorted(set(roles.get(TRAINERS_ROLE, ())))
    if len(services) != 1:
        raise ValueError(f"EnOSlib returned {len(services)} host(s) with role {SERVICES_ROLE}, expected 1")
    if not trainers:
        raise ValueError(f"EnOSlib returned no host with role {TRAINERS_ROLE}")
    from pinnprov.deploy.oar import HostFacts

    facts = {host: HostFacts(gpu_count=0, source="role services") for host in services}
    for host in trainers:
        ids = (gpu_ids or {}).get(host, ())
        facts[host] = HostFacts(gpu_count=max(1, len(ids)), gpu_ids=ids, source="role trainers")
    nodes = classify([*services, *trainers], facts=facts, gpu_clusters=())
    return place(nodes, services_host=services[0])


def validate_with_enoslib(configuration: Mapping[str, object]) -> None:
    """EnOSlib's own JSON-schema check of the configuration (no API call); needs the `g5k` extra."""
    from enoslib.infra.enos_g5k.configuration import Configuration
    from enoslib.infra.enos_g5k.schema import SCHEMA_USER

    Configuration.validate(dict(configuration), SCHEMA_USER)
