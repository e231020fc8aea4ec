"""`pinnprov deploy g5k`: cluster choice from the reference API, EnOSlib's configuration, the inventory of its roles.

Everything before the first testbed call is tested here. The API answers are hand-written in the documented
shape of `GET /stable/sites/SITE/clusters` and `.../clusters/C/nodes` (items with `uid`, `queues`, `exotic`,
`architecture.platform_type`, `gpu_devices.*.{vendor, model, compute_capability}`), with the real clusters'
values of Lille (2026-03 reference data) and one cluster of each kind that must be left out. The configuration is
checked by EnOSlib's own validator when enoslib can be imported (the `g5k` extra lives in its own venv: point
PINNPROV_TEST_ENOSLIB_PYTHON at that venv's python). The reservation itself needs the testbed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from ansible.inventory.manager import InventoryManager
from ansible.parsing.dataloader import DataLoader

from pinnprov.cli import main
from pinnprov.deploy.g5k_plan import G5kRequest, placement_from_roles, provider_configuration, walltime_hms
from pinnprov.deploy.g5k_reference import (
    NVIDIA_OAR_FILTER,
    ClusterFacts,
    choose_cpu_cluster,
    choose_gpu_cluster,
    cluster_facts,
    gpu_clusters,
)
from pinnprov.deploy.inventory import ConnectionOptions, render_inventory

ROOT = Path(__file__).resolve().parents[2]


def _gpu(model: str, capability: str | None, vendor: str = "Nvidia") -> dict[str, object]:
    device: dict[str, object] = {"model": model, "vendor": vendor, "memory": 17179869184}
    if capability is not None:
        device["compute_capability"] = capability
    return device


def _nodes(cluster: str, count: int, gpus: list[dict[str, object]], arch: str = "x86_64") -> dict[str, object]:
    items = [{"uid": f"{cluster}-{i}", "architecture": {"platform_type": arch},
              **({"gpu_devices": {f"nvidia{j}": gpu for j, gpu in enumerate(gpus)}} if gpus else {})}
             for i in range(1, count + 1)]
    return {"items": items, "total": count, "links": [{"rel": "self", "href": f"/clusters/{cluster}/nodes"}]}


def _cluster(uid: str, queues: list[str], exotic: bool = False) -> dict[str, object]:
    return {"uid": uid, "queues": queues, "exotic": exotic, "type": "cluster"}


def site_facts() -> list[ClusterFacts]:
    p100, v100 = _gpu("Tesla P100-PCIE-16GB", "6.0"), _gpu("Tesla V100-PCIE-32GB", "7.0")
    chifflot = _nodes("chifflot", 8, [p100, p100])
    for node in chifflot["items"][6:]:  # type: ignore[index]
        node["gpu_devices"] = {"nvidia0": v100, "nvidia1": v100}
    return [
        cluster_facts("lille", _cluster("chiclet", ["admin", "default"]), _nodes("chiclet", 8, [])),
        cluster_facts("lille", _cluster("chirop", ["default", "admin"]), _nodes("chirop", 5, [])),
        cluster_facts("lille", _cluster("chifflot", ["admin", "default"]), chifflot),
        cluster_facts("lille", _cluster("chuc", ["default", "admin"]), _nodes("chuc", 8, [_gpu("A100-SXM4-40GB",
                                                                                               "8.0")] * 4)),
        # must be left out by default, each for its own reason
        cluster_facts("lille", _cluster("gemini", ["default", "admin"], exotic=True),
                      _nodes("gemini", 2, [_gpu("Tesla V100-SXM2-32GB", "7.0")] * 8)),
        cluster_facts("lille", _cluster("grele", ["abaca", "admin", "production"]),
                      _nodes("grele", 13, [_gpu("GeForce GTX 1080 Ti", "6.1")] * 2)),
        cluster_facts("lille", _cluster("drac", ["default", "admin"], exotic=True),
                      _nodes("drac", 8, [_gpu("Tesla P100-SXM2-16GB", "6.0")] * 4, arch="ppc64le")),
        cluster_facts("lille", _cluster("orion", ["default", "admin"]), _nodes("orion", 3, [_gpu("Tesla M2075",
                                                                                                 "2.0")])),
        cluster_facts("lille", _cluster("larochette", ["admin", "default"]),
                      _nodes("larochette", 7, [_gpu("Instinct MI210", None, vendor="AMD")] * 4)),
    ]


# --- cluster choice ----------------------------------------------------------------------------------
def test_nvidia_clusters_come_from_the_api_facts_not_a_list() -> None:
    facts = site_facts()
    assert gpu_clusters(facts) == ["chuc", "chifflot"]  # most GPUs per node first
    assert gpu_clusters(facts, "default", allow_exotic=True) == ["gemini", "chuc", "chifflot"]
    assert gpu_clusters(facts, "production") == ["grele"]
    by_uid = {f.uid: f for f in facts}
    assert by_uid["chifflot"].min_compute_capability == 6.0 and by_uid["chifflot"].gpus_per_node == 2
    assert not by_uid["larochette"].trains_pinnprov()  # AMD: gpu_count>0 would have taken it
    assert not by_uid["orion"].trains_pinnprov() and not by_uid["drac"].trains_pinnprov()
    assert NVIDIA_OAR_FILTER == "gpu_compute_capability_major>=6"


def test_the_chosen_clusters_and_why_others_are_refused() -> None:
    facts = site_facts()
    assert choose_gpu_cluster(facts, 2).uid == "chuc"
    assert choose_gpu_cluster(facts, 2, wanted="chifflot").uid == "chifflot"
    assert choose_cpu_cluster(facts).uid == "chiclet"
    with pytest.raises(ValueError, match=r"--gpu-cluster larochette: not NVIDIA compute capability >= 6 on x86_64"):
        choose_gpu_cluster(facts, 1, wanted="larochette")
    with pytest.raises(ValueError, match=r"--gpu-cluster grele: not reservable in queue default without -q "
                                         r"production"):
        choose_gpu_cluster(facts, 1, wanted="grele")
    with pytest.raises(ValueError, match=r"--gpu-cluster gemini: not reservable in queue default without --exotic"):
        choose_gpu_cluster(facts, 1, wanted="gemini")
    with pytest.raises(ValueError, match=r"--gpu-nodes 9: more than any cluster has \(chuc: 8, chifflot: 8\)"):
        choose_gpu_cluster(facts, 9)
    with pytest.raises(ValueError, match=r"--gpu-cluster nope: no such cluster at this site"):
        choose_gpu_cluster(facts, 1, wanted="nope")
    only_cpu = [f for f in facts if not f.has_gpu]
    with pytest.raises(ValueError, match="no NVIDIA GPU cluster .* in queue default"):
        choose_gpu_cluster(only_cpu, 1)


# --- EnOSlib's configuration ---------------------------------------------------------------------------
def test_provider_configuration_reserves_and_deploys_debian12_big() -> None:
    conf = provider_configuration(G5kRequest(site="lille", gpu_nodes=2, walltime="2:00"), "chifflot", "chiclet")
    assert conf["walltime"] == "02:00:00" and conf["queue"] == "default" and conf["job_type"] == ["deploy"]
    assert conf["env_name"] == "debian12-x64-big" and "oargrid_jobids" not in conf
    machines = conf["resources"]["machines"]  # type: ignore[index]
    assert [(m["roles"], m["cluster"], m["nodes"]) for m in machines] == [(["services"], "chiclet", 1),
                                                                        (["trainers"], "chifflot", 2)]
    reuse = provider_configuration(G5kRequest(site="lille", job_id=123456, exotic=True), "gemini", "chiclet")
    assert reuse["oargrid_jobids"] == [["lille", "123456"]] and reuse["job_type"] == ["deploy", "exotic"]


@pytest.mark.parametrize(("text", "expected"), [("2:00", "02:00:00"), ("0:30", "00:30:00"), ("12:05:30", "12:05:30")])
def test_walltimes(text: str, expected: str) -> None:
    assert walltime_hms(text) == expected


@pytest.mark.parametrize("text", ["2h", "0:00", "2:75", "", "1:2"])
def test_bad_walltimes_name_the_flag(text: str) -> None:
    with pytest.raises(ValueError, match="--walltime: expected H:MM or H:MM:SS"):
        walltime_hms(text)


def test_configuration_passes_enoslibs_own_validator() -> None:
    conf = provider_configuration(G5kRequest(site="lille", job_id=42), "chifflot", "chiclet")
    bad = {**conf, "walltime": "two hours"}
    script = ("import json, sys\nfrom pinnprov.deploy.g5k_plan import validate_with_enoslib\n"
              "validate_with_enoslib(json.loads(sys.argv[1]))\n"
              "try:\n    validate_with_enoslib(json.loads(sys.argv[2]))\nexcept Exception as error:\n"
              "    print('refused:', type(error).__name__)\n")
    python = os.environ.get("PINNPROV_TEST_ENOSLIB_PYTHON", "")
    try:
        import enoslib  # noqa: F401
    except ImportError:
        if not python:
            pytest.skip("enoslib is not installed here (g5k extra, own venv): set PINNPROV_TEST_ENOSLIB_PYTHON")
    else:
        python = sys.executable
    done = subprocess.run([python, "-c", script, json.dumps(conf), json.dumps(bad)], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().startswith("refused:"), done.stdout  # the validator is real: it refuses a bad one


# --- the inventory of the roles EnOSlib returns ------------------------------------------------------------
def test_roles_become_the_playbook_groups_as_ansible_reads_them(tmp_path: Path) -> None:
    placement = placement_from_roles({"services": ["chiclet-3.lille.grid5000.fr"],
                                      "trainers": ["chifflot-2.lille.grid5000.fr", "chifflot-1.lille.grid5000.fr"]})
    path = tmp_path / "inventory.yml"
    path.write_text(render_inventory(placement, ConnectionOptions()))
    manager = InventoryManager(loader=DataLoader(), sources=[str(path)])
    for group in ("monetdb", "elasticsearch", "kibana", "collector"):
        assert [h.name for h in manager.get_hosts(group)] == ["chiclet-3.lille.grid5000.fr"]
    assert [h.name for h in manager.get_hosts("trainers")] == ["chifflot-1.lille.grid5000.fr",
                                                                "chifflot-2.lille.grid5000.fr"]
    assert manager.groups["all"].get_vars()["ansible_user"] == "root"  # deployed nodes: root over SSH
    with pytest.raises(ValueError, match="returned no host with role trainers"):
        placement_from_roles({"services": ["chiclet-3.lille.grid5000.fr"], "trainers": []})


# --- the command -------------------------------------------------------------------------------------------
def test_show_plan_prints_the_configuration_without_the_testbed(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["deploy", "g5k", "--site", "lille", "--gpu-nodes", "2", "--walltime", "2:00", "--gpu-cluster",
                 "chifflot", "--cpu-cluster", "chiclet", "--show-plan"]) == 0
    conf = json.loads(capsys.readouterr().out)
    assert conf["resources"]["machines"][1] == {"roles": ["trainers"], "cluster": "chifflot", "nodes": 2,
                                                "primary_network": "prod"}


@pytest.mark.parametrize(("flags", "error"), [
    (["deploy", "g5k", "--show-plan"], "--site: required with g5k"),
    (["deploy", "g5k", "--site", "lille", "--gpu-nodes", "chifflot-*"], "--gpu-nodes: with g5k, one number"),
    (["deploy", "g5k", "--site", "lille", "--show-plan"], "--show-plan: give --gpu-cluster and --cpu-cluster"),
    (["deploy", "g5k", "--site", "Lille!", "--show-plan"], "--site: expected a Grid5000 site name"),
    (["deploy", "g5k", "--site", "lille", "--walltime", "2h", "--show-plan"], "--walltime: expected H:MM"),
    (["deploy", "--site", "lille"], "only with `pinnprov deploy g5k`"),
])
def test_bad_g5k_flags_are_one_line(flags: list[str], error: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(flags) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and error in err[0], err


@pytest.mark.skipif(os.environ.get("PINNPROV_TEST_G5K") != "1",
                    reason="testbed only: reserves Grid5000 nodes (run on a frontend with PINNPROV_TEST_G5K=1)")
def test_reserve_and_deploy_on_grid5000() -> None:  # pragma: no cover - testbed only
    from pinnprov.deploy.g5k_run import plan, reserve_and_deploy

    placement = reserve_and_deploy(plan(G5kRequest(site=os.environ.get("PINNPROV_TEST_G5K_SITE", "lille"),
                                                   gpu_nodes=1, walltime="0:30")))
    assert placement.services and placement.trainers
