"""The Elasticsearch indices pinnprov writes: their names and their index templates (explicit mappings).

Why in the bottom package: the collector's Elasticsearch sink writes these indices and installs the templates,
Kibana's saved objects read them; both must agree and neither may import the other. The template bodies are
package data (pinnprov/core/es_index_templates/<kind>.json, written with the default prefix `pinnprov-`);
`index_templates(prefix)` rewrites the patterns for deployments that choose another prefix. The fields that the
one schema of fields (pinnprov/core/fields.py) defines, every epoch field and the promoted hyperparameters of the runs
index, are added to the mappings from it; the files hold the rest (identity, times, nested maps).
"""

from __future__ import annotations

import copy
import json
from importlib import resources
from pathlib import Path
from typing import Any

from pinnprov.core.fields import EPOCH_FIELDS, ES_TYPES, HYPERPARAMETERS

DEFAULT_PREFIX = "pinnprov"
"""Index prefix the files are written with: indices are `<prefix>-epochs`, `<prefix>-runs`, ..."""

INDEX_KINDS: tuple[str, ...] = ("runs", "epochs", "adaptations", "alerts", "metrics")
"""One index per PROV record kind, in the order they are installed."""
DATA_STREAM_KINDS: frozenset[str] = frozenset({"metrics"})
"""Kinds written as a data stream (`create` only, ids from the data): metrics, a time series data stream."""


def index_templates_dir() -> Path:
    """The folder holding the template bodies (a real directory: the package is never zipped)."""
    return Path(str(resources.files("pinnprov.core") / "es_index_templates"))


def index_name(prefix: str, kind: str) -> str:
    """`pinnprov` + `epochs` -> `pinnprov-epochs`; the one place index names are spelled."""
    if kind not in INDEX_KINDS:
        raise ValueError(f"unknown index kind {kind!r} (choose from: {', '.join(INDEX_KINDS)})")
    return f"{prefix}-{kind}"


def validate_prefix(prefix: str) -> str:
    """Elasticsearch index names are lowercase, without spaces, and must not start with -, _ or +."""
    bad = set(prefix) & set(' "*\\<|,>/?#:')
    if not prefix or prefix != prefix.lower() or bad or prefix[0] in "-_+." or len(prefix) > 200:
        raise ValueError(f"index_prefix: {prefix!r} is not a valid Elasticsearch index prefix (lowercase, no spaces)")
    return prefix


def index_templates(prefix: str = DEFAULT_PREFIX, directory: Path | None = None) -> dict[str, dict[str, Any]]:
    """Composable index-template bodies by kind, with index patterns rewritten for `prefix`."""
    validate_prefix(prefix)
    folder = directory or index_templates_dir()
    templates: dict[str, dict[str, Any]] = {}
    for kind in INDEX_KINDS:
        path = folder / f"{kind}.json"
        body = copy.deepcopy(json.loads(path.read_text(encoding="utf-8")))
        body["index_patterns"] = [index_name(prefix, kind)]
        body["template"]["mappings"]["properties"].update(_schema_properties(kind))
        templates[kind] = body
    return templates


def _schema_properties(kind: str) -> dict[str, dict[str, str]]:
    """The mappings of the fields the one schema defines for index `kind` (name -> {"type": ...})."""
    if kind == "epochs":
        return {field.name: {"type": ES_TYPES[field.kind]} for field in EPOCH_FIELDS}
    if kind == "runs":
        return {hp.es_field: {"type": ES_TYPES[hp.kind]} for hp in HYPERPARAMETERS if hp.es_field}
    return {}
