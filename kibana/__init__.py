"""Kibana and Elasticsearch assets as code: index templates, saved objects, alert rules, and their tools.

The JSON files are package data (one object per file, pretty-printed) so the collector, the CLI and the
Ansible roles all install exactly what the validator checked. Index names in the files use the default
prefix `pinnprov-`; `index_templates(prefix)` and the importer rewrite it for deployments that choose
another prefix.
"""

from __future__ import annotations

import copy
import json
from importlib import resources
from pathlib import Path
from typing import Any

DEFAULT_PREFIX = "pinnprov"
"""Index prefix the files are written with: indices are `<prefix>-epochs`, `<prefix>-runs`, ..."""

INDEX_KINDS: tuple[str, ...] = ("runs", "epochs", "adaptations", "alerts")
"""One index per PROV record kind, in the order they are installed."""


def package_dir() -> Path:
    """The folder holding the JSON assets (a real directory: the package is never zipped)."""
    return Path(str(resources.files(__name__)))


def saved_objects_dir() -> Path:
    return package_dir() / "saved_objects"


def index_templates_dir() -> Path:
    return package_dir() / "index_templates"


def alert_rules_dir() -> Path:
    return package_dir() / "alert_rules"


def connectors_dir() -> Path:
    return package_dir() / "connectors"


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
        body = json.loads(path.read_text(encoding="utf-8"))
        body = copy.deepcopy(body)
        body["index_patterns"] = [index_name(prefix, kind)]
        templates[kind] = body
    return templates
