"""W3C PROV export of a run: round-trips through prov's own PROV-JSON and PROV-N parsers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from prov.model import PROV, ProvDocument
from prov_builders import request_for, sample_run, write_store

from pinnprov.cli import main
from pinnprov.store.access import open_store
from pinnprov.store.prov_export import PINNPROV, PPID, build_document, export_run
from pinnprov.store.records import AlertRecord
from pinnprov.store.sqlite_sink import SqliteSink

RUN = sample_run(1, epochs=5)


@pytest.fixture(scope="module")
def store_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("prov") / "prov.db"
    write_store(path, request_for(RUN, sample_run(2, epochs=2)))
    sink = SqliteSink(path)
    alert = AlertRecord(
        f"loss-high:{RUN.run_id}:3", "loss-high", RUN.run_id, 3, 1.7e9, "loss", 13.5, 10.0, "loss above 10", "notify"
    )
    assert sink.export([alert]).ok
    sink.shutdown()
    return path


def _document(path: Path, **kwargs: object) -> ProvDocument:
    with open_store(str(path)) as store:
        return build_document(store, RUN.run_id, **kwargs)


def _records(doc: ProvDocument, kind: str) -> list:
    return [record for record in doc.get_records() if record.get_type() == PROV[kind]]


def test_document_content(store_path: Path) -> None:
    doc = _document(store_path)
    rid = RUN.run_id
    (training,) = [a for a in _records(doc, "Activity") if a.identifier == PPID[f"run/{rid}"]]
    assert PINNPROV["Training"] in training.get_attribute(PROV["type"])
    assert training.get_attribute(PINNPROV["status"]) == {"completed"}
    assert training.get_attribute(PINNPROV["summary.r2"]) == {0.5}
    entities = {str(e.identifier.localpart): e for e in _records(doc, "Entity")}
    epoch3 = entities[f"epoch/{rid}/3"]
    attrs = RUN.epochs[3]
    assert epoch3.get_attribute(PINNPROV["loss"]) == {attrs["pinn.loss.total"]}
    assert epoch3.get_attribute(PINNPROV["loss_residual"]) == {attrs["pinn.loss.residual"]}
    assert epoch3.get_attribute(PINNPROV["learning_rate"]) == {attrs["pinn.learning_rate"]}
    assert entities[f"hp/{rid}/lr.initial"].get_attribute(PROV["value"]) == {1e-3}
    assert entities[f"hp/{rid}/use_bias"].get_attribute(PROV["value"]) == {True}
    assert entities["dataset/" + "ab" * 32].get_attribute(PINNPROV["picks"]) == {100}
    assert f"alert/loss-high:{rid}:3" in entities
    assert not any(rid_other in key for key in entities for rid_other in [sample_run(2).run_id])  # one run only
    assert len(_records(doc, "Generation")) == 5 and len(_records(doc, "Usage")) == 11
    agents = {str(a.identifier.localpart) for a in _records(doc, "Agent")}
    assert agents == {"agent/user:alice", "agent/host:node-1", "agent/process:node-1:4242", "agent/rule:loss-high"}
    (informed,) = _records(doc, "Communication")
    assert str(informed.get_attribute(PROV["informant"]).pop().localpart) == f"run/{rid}"
    (derivation,) = _records(doc, "Derivation")
    assert str(derivation.get_attribute(PROV["usedEntity"]).pop().localpart) == f"epoch/{rid}/3"
    associations = {
        (
            str(r.get_attribute(PROV["activity"]).pop().localpart).split("/")[0],
            str(r.get_attribute(PROV["agent"]).pop().localpart),
        )
        for r in _records(doc, "Association")
    }
    assert ("adaptation", "agent/user:alice") in associations and ("run", "agent/process:node-1:4242") in associations


def test_json_round_trip(store_path: Path) -> None:
    doc = _document(store_path)
    with open_store(str(store_path)) as store:
        text = export_run(store, RUN.run_id, "json")
    assert json.loads(text)["prefix"]["pinnprov"] == "https://pinnprov.dev/ns#"
    assert ProvDocument.deserialize(content=text, format="json") == doc


def test_provn_round_trip(store_path: Path) -> None:
    doc = _document(store_path)
    with open_store(str(store_path)) as store:
        text = export_run(store, RUN.run_id, "provn")
    assert text.startswith("document") and "wasInformedBy(ppid:adaptation/" in text
    assert f"wasGeneratedBy(ppid:epoch/{RUN.run_id}/4, ppid:run/{RUN.run_id}" in text
    assert ProvDocument.deserialize(content=text, format="provn") == doc


def test_every_keeps_sampled_and_cited_epochs(store_path: Path) -> None:
    doc = _document(store_path, every=2)
    epochs = sorted(
        str(e.identifier.localpart).rsplit("/", 1)[1]
        for e in _records(doc, "Entity")
        if str(e.identifier.localpart).startswith("epoch/")
    )
    assert epochs == ["0", "2", "3", "4"]  # 3 stays: the alert was derived from it
    assert len(_records(doc, "Generation")) == 4


def test_cli_writes_a_file(store_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run.provn"
    assert main(["export-prov", "run-001", "--store", str(store_path), "--format", "provn", "--out", str(out)]) == 0
    assert ProvDocument.deserialize(source=str(out), format="provn") == _document(store_path)
    assert main(["export-prov", "nope", "--store", str(store_path)]) == 2
    assert "unknown run 'nope'" in capsys.readouterr().err
    assert not (tmp_path / "run.provn.tmp").exists()
