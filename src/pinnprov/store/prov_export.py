"""Export one run's provenance as a W3C PROV document (PROV-JSON or PROV-N) with the `prov` package.

The structure (which activities, entities, agents and relations exist) comes from the PROV core views, so
the export and SQL users see the same provenance; attribute values (losses, typed hyperparameter values,
times) come from the domain tables. Two namespaces: `pinnprov` for the vocabulary (types, attribute
names) and `ppid` for the identifiers of this store's records. Every read is ORDER BY'd, so the document (and the
blank ids PROV-JSON gives its relations) is the same for the same provenance in SQLite and MonetDB.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from prov.model import PROV, Namespace, ProvDocument

from pinnprov.core.fields import MEASURED_EPOCH_FIELDS
from pinnprov.store.prov_views import artifact_entity_id, epoch_entity_id, snapshot_entity_id

if TYPE_CHECKING:  # prov.model.records is the typed prov (3.x); at run time prov>=2.0.1 is enough
    from prov.identifier import QualifiedName
    from prov.model.records import AttributeValue

    from pinnprov.store.access import Store

    Attributes = dict[QualifiedName, AttributeValue]
    """A PROV record's attributes as `prov` accepts them."""

PINNPROV = Namespace("pinnprov", "https://pinnprov.dev/ns#")
PPID = Namespace("ppid", "https://pinnprov.dev/id/")
EXPORT_FORMATS = ("json", "provn")

_EPOCH_ATTRIBUTES = tuple(field.name for field in MEASURED_EPOCH_FIELDS)  # pinnprov/core/fields.py
_RUN_ATTRIBUTES = (
    "run_name",
    "experiment",
    "status",
    "epochs",
    "error",
    "last_epoch",
    "host",
    "device",
    "tensorflow_version",
    "planned_epochs",
)


def _time(seconds: float | None) -> dt.datetime | None:
    return None if seconds is None else dt.datetime.fromtimestamp(seconds, tz=dt.UTC)


def _type(name: str) -> QualifiedName:
    prefix, local = name.split(":", 1)
    return PROV[local] if prefix == "prov" else PINNPROV[local]


def _attrs(values: Mapping[str, AttributeValue | None]) -> Attributes:
    """pinnprov:<name> attributes, skipping NULLs and empty strings (PROV has no null)."""
    return {PINNPROV[key]: value for key, value in values.items() if value is not None and value != ""}


def _typed(text: str | None, value_type: str | None) -> str | int | float | bool:
    if text is None:
        return ""
    try:
        if value_type == "int":
            return int(text)
        if value_type == "float":
            return float(text)
        if value_type == "bool":
            return text == "true"
    except ValueError:
        pass
    return text


def _rows(store: Store, sql: str, run_id: str) -> list[tuple[Any, ...]]:
    return store.execute(sql, {"run_id": run_id}).rows


def build_document(store: Store, run_id: str, *, every: int | None = None) -> ProvDocument:
    """The PROV document of one run; `every` keeps only epochs divisible by it (plus those alerts cite)."""
    doc = ProvDocument()
    doc.add_namespace(PINNPROV)
    doc.add_namespace(PPID)
    run = store.execute(f"SELECT {', '.join(_RUN_ATTRIBUTES)} FROM run WHERE run_id = :run_id", {"run_id": run_id}).rows
    if not run:
        raise ValueError(f"unknown run {run_id!r}")
    run_values = dict(zip(_RUN_ATTRIBUTES, run[0], strict=True))
    summary = {
        f"summary.{name}": value
        for name, value in _rows(
            store, "SELECT name, value FROM run_summary WHERE run_id = :run_id ORDER BY name", run_id
        )
    }
    for activity_id, prov_type, label, started, ended in _rows(
        store,
        "SELECT activity_id, prov_type, label, started_at, ended_at FROM activity WHERE run_id = :run_id "
        "ORDER BY activity_id",
        run_id,
    ):
        activity_attributes: Attributes = {PROV["type"]: _type(prov_type), PROV["label"]: label}
        if prov_type in ("pinnprov:Training", "pinnprov:Ensemble"):  # the run row's own activity
            activity_attributes.update(_attrs({"run_id": run_id, **run_values, **summary}))
        doc.activity(PPID[activity_id], _time(started), _time(ended), activity_attributes)
    _add_adaptation_details(doc, store, run_id)
    hyper = {
        name: _typed(value, kind)
        for name, value, kind in _rows(
            store, 'SELECT "name", "value", value_type FROM run_hyperparameter WHERE run_id = :run_id', run_id
        )
    }
    cited = {epoch for (epoch,) in _rows(store, 'SELECT "epoch" FROM alert WHERE run_id = :run_id', run_id)}
    products = _products(store, run_id)
    epochs = {
        epoch_entity_id(run_id, row[0]): row
        for row in _rows(
            store,
            f'SELECT "epoch", {", ".join(_EPOCH_ATTRIBUTES)} FROM epoch_metric WHERE run_id = :run_id ORDER BY "epoch"',
            run_id,
        )
        if not every or row[0] % every == 0 or row[0] in cited
    }
    for entity_id, prov_type, label, value in _rows(
        store, "SELECT entity_id, prov_type, label, value FROM entity WHERE run_id = :run_id ORDER BY entity_id", run_id
    ):
        attributes: Attributes = {PROV["type"]: _type(prov_type), PROV["label"]: label}
        if prov_type == "pinnprov:EpochMetrics":
            if entity_id not in epochs:
                continue
            row = epochs[entity_id]
            attributes.update(_attrs({"epoch": row[0], **dict(zip(_EPOCH_ATTRIBUTES, row[1:], strict=True))}))
        elif prov_type == "pinnprov:Hyperparameter":
            attributes[PROV["value"]] = hyper.get(label, value)
        elif prov_type == "pinnprov:Dataset":
            attributes.update(_attrs(_dataset(store, run_id)))
        elif prov_type in products:
            attributes.update(_attrs(products[prov_type].get(entity_id, {})))
        elif value:
            attributes[PINNPROV["detail"]] = value
        doc.entity(PPID[entity_id], attributes)
    _add_relations(doc, store, run_id, set(epochs))
    return doc


_ARTIFACT_ATTRIBUTES = ("role", "uri", "sha256", "size_bytes", "media_type", "epoch")
_SNAPSHOT_ATTRIBUTES = ("kind", "epoch", "nx", "nz", "x_min", "x_max", "z_min", "z_max", "sha256")


def _products(store: Store, run_id: str) -> dict[str, dict[str, dict[str, Any]]]:
    """Attributes of the run's files and model snapshots by entity id (schema version 6; the grid values stay in
    the store: an export is a description, `pinnprov query` or the UI give the values)."""
    columns = ", ".join(f'"{name}"' for name in _ARTIFACT_ATTRIBUTES)
    artifacts = {
        artifact_entity_id(row[0]): dict(zip(_ARTIFACT_ATTRIBUTES, row[1:], strict=True))
        for row in _rows(store, f"SELECT artifact_id, {columns} FROM artifact WHERE run_id = :run_id", run_id)
    }
    columns = ", ".join(f'"{name}"' for name in _SNAPSHOT_ATTRIBUTES)
    snapshots = {
        snapshot_entity_id(row[0]): dict(zip(_SNAPSHOT_ATTRIBUTES, row[1:], strict=True))
        for row in _rows(store, f"SELECT snapshot_id, {columns} FROM model_snapshot WHERE run_id = :run_id", run_id)
    }
    return {"pinnprov:Artifact": artifacts, "pinnprov:ModelSnapshot": snapshots}


def _dataset(store: Store, run_id: str) -> dict[str, Any]:
    columns = ("dataset_name", "dataset_sha256", "dataset_picks", "dataset_source")
    rows = _rows(store, f"SELECT {', '.join(columns)} FROM run WHERE run_id = :run_id", run_id)
    return {name.removeprefix("dataset_"): value for name, value in zip(columns, rows[0], strict=True)}


def _add_adaptation_details(doc: ProvDocument, store: Store, run_id: str) -> None:
    """Adaptation activities carry what changed, from and to what, who decided and why."""
    details = _rows(
        store,
        'SELECT adaptation_id, "epoch", parameter, old_value, new_value, agent, reason, command_id '
        "FROM adaptation WHERE run_id = :run_id",
        run_id,
    )
    by_id = {f"adaptation/{row[0]}": row for row in details}
    for record in doc.get_records():
        key = record.identifier.localpart if record.identifier is not None else None
        if key in by_id:
            _, epoch, parameter, old, new, agent, reason, command = by_id[key]
            record.add_attributes(
                _attrs(
                    {
                        "epoch": epoch,
                        "parameter": parameter,
                        "old_value": old,
                        "new_value": new,
                        "agent": agent,
                        "reason": reason,
                        "command_id": command,
                    }
                )
            )


def _add_relations(doc: ProvDocument, store: Store, run_id: str, epochs: set[str]) -> None:
    agents = _rows(
        store,
        "SELECT agent_id, prov_type, label FROM agent WHERE agent_id IN ("
        "SELECT agent_id FROM was_associated_with WHERE run_id = :run_id UNION "
        "SELECT agent_id FROM was_attributed_to WHERE run_id = :run_id) ORDER BY agent_id",
        run_id,
    )
    for agent_id, prov_type, label in agents:
        doc.agent(PPID[agent_id], {PROV["type"]: _type(prov_type), PROV["label"]: label})
    for activity_id, entity_id, role, at in _rows(
        store, "SELECT activity_id, entity_id, prov_role, at FROM used WHERE run_id = :run_id ORDER BY 1, 2, 3", run_id
    ):
        doc.used(PPID[activity_id], PPID[entity_id], _time(at), other_attributes={PROV["role"]: PINNPROV[role]})
    for entity_id, activity_id, at in _rows(
        store, "SELECT entity_id, activity_id, at FROM was_generated_by WHERE run_id = :run_id ORDER BY 1, 2", run_id
    ):
        if entity_id in epochs or not entity_id.startswith("epoch/"):  # epochs only those exported
            doc.wasGeneratedBy(PPID[entity_id], PPID[activity_id], _time(at))
    for activity_id, agent_id, role in _rows(
        store,
        "SELECT activity_id, agent_id, prov_role FROM was_associated_with WHERE run_id = :run_id ORDER BY 1, 2, 3",
        run_id,
    ):
        doc.wasAssociatedWith(PPID[activity_id], PPID[agent_id], other_attributes={PROV["role"]: PINNPROV[role]})
    for informed, informant in _rows(
        store, "SELECT informed_id, informant_id FROM was_informed_by WHERE run_id = :run_id ORDER BY 1, 2", run_id
    ):
        doc.wasInformedBy(PPID[informed], PPID[informant])
    for generated, used in _rows(
        store,
        "SELECT generated_entity_id, used_entity_id FROM was_derived_from WHERE run_id = :run_id ORDER BY 1, 2",
        run_id,
    ):
        doc.wasDerivedFrom(PPID[generated], PPID[used])
    for entity_id, agent_id in _rows(
        store, "SELECT entity_id, agent_id FROM was_attributed_to WHERE run_id = :run_id ORDER BY 1, 2", run_id
    ):
        doc.wasAttributedTo(PPID[entity_id], PPID[agent_id])


def serialize(doc: ProvDocument, fmt: str) -> str:
    """PROV-JSON (indented) or PROV-N text."""
    if fmt == "json":
        text = doc.serialize(format="json", indent=2)
        assert text is not None  # serialize() returns the text when it is given no destination
        return text
    if fmt == "provn":
        return doc.get_provn()
    raise ValueError(f"unknown PROV format {fmt!r} (choose from: {', '.join(EXPORT_FORMATS)})")


def export_run(store: Store, run_id: str, fmt: str, *, every: int | None = None) -> str:
    return serialize(build_document(store, run_id, every=every), fmt)
