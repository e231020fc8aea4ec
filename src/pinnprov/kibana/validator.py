"""Checks the Kibana assets against each other and against the index-template mappings, before any import.

What a broken import looks like in Kibana is an empty panel or a "could not find data view" days later, so
the checks run in the test suite: valid JSON, id = file name, unique ids, every reference resolves (by
type and id), every reference *name* a panel, layer or control uses exists, and every field a data view,
Lens column, dashboard control or alert rule uses exists in the mapping with a suitable type.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pinnprov.core.es_indices import DEFAULT_PREFIX, index_templates
from pinnprov.kibana import alert_rules_dir, saved_objects_dir
from pinnprov.kibana.ndjson import SavedObjectError, load_objects

NUMERIC = {"long", "integer", "short", "byte", "double", "float", "half_float", "scaled_float"}
RECORDS_FIELDS = {"___records___", "Records"}  # Lens' pseudo-field for "count of records"
NUMERIC_OPERATIONS = {"average", "sum", "min", "max", "median", "percentile", "standard_deviation", "range"}
CORE_MIGRATION_VERSION = "8.8.0"
"""coreMigrationVersion the objects are written for (the field exists since 8.8.0)."""
TYPE_MIGRATION_VERSIONS = {"index-pattern": "8.0.0", "lens": "8.9.0", "dashboard": "8.7.0"}
"""typeMigrationVersion per type: the last migration our attribute shapes already have. Without it Kibana
runs every migration of the type from 7.x on import and the Lens ones fail on `formBased` state."""


@dataclass(frozen=True)
class Problem:
    file: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}: {self.message}"


def _paths(mapping: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, str]]:
    for name, spec in mapping.get("properties", {}).items():
        yield f"{prefix}{name}", spec.get("type", "object")
        yield from _paths(spec, f"{prefix}{name}.")


def index_fields(templates_dir: Path | None = None) -> dict[str, dict[str, str]]:
    """Index name -> {field path: mapped type}, from the index templates (default prefix)."""
    fields: dict[str, dict[str, str]] = {}
    for body in index_templates(DEFAULT_PREFIX, templates_dir).values():
        mapped = dict(_paths(body["template"]["mappings"]))
        for pattern in body["index_patterns"]:
            fields[pattern] = mapped
    return fields


class _Checker:
    def __init__(self, objects: list[dict[str, Any]], fields: dict[str, dict[str, str]]) -> None:
        self.objects = objects
        self.fields = fields
        self.by_key = {(str(o["type"]), str(o["id"])): o for o in objects}
        self.problems: list[Problem] = []

    def add(self, obj: dict[str, Any], message: str) -> None:
        self.problems.append(Problem(str(obj.get("_file", obj.get("id"))), message))

    def json_attribute(self, obj: dict[str, Any], value: Any, what: str) -> Any:
        if not isinstance(value, str):
            return value
        try:
            return json.loads(value)
        except json.JSONDecodeError as error:
            self.add(obj, f"{what} is not valid JSON ({error.msg})")
            return None

    def data_view_fields(self, view_id: str) -> dict[str, str] | None:
        view = self.by_key.get(("index-pattern", view_id))
        return None if view is None else self.fields.get(str(view["attributes"].get("title")))

    def field(self, obj: dict[str, Any], fields: dict[str, str], name: str, allowed: set[str], where: str) -> None:
        kind = fields.get(name)
        if kind is None:
            self.add(obj, f"{where}: field {name!r} is not in the index mapping")
        elif kind not in allowed:
            self.add(obj, f"{where}: field {name!r} is {kind}, expected {' or '.join(sorted(allowed))}")

    def reference(self, obj: dict[str, Any], name: str) -> dict[str, Any] | None:
        references: list[dict[str, Any]] = obj.get("references", [])
        for ref in references:
            if ref.get("name") == name:
                return ref
        self.add(obj, f"no reference named {name!r}")
        return None

    # --- per type ---------------------------------------------------------------------------------
    def check_migration_versions(self, obj: dict[str, Any]) -> None:
        kind = str(obj["type"])
        if obj.get("coreMigrationVersion") != CORE_MIGRATION_VERSION:
            self.add(obj, f"coreMigrationVersion {obj.get('coreMigrationVersion')!r}: expected "
                          f"{CORE_MIGRATION_VERSION!r}")
        wanted = TYPE_MIGRATION_VERSIONS.get(kind)
        if wanted is not None and obj.get("typeMigrationVersion") != wanted:
            self.add(obj, f"typeMigrationVersion {obj.get('typeMigrationVersion')!r} of a {kind}: expected {wanted!r} "
                          "(missing or older, Kibana re-runs migrations these attributes do not need)")

    def check_common(self) -> None:
        seen: dict[str, str] = {}
        for obj in self.objects:
            self.check_migration_versions(obj)
            oid = str(obj["id"])
            if obj.get("_file") != f"{oid}.json":
                self.add(obj, f"file must be named by the object's id: {oid}.json")
            if oid in seen:
                self.add(obj, f"id {oid!r} is also used by {seen[oid]}")
            seen[oid] = str(obj.get("_file"))
            names = [ref.get("name") for ref in obj["references"]]
            if len(names) != len(set(names)):
                self.add(obj, "reference names are not unique")
            for ref in obj["references"]:
                if (str(ref.get("type")), str(ref.get("id"))) not in self.by_key:
                    self.add(obj, f"reference {ref.get('name')!r} -> {ref.get('type')} {ref.get('id')!r} does not "
                             "resolve to an object in this folder")

    def check_data_view(self, obj: dict[str, Any]) -> None:
        attributes = obj["attributes"]
        title = str(attributes.get("title"))
        fields = self.fields.get(title)
        if fields is None:
            self.add(obj, f"data view title {title!r} matches no index template ({', '.join(sorted(self.fields))})")
            return
        time_field = attributes.get("timeFieldName")
        if time_field:
            self.field(obj, fields, str(time_field), {"date", "date_nanos"}, "timeFieldName")
        formats = self.json_attribute(obj, attributes.get("fieldFormatMap", "{}"), "fieldFormatMap") or {}
        for name in formats:
            self.field(obj, fields, name, set(fields.values()), "fieldFormatMap")
        for key in ("fields", "runtimeFieldMap", "sourceFilters", "typeMeta"):
            self.json_attribute(obj, attributes.get(key, "{}"), key)

    def check_lens(self, obj: dict[str, Any]) -> None:
        state = obj["attributes"].get("state", {})
        layers = state.get("datasourceStates", {}).get("formBased", {}).get("layers", {})
        if not layers:
            self.add(obj, "no formBased datasource layers")
        columns_by_layer: dict[str, set[str]] = {}
        for layer_id, layer in layers.items():
            ref = self.reference(obj, f"indexpattern-datasource-layer-{layer_id}")
            fields = self.data_view_fields(str(ref["id"])) if ref else None
            columns = layer.get("columns", {})
            columns_by_layer[layer_id] = set(columns)
            order = list(layer.get("columnOrder", []))
            if sorted(order) != sorted(columns):
                self.add(obj, f"layer {layer_id}: columnOrder does not list exactly its columns")
            bucketed = [bool(columns.get(c, {}).get("isBucketed")) for c in order]
            if bucketed != sorted(bucketed, reverse=True):
                self.add(obj, f"layer {layer_id}: bucket columns must come before metric columns in columnOrder")
            if fields is None:
                continue
            for column_id, column in columns.items():
                self.check_column(obj, fields, f"layer {layer_id} column {column_id}", column)
        self.check_lens_visualization(obj, state.get("visualization", {}), columns_by_layer)

    def check_column(self, obj: dict[str, Any], fields: dict[str, str], where: str, column: dict[str, Any]) -> None:
        source = column.get("sourceField")
        operation = column.get("operationType")
        if source and source not in RECORDS_FIELDS:
            if operation in NUMERIC_OPERATIONS or (operation == "last_value" and column.get("dataType") == "number"):
                self.field(obj, fields, source, NUMERIC, where)
            elif operation == "date_histogram":
                self.field(obj, fields, source, {"date", "date_nanos"}, where)
            elif operation in ("terms", "unique_count", "last_value", "count"):
                self.field(obj, fields, source, set(fields.values()) - {"text", "object", "flattened"}, where)
        sort_field = column.get("params", {}).get("sortField")
        if sort_field:
            self.field(obj, fields, str(sort_field), {"date", "date_nanos"}, f"{where} sortField")

    def check_lens_visualization(self, obj: dict[str, Any], vis: dict[str, Any], columns: dict[str, set[str]]) -> None:
        layers: list[dict[str, Any]] = vis.get("layers", [vis])
        for layer in layers:
            layer_id = layer.get("layerId")
            if layer.get("layerType", "data") != "data":
                continue
            if layer_id not in columns:
                self.add(obj, f"visualization layer {layer_id!r} has no datasource layer")
                continue
            used = [*layer.get("accessors", []), *(c.get("columnId") for c in layer.get("columns", []))]
            used += [layer[key] for key in ("xAccessor", "splitAccessor", "metricAccessor") if layer.get(key)]
            for column_id in used:
                if column_id not in columns[layer_id]:
                    self.add(obj, f"visualization uses column {column_id!r} that layer {layer_id} does not define")

    def check_dashboard(self, obj: dict[str, Any]) -> None:
        attributes = obj["attributes"]
        panels = self.json_attribute(obj, attributes.get("panelsJSON", "[]"), "panelsJSON") or []
        indices = [str(p.get("panelIndex")) for p in panels]
        if len(indices) != len(set(indices)):
            self.add(obj, "panelIndex values are not unique")
        for panel in panels:
            grid = panel.get("gridData", {})
            if grid.get("x", 0) + grid.get("w", 0) > 48:
                self.add(obj, f"panel {panel.get('panelIndex')}: wider than the 48-column grid")
            ref_name = panel.get("panelRefName")
            if ref_name:
                names = {r.get("name") for r in obj["references"]}
                if f"{panel.get('panelIndex')}:{ref_name}" not in names and ref_name not in names:
                    self.add(obj, f"panel {panel.get('panelIndex')}: no reference named "
                             f"{panel.get('panelIndex')}:{ref_name}")
        self.json_attribute(obj, attributes.get("optionsJSON", "{}"), "optionsJSON")
        meta = attributes.get("kibanaSavedObjectMeta", {})
        self.json_attribute(obj, meta.get("searchSourceJSON", "{}"), "searchSourceJSON")
        group = attributes.get("controlGroupInput") or {}
        controls = self.json_attribute(obj, group.get("panelsJSON", "{}"), "controlGroupInput.panelsJSON") or {}
        for control_id, control in controls.items():
            suffix = {"optionsListControl": "optionsListDataView", "rangeSliderControl": "rangeSliderDataView"}
            kind = suffix.get(str(control.get("type")))
            if kind is None:
                continue
            ref = self.reference(obj, f"controlGroup_{control_id}:{kind}")
            fields = self.data_view_fields(str(ref["id"])) if ref else None
            field_name = str(control.get("explicitInput", {}).get("fieldName"))
            allowed = {"keyword"} if kind == "optionsListDataView" else NUMERIC
            if fields is not None:
                self.field(obj, fields, field_name, allowed, f"control {control_id}")

    def run(self) -> list[Problem]:
        self.check_common()
        checks = {"index-pattern": self.check_data_view, "lens": self.check_lens, "dashboard": self.check_dashboard}
        for obj in self.objects:
            check = checks.get(str(obj["type"]))
            if check is None:
                self.add(obj, f"type {obj['type']!r} is not one the validator knows how to check")
            else:
                check(obj)
        return self.problems


def validate_saved_objects(directory: Path | None = None, templates_dir: Path | None = None) -> list[Problem]:
    try:
        objects = load_objects(directory or saved_objects_dir())
    except SavedObjectError as error:
        file, _, message = str(error).partition(": ")
        return [Problem(file, message)]
    return _Checker(objects, index_fields(templates_dir)).run()


def validate_connectors(directory: Path | None = None) -> tuple[list[Problem], set[str]]:
    """Connector files: the create-connector body keys, UUID ids, known types; returns (problems, ids)."""
    from pinnprov.kibana.connectors import CREATE_KEYS, load_connectors

    problems: list[Problem] = []
    ids: set[str] = set()
    try:
        connectors = load_connectors(directory)
    except ValueError as error:
        file, _, message = str(error).partition(": ")
        return [Problem(file, message)], ids
    for connector in connectors:
        unknown = set(connector.body) - set(CREATE_KEYS)
        if unknown:
            problems.append(Problem(connector.file, f"keys the connector API does not accept: {sorted(unknown)}"))
        try:
            uuid.UUID(connector.id)
        except ValueError:
            problems.append(Problem(connector.file, f"id {connector.id!r} is not a UUID"))
        if connector.body.get("connector_type_id") not in (".server-log", ".webhook", ".email", ".slack"):
            problems.append(Problem(connector.file, f"connector_type_id {connector.body.get('connector_type_id')!r} "
                                                    "is not one pinnprov ships (.server-log, .webhook, ...)"))
        ids.add(connector.id)
    return problems, ids


def validate_alert_rules(directory: Path | None = None, templates_dir: Path | None = None,
                         connectors: Path | None = None) -> list[Problem]:
    """Kibana rule definitions: API keys only, UUID ids (required by Kibana < 8.17), existing fields, the
    .index-threshold parameter limits, actions on existing connectors with a frequency (kibana/rule_checks.py)."""
    from pinnprov.kibana.rule_checks import rule_problems

    fields_by_index = index_fields(templates_dir)
    problems, connector_ids = validate_connectors(connectors)
    seen: set[str] = set()
    for path in sorted((directory or alert_rules_dir()).glob("*.json")):
        try:
            rule = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as error:
            problems.append(Problem(path.name, f"invalid JSON at line {error.lineno}: {error.msg}"))
            continue
        problems.extend(Problem(path.name, m) for m in rule_problems(rule, fields_by_index, seen, connector_ids))
    return problems


def validate_all(saved_objects: Path | None = None, alert_rules: Path | None = None,
                 templates_dir: Path | None = None) -> list[Problem]:
    return validate_saved_objects(saved_objects, templates_dir) + validate_alert_rules(alert_rules, templates_dir)
