"""Kibana assets as code: saved objects, alert rules, and the tools that validate and import them.

The JSON files are package data (one object per file, pretty-printed) so the CLI and the Ansible roles install
exactly what the validator checked. Index names in the files use the default prefix `pinnprov-`; the importer
rewrites it for deployments that choose another prefix. The indices themselves (names, templates) are defined
in pinnprov/core/es_indices.py, shared with the collector's Elasticsearch sink.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def package_dir() -> Path:
    """The folder holding the JSON assets (a real directory: the package is never zipped)."""
    return Path(str(resources.files(__name__)))


def saved_objects_dir() -> Path:
    return package_dir() / "saved_objects"


def alert_rules_dir() -> Path:
    return package_dir() / "alert_rules"


def connectors_dir() -> Path:
    return package_dir() / "connectors"
