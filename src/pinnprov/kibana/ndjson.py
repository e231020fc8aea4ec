"""Saved objects folder <-> the ndjson file Kibana's import API (and its UI) takes.

One object per file, named by its id. Objects are written dependencies first (data views, then
visualizations, then dashboards) so the file also imports cleanly by hand through Stack Management.
For a deployment with another index prefix, data-view titles (the index each one reads) are rewritten;
ids stay the same, so re-importing overwrites instead of duplicating.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pinnprov.core.es_indices import DEFAULT_PREFIX, validate_prefix
from pinnprov.kibana import saved_objects_dir

TYPE_ORDER = {"index-pattern": 0, "search": 1, "visualization": 2, "lens": 2, "map": 2, "dashboard": 3}
REQUIRED_KEYS = ("id", "type", "attributes", "references")


class SavedObjectError(ValueError):
    """A saved-object file that is not valid JSON or lacks a required key; the message names the file."""


def load_objects(directory: Path | None = None) -> list[dict[str, Any]]:
    """Every `*.json` in the folder, parsed and minimally checked, in dependency order."""
    folder = directory or saved_objects_dir()
    if not folder.is_dir():
        raise SavedObjectError(f"{folder}: not a directory")
    objects: list[dict[str, Any]] = []
    for path in sorted(folder.glob("*.json")):
        try:
            obj = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as error:
            raise SavedObjectError(f"{path.name}: invalid JSON at line {error.lineno}: {error.msg}") from None
        if not isinstance(obj, dict):
            raise SavedObjectError(f"{path.name}: expected a JSON object")
        missing = [key for key in REQUIRED_KEYS if key not in obj]
        if missing:
            raise SavedObjectError(f"{path.name}: missing {', '.join(missing)}")
        obj["_file"] = path.name
        objects.append(obj)
    if not objects:
        raise SavedObjectError(f"{folder}: no saved objects (*.json)")
    return sorted(objects, key=lambda o: (TYPE_ORDER.get(str(o["type"]), 9), str(o["id"])))


def with_prefix(obj: dict[str, Any], prefix: str) -> dict[str, Any]:
    """A copy of `obj` reading `<prefix>-*` indices instead of `pinnprov-*`."""
    validate_prefix(prefix)
    copy: dict[str, Any] = json.loads(json.dumps({key: value for key, value in obj.items() if not key.startswith("_")}))
    if prefix != DEFAULT_PREFIX and copy["type"] == "index-pattern":
        title = str(copy["attributes"].get("title", ""))
        if title.startswith(f"{DEFAULT_PREFIX}-"):
            copy["attributes"]["title"] = f"{prefix}-{title.removeprefix(DEFAULT_PREFIX + '-')}"
    return copy


def to_ndjson(objects: list[dict[str, Any]], prefix: str = DEFAULT_PREFIX) -> bytes:
    """One compact JSON object per line, newline-terminated (Kibana's export format)."""
    lines = [json.dumps(with_prefix(obj, prefix), ensure_ascii=False, separators=(",", ":")) for obj in objects]
    return ("\n".join(lines) + "\n").encode("utf-8")


def build_ndjson(directory: Path | None = None, prefix: str = DEFAULT_PREFIX) -> bytes:
    return to_ndjson(load_objects(directory), prefix)
