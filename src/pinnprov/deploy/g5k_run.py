"""The testbed half of `pinnprov deploy g5k`: ask the reference API, reserve with EnOSlib, deploy the environment.

Everything before the first API call (cluster choice from parsed facts, the EnOSlib configuration, the inventory
of the returned roles) is in g5k_reference.py and g5k_plan.py and tested; this file only calls the testbed.
EnOSlib's `init()` is idempotent: it reloads the job of the same name (or the `--job-id` one) and deploys only
nodes not deployed yet, so running the command again after a failure continues where it stopped.
"""

from __future__ import annotations

from collections.abc import Callable

from pinnprov.deploy.g5k_plan import (
    SERVICES_ROLE,
    TRAINERS_ROLE,
    G5kRequest,
    check_request,
    placement_from_roles,
    provider_configuration,
    validate_with_enoslib,
)
from pinnprov.deploy.g5k_reference import choose_cpu_cluster, choose_gpu_cluster, fetch_site
from pinnprov.deploy.inventory import Placement


def plan(request: G5kRequest, *, gpu_cluster: str = "", cpu_cluster: str = "",
         echo: Callable[[str], None] = print) -> dict[str, object]:  # pragma: no cover - testbed only
    """The EnOSlib configuration for `request`, clusters chosen from the site's reference API."""
    check_request(request)
    facts = fetch_site(request.site)
    gpu = choose_gpu_cluster(facts, request.gpu_nodes, request.queue, request.exotic, gpu_cluster)
    cpu = choose_cpu_cluster(facts, request.queue, cpu_cluster)
    echo(f"g5k: {request.gpu_nodes} x {gpu.uid} ({gpu.gpus_per_node} x {', '.join(sorted(gpu.gpu_models))}) and "
         f"1 x {cpu.uid} at {request.site}, {request.environment}, walltime {request.walltime}"
         + (f", job {request.job_id}" if request.job_id else ""))
    configuration = provider_configuration(request, gpu.uid, cpu.uid)
    validate_with_enoslib(configuration)
    return configuration


def reserve_and_deploy(configuration: dict[str, object]) -> Placement:  # pragma: no cover - testbed only
    """Reserve (or reload) the job, deploy the environment, return where services and trainers are."""
    import enoslib as en

    provider = en.G5k(en.G5kConf.from_dictionary(configuration))
    roles, _networks = provider.init()
    hosts = {role: [host.address for host in roles[role]] for role in (SERVICES_ROLE, TRAINERS_ROLE)}
    return placement_from_roles(hosts)
