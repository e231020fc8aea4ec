"""Kibana connectors as code: one JSON file per connector (kibana/connectors/), secrets from the environment.

A file holds what Kibana's create-connector API takes (`POST /api/actions/connector/{id}`: name,
connector_type_id, config, secrets) plus its fixed `id`. Values may be `${ENV_VAR}` references, expanded
when the connector is applied, so no secret lives in the repository. A connector whose variables are not
all set is skipped (and rule actions using it are left out), so a deployment without a webhook still gets
the server-log notifications. Applying twice is harmless: an existing id (409) is updated with PUT, which
takes name, config and secrets only.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pinnprov.kibana import connectors_dir

CREATE_KEYS = ("name", "connector_type_id", "config", "secrets")
UPDATE_KEYS = ("name", "config", "secrets")
ENV_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclass(frozen=True)
class Connector:
    id: str
    body: dict[str, Any]  # the file minus `id`, `${VAR}` unexpanded
    file: str

    @property
    def name(self) -> str:
        return str(self.body.get("name", ""))

    def variables(self) -> list[str]:
        return sorted(set(ENV_REFERENCE.findall(json.dumps(self.body))))

    def expanded(self, env: Mapping[str, str]) -> dict[str, Any]:
        """The body with every `${VAR}` replaced (KeyError naming the first missing variable)."""

        def expand(node: Any) -> Any:
            if isinstance(node, str):
                return ENV_REFERENCE.sub(lambda match: env[match.group(1)], node)
            if isinstance(node, dict):
                return {key: expand(value) for key, value in node.items()}
            if isinstance(node, list):
                return [expand(value) for value in node]
            return node

        return dict(expand(self.body))


@dataclass
class Applied:
    """What `apply_connectors` did: outcomes for the report, and the ids rules may use."""

    outcomes: list[Any] = field(default_factory=list)
    available: set[str] = field(default_factory=set)


def load_connectors(directory: Path | None = None) -> list[Connector]:
    connectors = []
    for path in sorted((directory or connectors_dir()).glob("*.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as error:
            raise ValueError(f"{path.name}: invalid JSON at line {error.lineno}: {error.msg}") from None
        body = {key: value for key, value in data.items() if key != "id"}
        connectors.append(Connector(str(data.get("id", "")), body, path.name))
    return connectors


def apply_connectors(client: Any, directory: Path | None = None, env: Mapping[str, str] | None = None) -> Applied:
    """Create (or update) every connector whose environment variables are set; skip the others, saying why."""
    from pinnprov.kibana.importer import Outcome, _message

    env = os.environ if env is None else env
    applied = Applied()
    for connector in load_connectors(directory):
        missing = [name for name in connector.variables() if not env.get(name)]
        if missing:
            applied.outcomes.append(Outcome("connector", connector.id, connector.name, True,
                                            f"skipped: set {', '.join(missing)} to use it"))
            continue
        body = connector.expanded(env)
        create = {key: body[key] for key in CREATE_KEYS if key in body}
        status, payload = client.request("POST", f"/api/actions/connector/{connector.id}", json.dumps(create).encode())
        action = "created"
        if status == 409:
            update = {key: body[key] for key in UPDATE_KEYS if key in body}
            status, payload = client.request("PUT", f"/api/actions/connector/{connector.id}",
                                             json.dumps(update).encode())
            action = "updated"
        ok = status in (200, 201)
        if ok:
            applied.available.add(connector.id)
        applied.outcomes.append(Outcome("connector", connector.id, connector.name, ok,
                                        action if ok else f"{status}: {_message(payload)}"))
    return applied
