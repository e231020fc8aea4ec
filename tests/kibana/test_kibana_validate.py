"""The shipped Kibana assets validate, and the validator catches each kind of breakage in a copy of them."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pinnprov.cli import main
from pinnprov.kibana import alert_rules_dir, saved_objects_dir
from pinnprov.kibana.ndjson import build_ndjson, load_objects
from pinnprov.kibana.validator import validate_alert_rules, validate_saved_objects


def test_shipped_saved_objects_and_rules_are_valid() -> None:
    assert validate_saved_objects() == []
    assert validate_alert_rules() == []


def test_shipped_set_has_what_the_issue_asks_for() -> None:
    objects = {obj["id"]: obj for obj in load_objects()}
    views = {o["attributes"]["title"] for o in objects.values() if o["type"] == "index-pattern"}
    assert views == {"pinnprov-epochs", "pinnprov-runs", "pinnprov-adaptations", "pinnprov-alerts", "pinnprov-metrics"}
    system = objects["pinnprov-lens-system-cpu"]["attributes"]["state"]["datasourceStates"]["formBased"]["layers"]
    filters = {c["filter"]["query"] for layer in system.values() for c in layer["columns"].values() if "filter" in c}
    assert filters == {'metric.name : "process.cpu.utilization"', 'metric.name : "system.cpu.utilization"',
                       'metric.name : "hw.gpu.utilization"'}
    histogram = objects["pinnprov-lens-epoch-duration-histogram"]["attributes"]["state"]["visualization"]
    assert histogram["layers"][0]["seriesType"] == "bar"
    total = objects["pinnprov-lens-total-loss"]["attributes"]["state"]["visualization"]
    assert total["yLeftScale"] == "log" and total["layers"][0]["splitAccessor"] == "run"
    table = objects["pinnprov-lens-latest-loss"]["attributes"]["state"]["datasourceStates"]["formBased"]["layers"]
    fields = {c.get("sourceField") for layer in table.values() for c in layer["columns"].values()}
    assert {"run_name", "optimizer", "activation", "loss", "loss_bc", "loss_residual", "loss_data",
            "elapsed_s"} <= fields
    dashboard = objects["pinnprov-dashboard-training"]
    controls = json.loads(dashboard["attributes"]["controlGroupInput"]["panelsJSON"])
    assert {c["explicitInput"]["fieldName"] for c in controls.values()} == {"experiment", "run_name"}
    assert all(c["type"] == "optionsListControl" for c in controls.values())
    lens_refs = {r["id"] for r in dashboard["references"] if r["type"] == "lens"}
    assert lens_refs == {oid for oid, o in objects.items() if o["type"] == "lens"}


def test_files_are_pretty_json_named_by_id() -> None:
    for path in saved_objects_dir().glob("*.json"):
        text = path.read_text()
        obj = json.loads(text)
        assert path.stem == obj["id"]
        assert text == json.dumps(obj, indent=2, ensure_ascii=False) + "\n", f"{path.name} is not pretty-printed"


@pytest.fixture
def copy(tmp_path: Path) -> Callable[[str, Callable[[dict[str, Any]], None]], Path]:
    """Copy the shipped objects, apply `change` to one of them, return the folder."""

    def make(object_id: str, change: Callable[[dict[str, Any]], None]) -> Path:
        folder = tmp_path / "objects"
        shutil.copytree(saved_objects_dir(), folder)
        path = folder / f"{object_id}.json"
        obj = json.loads(path.read_text())
        change(obj)
        path.write_text(json.dumps(obj, indent=2))
        return folder

    return make


def _lens_column(obj: dict[str, Any], column: str) -> dict[str, Any]:
    return obj["attributes"]["state"]["datasourceStates"]["formBased"]["layers"]["layer-epochs"]["columns"][column]


def _set_dashboard_ref(obj: dict[str, Any]) -> None:
    obj["references"][0]["id"] = "pinnprov-lens-missing"


@pytest.mark.parametrize(
    ("object_id", "change", "message"),
    [
        ("pinnprov-lens-total-loss", lambda o: _lens_column(o, "loss").update(sourceField="loss_total"),
         "field 'loss_total' is not in the index mapping"),
        ("pinnprov-lens-total-loss", lambda o: _lens_column(o, "loss").update(sourceField="run_name"),
         "field 'run_name' is keyword, expected"),
        ("pinnprov-lens-latest-loss", lambda o: _lens_column(o, "loss")["params"].update(sortField="epoch"),
         "sortField: field 'epoch' is long, expected date"),
        ("pinnprov-dashboard-training", _set_dashboard_ref,
         "-> lens 'pinnprov-lens-missing' does not resolve"),
        ("pinnprov-lens-epoch-time", lambda o: o["references"][0].update(name="indexpattern-datasource-layer-x"),
         "no reference named 'indexpattern-datasource-layer-layer-epochs'"),
        ("pinnprov-lens-epoch-time", lambda o: o["attributes"]["state"]["visualization"]["layers"][0].update(
            accessors=["nope"]), "visualization uses column 'nope'"),
        ("pinnprov-epochs", lambda o: o["attributes"].update(title="pinnprov-epoch"),
         "data view title 'pinnprov-epoch' matches no index template"),
        ("pinnprov-epochs", lambda o: o["attributes"].update(timeFieldName="ended"),
         "timeFieldName: field 'ended' is not in the index mapping"),
        ("pinnprov-dashboard-training", lambda o: o["attributes"]["controlGroupInput"].update(
            panelsJSON=o["attributes"]["controlGroupInput"]["panelsJSON"].replace('"run_name"', '"loss"')),
         "control control-run: field 'loss' is double, expected keyword"),
        ("pinnprov-dashboard-training", lambda o: o["attributes"].update(panelsJSON="[{"),
         "panelsJSON is not valid JSON"),
        ("pinnprov-dashboard-training", lambda o: o.update(references=o["references"][1:]),
         "panel total: no reference named total:panel_total"),
        ("pinnprov-runs", lambda o: o.update(id="pinnprov-epochs"), "file must be named by the object's id"),
    ],
)
def test_each_kind_of_breakage_is_reported(copy: Any, object_id: str, change: Any, message: str) -> None:
    problems = [str(p) for p in validate_saved_objects(copy(object_id, change))]
    assert any(message in p for p in problems), problems


def test_duplicate_ids_and_invalid_json(tmp_path: Path) -> None:
    folder = tmp_path / "objects"
    shutil.copytree(saved_objects_dir(), folder)
    (folder / "pinnprov-epochs-copy.json").write_text((folder / "pinnprov-epochs.json").read_text())
    problems = [str(p) for p in validate_saved_objects(folder)]
    assert any("id 'pinnprov-epochs' is also used by" in p for p in problems), problems
    (folder / "broken.json").write_text("{\"id\": ")
    assert [str(p) for p in validate_saved_objects(folder)] == ["broken.json: invalid JSON at line 1: Expecting value"]


def _rule_copy(tmp_path: Path, change: Callable[[dict[str, Any]], None]) -> Path:
    folder = tmp_path / "rules"
    shutil.copytree(alert_rules_dir(), folder)
    path = folder / "total-loss-high.json"
    rule = json.loads(path.read_text())
    change(rule)
    path.write_text(json.dumps(rule))
    return folder


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda r: r["params"].update(aggField="run_name"), "aggField 'run_name' is keyword"),
        (lambda r: r["params"].update(filterKuery="epochs >= 5000"), "filterKuery uses field 'epochs'"),
        (lambda r: r["params"].update(index=["pinnprov-epoch"]), "index 'pinnprov-epoch' matches no index template"),
        (lambda r: r.update(id="total-loss-high"), "is not a UUID"),
        (lambda r: r.update(notes="x"), "keys the rule API does not accept: notes"),
        (lambda r: r["params"].pop("termSize"), "groupBy top needs termField and termSize"),
    ],
)
def test_rule_breakage_is_reported(tmp_path: Path, change: Any, message: str) -> None:
    problems = [str(p) for p in validate_alert_rules(_rule_copy(tmp_path, change))]
    assert any(message in p for p in problems), problems


def test_ndjson_rewrites_only_data_view_titles_for_another_prefix() -> None:
    lines = [json.loads(line) for line in build_ndjson(prefix="g5k").splitlines()]
    assert [o["type"] for o in lines][:4] == ["index-pattern"] * 4  # dependencies first
    assert lines[-1]["type"] == "dashboard"
    titles = sorted(o["attributes"]["title"] for o in lines if o["type"] == "index-pattern")
    assert titles == ["g5k-adaptations", "g5k-alerts", "g5k-epochs", "g5k-metrics", "g5k-runs"]
    assert {o["id"] for o in lines} == {o["id"] for o in load_objects()}  # same ids: re-import overwrites
    assert all("_file" not in o for o in lines)


def test_cli_validate_and_ndjson(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["kibana", "validate"]) == 0
    assert "ok: 15 saved objects and 4 alert rules" in capsys.readouterr().out
    out = tmp_path / "objects.ndjson"
    assert main(["kibana", "ndjson", "-o", str(out), "--index-prefix", "g5k"]) == 0
    assert len(out.read_bytes().splitlines()) == 15
    assert main(["kibana", "ndjson", "--index-prefix", "Bad Prefix"]) == 2
    assert "not a valid Elasticsearch index prefix" in capsys.readouterr().err


def _copy_with(tmp_path: Path, object_id: str, change: Callable[[dict[str, Any]], None]) -> Path:
    folder = tmp_path / "objects"
    shutil.copytree(saved_objects_dir(), folder)
    path = folder / f"{object_id}.json"
    obj = json.loads(path.read_text())
    change(obj)
    path.write_text(json.dumps(obj, indent=2))
    return folder


@pytest.mark.parametrize(
    ("object_id", "change", "message"),
    [
        ("pinnprov-lens-total-loss", lambda o: o.pop("typeMigrationVersion"), "typeMigrationVersion None of a lens"),
        ("pinnprov-lens-total-loss", lambda o: o.update(typeMigrationVersion="7.14.0"), "expected '8.9.0'"),
        ("pinnprov-dashboard-training", lambda o: o.pop("coreMigrationVersion"), "coreMigrationVersion None"),
        ("pinnprov-epochs", lambda o: o.update(typeMigrationVersion="7.11.0"), "of a index-pattern: expected '8.0.0'"),
    ],
)
def test_migration_versions_are_checked_per_type(tmp_path: Path, object_id: str, change: Any, message: str) -> None:
    problems = [str(p) for p in validate_saved_objects(_copy_with(tmp_path, object_id, change))]
    assert any(message in p for p in problems), problems


def _first_action(rule: dict[str, Any]) -> dict[str, Any]:
    return rule["actions"][0]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda r: r["params"].update(aggType="median"), "aggType 'median': must be one of"),
        (lambda r: r["params"].update(termSize=1001), "termSize 1001: must be between 1 and 1000"),
        (lambda r: r["params"].update(thresholdComparator="=="), "thresholdComparator '=='"),
        (lambda r: r["params"].update(thresholdComparator="between"), "must be a list of 2 number(s) for 'between'"),
        (lambda r: r["params"].update(threshold=[]), "must be a list of 1 number(s)"),
        (lambda r: r["params"].update(timeWindowUnit="w"), "timeWindowUnit 'w'"),
        (lambda r: r["params"].update(groupBy="each"), "groupBy 'each': must be all or top"),
        (lambda r: r.update(actions=[]), "no actions: the rule would notify nobody"),
        (lambda r: _first_action(r).update(group="threshold_met"), "group 'threshold_met' is not an action group"),
        (lambda r: _first_action(r).update(id="11111111-2222-3333-4444-555555555555"), "is not one of the connector"),
        (lambda r: _first_action(r).pop("frequency"), "no frequency (summary, notify_when, throttle)"),
        (lambda r: _first_action(r)["frequency"].update(throttle=None), "onThrottleInterval needs a duration"),
        (lambda r: _first_action(r)["frequency"].update(notify_when="onActiveAlert"),
         "throttle is only used with notify_when onThrottleInterval"),
        (lambda r: r.update(notify_when="onActiveAlert"), "cannot be mixed"),
        (lambda r: _first_action(r).update(when="now"), "action 0: keys the rule API does not accept: when"),
    ],
)
def test_index_threshold_limits_and_actions_are_checked(tmp_path: Path, change: Any, message: str) -> None:
    problems = [str(p) for p in validate_alert_rules(_rule_copy(tmp_path, change))]
    assert any(message in p for p in problems), problems


def test_shipped_rules_notify_through_both_connectors() -> None:
    from pinnprov.kibana.connectors import load_connectors

    connectors = {c.body["connector_type_id"]: c.id for c in load_connectors()}
    assert set(connectors) == {".server-log", ".webhook"}
    for path in alert_rules_dir().glob("*.json"):
        rule = json.loads(path.read_text())
        assert {a["id"] for a in rule["actions"]} == set(connectors.values()), path.name
        assert all(a["group"] == "threshold met" and a["frequency"]["summary"] is False for a in rule["actions"])
