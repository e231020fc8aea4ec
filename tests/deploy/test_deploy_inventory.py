"""The OAR-to-inventory builder: node files, resource properties, REST API JSON, placement, the YAML it writes.

The generated inventory is read back with Ansible's own InventoryManager, so the groups the playbooks use are
checked by the parser that will consume them.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from ansible.inventory.manager import InventoryManager
from ansible.parsing.dataloader import DataLoader

from pinnprov.cli import main
from pinnprov.deploy.inventory import (
    ConnectionOptions,
    classify,
    inventory_dict,
    place,
    placement_from_oar,
    render_inventory,
    split_node_name,
)
from pinnprov.deploy.oar import parse_nodefile, parse_nodes_json, parse_resource_properties

# What $OAR_NODEFILE looks like: one line per reserved core, hosts repeated, in reservation order.
NODEFILE = (
    "\n".join(["chiclet-3.lille.grid5000.fr"] * 4 + ["chifflot-1.lille.grid5000.fr"] * 3
              + ["chiclet-4.lille.grid5000.fr"] * 2 + ["chifflot-2.lille.grid5000.fr"] * 3)
    + "\n"
)
# $OAR_RESOURCE_PROPERTIES_FILE lines (abridged: real ones carry ~80 properties).
RESOURCES = """\
order = '1', besteffort = 'YES', cluster = 'chiclet', host = 'chiclet-3.lille.grid5000.fr', gpu_count = '0', \
core = '101', network_address = 'chiclet-3.lille.grid5000.fr'
order = '2', cluster = 'chifflot', host = 'chifflot-1.lille.grid5000.fr', gpu_count = '2', gpudevice = '0', \
gpu_model = 'Tesla P100-PCIE-16GB', network_address = 'chifflot-1.lille.grid5000.fr'
order = '3', cluster = 'chifflot', host = 'chifflot-1.lille.grid5000.fr', gpu_count = '2', gpudevice = '1', \
gpu_model = 'Tesla P100-PCIE-16GB', network_address = 'chifflot-1.lille.grid5000.fr'
order = '4', cluster = 'chiclet', host = 'chiclet-4.lille.grid5000.fr', gpu_count = '0', comment = 'it\\'s fine'
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_nodefile_is_deduplicated_in_reservation_order() -> None:
    hosts = parse_nodefile(NODEFILE)
    assert hosts == ["chiclet-3.lille.grid5000.fr", "chifflot-1.lille.grid5000.fr", "chiclet-4.lille.grid5000.fr",
                     "chifflot-2.lille.grid5000.fr"]


def test_nodefile_ignores_blank_lines_comments_and_case() -> None:
    assert parse_nodefile("\n# reserved by me\nGemini-1.Lyon.Grid5000.fr\n\n gemini-1.lyon.grid5000.fr \n") == [
        "gemini-1.lyon.grid5000.fr"
    ]


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n"])
def test_empty_nodefile_is_a_clear_error(text: str) -> None:
    with pytest.raises(ValueError, match=r"^OAR_NODEFILE: lists no host \(an OAR node file"):
        parse_nodefile(text, "OAR_NODEFILE")


def test_nodefile_line_that_is_not_a_host_is_named() -> None:
    with pytest.raises(ValueError, match=r"nodes:2: 'chifflot 1' is not a host name"):
        parse_nodefile("chifflot-1.lille.grid5000.fr\nchifflot 1\n", "nodes")


def test_grid5000_names_give_cluster_and_site() -> None:
    assert split_node_name("chifflot-1.lille.grid5000.fr") == ("chifflot", "lille")
    assert split_node_name("esterel10-2.sophia.grid5000.fr") == ("esterel10", "sophia")
    assert split_node_name("gemini-1") == ("gemini", "")
    assert split_node_name("localhost") == ("", "")


def test_resource_properties_give_gpu_counts_and_reserved_devices() -> None:
    facts = parse_resource_properties(RESOURCES, "props")
    gpu = facts["chifflot-1.lille.grid5000.fr"]
    assert (gpu.gpu_count, gpu.gpu_ids, gpu.cluster) == (2, (0, 1), "chifflot")
    assert facts["chiclet-3.lille.grid5000.fr"].gpu_count == 0
    assert facts["chiclet-4.lille.grid5000.fr"].gpu_count == 0  # the escaped quote did not derail the parser
    assert set(facts) == {"chiclet-3.lille.grid5000.fr", "chifflot-1.lille.grid5000.fr",
                          "chiclet-4.lille.grid5000.fr"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("this is not OAR\n", r"props:1: expected `key = 'value'` pairs"),
        ("cluster = 'chifflot', gpu_count = '2'\n", r"props:1: resource has no host or network_address"),
        ("host = 'a.b', gpu_count = 'two'\n", r"props:1: gpu_count: expected a number, got 'two'"),
        ("\n", r"props: lists no resource"),
    ],
)
def test_bad_resource_properties_are_named(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_resource_properties(text, "props")


def test_rest_api_nodes_json_counts_gpu_devices() -> None:
    # Shape of GET /stable/sites/lille/clusters/chifflot/nodes (items with uid and gpu_devices), plus a link.
    document = {
        "items": [
            {"uid": "chifflot-1", "cluster": "chifflot",
             "gpu_devices": {"nvidia0": {"model": "Tesla P100-PCIE-16GB"}, "nvidia1": {"model": "Tesla P100"}}},
            {"uid": "chiclet-3", "cluster": "chiclet"},
        ],
        "links": [{"rel": "self", "href": "/stable/sites/lille/clusters/chifflot/nodes"}],
    }
    facts = parse_nodes_json(json.dumps(document), "api.json")
    assert facts["chifflot-1"].gpu_count == 2
    assert facts["chiclet-3"].gpu_count is None  # the API says nothing about GPUs here: not "zero"


def test_oarnodes_json_uses_the_gpu_count_property() -> None:
    document = {"12": {"host": "gemini-1.lyon.grid5000.fr", "gpu_count": 8, "gpudevice": 3, "cluster": "gemini"},
                "13": {"host": "nova-1.lyon.grid5000.fr", "gpu_count": 0, "cluster": "nova"}}
    facts = parse_nodes_json(json.dumps(document), "oarnodes.json")
    assert (facts["gemini-1.lyon.grid5000.fr"].gpu_count, facts["gemini-1.lyon.grid5000.fr"].gpu_ids) == (8, (3,))
    assert facts["nova-1.lyon.grid5000.fr"].gpu_count == 0


@pytest.mark.parametrize(("text", "message"), [("{not json", r"x.json: not JSON"),
                                                ('{"items": [{"model": "x"}]}', r"x.json: no node with a host")])
def test_bad_nodes_json_is_named(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_nodes_json(text, "x.json")


def test_gpu_evidence_precedence_facts_then_patterns_then_cluster_list() -> None:
    hosts = ["chifflot-1.lille.grid5000.fr", "chiclet-3.lille.grid5000.fr", "paravance-1.rennes.grid5000.fr",
             "gemini-1.lyon.grid5000.fr"]
    facts = parse_resource_properties(
        "host = 'chifflot-1.lille.grid5000.fr', gpu_count = '0'\n", "props")  # a GPU cluster whose node says 0
    nodes = {n.host: n for n in classify(hosts, facts=facts, gpu_patterns=["paravance-*"])}
    assert not nodes["chifflot-1.lille.grid5000.fr"].has_gpu
    assert nodes["chifflot-1.lille.grid5000.fr"].reason == "gpu_count=0 in props"
    assert nodes["paravance-1.rennes.grid5000.fr"].has_gpu
    assert nodes["paravance-1.rennes.grid5000.fr"].reason == "matches --gpu-nodes 'paravance-*'"
    assert nodes["gemini-1.lyon.grid5000.fr"].reason == "cluster gemini is a GPU cluster"
    assert not nodes["chiclet-3.lille.grid5000.fr"].has_gpu


def test_placement_puts_services_on_the_first_cpu_node() -> None:
    placement = place(classify(parse_nodefile(NODEFILE)))
    assert placement.services == "chiclet-3.lille.grid5000.fr"
    assert placement.trainers == ("chifflot-1.lille.grid5000.fr", "chifflot-2.lille.grid5000.fr")
    assert placement.unused == ("chiclet-4.lille.grid5000.fr",)


def test_placement_without_cpu_node_names_the_fix() -> None:
    nodes = classify(["chifflot-1.lille.grid5000.fr", "chifflot-2.lille.grid5000.fr"])
    with pytest.raises(ValueError, match=r"no CPU node in the reservation .* or pass --services-host HOST"):
        place(nodes)
    # An explicit services host (even a GPU node, short name accepted) is honoured and keeps training.
    placement = place(nodes, services_host="chifflot-2")
    assert placement.services == "chifflot-2.lille.grid5000.fr"
    assert "chifflot-2.lille.grid5000.fr" in placement.trainers
    with pytest.raises(ValueError, match=r"--services-host 'nova-1' is not in the reservation"):
        place(nodes, services_host="nova-1")


def test_inventory_has_the_playbook_groups_as_ansible_reads_them(tmp_path: Path) -> None:
    nodefile = write(tmp_path, "nodes", NODEFILE)
    props = write(tmp_path, "props", RESOURCES)
    placement = placement_from_oar(nodefile, resource_properties=props)
    text = render_inventory(placement, ConnectionOptions(proxy_jump="jdoe@access.grid5000.fr"))
    assert "# chifflot-1.lille.grid5000.fr: trainer (gpu_count=2 in " in text
    path = write(tmp_path, "inventory.yml", text)
    manager = InventoryManager(loader=DataLoader(), sources=[str(path)])
    for group in ("monetdb", "elasticsearch", "kibana", "collector"):
        assert [h.name for h in manager.get_hosts(group)] == ["chiclet-3.lille.grid5000.fr"]
    # chifflot-2 is not in the properties file: the cluster list decides for it.
    assert [h.name for h in manager.get_hosts("trainers")] == ["chifflot-1.lille.grid5000.fr",
                                                                "chifflot-2.lille.grid5000.fr"]
    host = manager.get_host("chifflot-1.lille.grid5000.fr")
    assert host.vars["trainer_gpu_ids"] == [0, 1]
    assert "trainer_gpu_ids" not in manager.get_host("chifflot-2.lille.grid5000.fr").vars
    all_vars = manager.groups["all"].get_vars()
    assert all_vars["ansible_ssh_common_args"] == "-o ProxyJump=jdoe@access.grid5000.fr"
    assert all_vars["ansible_user"] == "root"


def test_standard_environment_is_reached_as_root_after_the_sudo_g5k_grant(tmp_path: Path,
                                                                          capsys: pytest.CaptureFixture[str]) -> None:
    # The documented pattern: sudo-g5k once (grant_root_g5k.yml authorises your key for root), then root over SSH;
    # `ansible_become_exe: sudo-g5k` is documented nowhere and is not generated.
    placement = place(classify(parse_nodefile(NODEFILE)))
    inventory = inventory_dict(placement, ConnectionOptions(remote_user="jdoe"))
    assert inventory["all"]["vars"]["ansible_user"] == "jdoe" and "ansible_become_exe" not in inventory["all"]["vars"]
    nodefile = write(tmp_path, "nodes", NODEFILE)
    out = tmp_path / "inventory.yml"
    assert main(["deploy", "--oar-nodefile", str(nodefile), "--user", "jdoe", "--sudo-g5k", "--show-inventory",
                 "--inventory-out", str(out)]) == 0
    generated = yaml.safe_load(out.read_text())["all"]["vars"]
    assert generated["ansible_user"] == "root" and "ansible_become_exe" not in generated
    playbook = yaml.safe_load((Path(__file__).resolve().parents[2] / "ansible/grant_root_g5k.yml").read_text())
    assert "sudo-g5k tee -a /root/.ssh/authorized_keys" in playbook[0]["tasks"][0]["ansible.builtin.shell"]["cmd"]


def test_oarstat_output_is_refused_as_a_gpu_source() -> None:
    # Shape of `oarstat -fJ` (OAR 2.5 OAR::Stat::get_job_data): jobs keyed by id, host names, no GPU property.
    document = {"4242": {"Job_Id": 4242, "state": "Running", "types": ["deploy"], "assigned_resources": [101, 102],
                         "assigned_network_address": ["chifflot-1.lille.grid5000.fr"], "queue": "default"}}
    with pytest.raises(ValueError, match=r"oarstat.json: this is `oarstat -fJ` output .* `oarnodes -J HOST"):
        parse_nodes_json(json.dumps(document), "oarstat.json")


def test_cli_show_inventory_and_clean_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    nodefile = write(tmp_path, "nodes", NODEFILE)
    out = tmp_path / "generated.yml"
    assert main(["deploy", "--oar-nodefile", str(nodefile), "--gpu-cluster", "chiclet", "--services-host",
                 "chiclet-3", "--show-inventory", "--inventory-out", str(out)]) == 0
    captured = capsys.readouterr()
    document = yaml.safe_load(out.read_text())
    assert set(document["all"]["children"]["trainers"]["hosts"]) == {
        "chifflot-1.lille.grid5000.fr", "chifflot-2.lille.grid5000.fr", "chiclet-3.lille.grid5000.fr",
        "chiclet-4.lille.grid5000.fr"}
    assert "chiclet-3.lille.grid5000.fr: services (cluster chiclet is a GPU cluster)" in captured.out

    empty = write(tmp_path, "empty", "")
    assert main(["deploy", "--oar-nodefile", str(empty), "--show-inventory"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"pinnprov deploy: error: {empty}: lists no host")

    assert main(["deploy", "--oar-nodefile", str(tmp_path / "missing"), "--show-inventory"]) == 2
    assert "missing: no such file" in capsys.readouterr().err


def test_cli_without_any_host_source_says_what_to_give(monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("OAR_NODEFILE", raising=False)
    monkeypatch.delenv("OAR_FILE_NODES", raising=False)
    assert main(["deploy", "--show-inventory"]) == 2
    assert "give --inventory FILE or --oar-nodefile FILE" in capsys.readouterr().err


def test_cli_reads_the_job_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("OAR_NODEFILE", str(write(tmp_path, "nodes", NODEFILE)))
    monkeypatch.setenv("OAR_RESOURCE_PROPERTIES_FILE", str(write(tmp_path, "props", RESOURCES)))
    monkeypatch.setenv("OAR_JOB_ID", "4242")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert main(["deploy", "--show-inventory"]) == 0
    written = tmp_path / "cache" / "pinnprov" / "inventory-oar-4242.yml"
    assert "trainer_gpu_ids" in written.read_text()
    assert "gpu_count=2 in " in capsys.readouterr().err
