"""Talks to Kibana: import the saved objects (one ndjson upload) and create/update the alerting rules.

Standard library HTTP only (a collector node needs no extra client). Every request carries `kbn-xsrf`,
which Kibana requires on writes. Credentials: PINNPROV_KIBANA_API_KEY or PINNPROV_KIBANA_USERNAME/PASSWORD
(or *_FILE), falling back to the PINNPROV_ES_* ones, since Kibana accepts Elasticsearch credentials.
The saved objects need Kibana 8.9 or newer (their migration versions); 9.x migrates them on import.
"""

from __future__ import annotations

import json
import os
import ssl
import urllib.error
import urllib.request
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pinnprov.core.elastic_connection import Credentials, normalise_url, resolve_credentials
from pinnprov.core.es_indices import DEFAULT_PREFIX, validate_prefix
from pinnprov.kibana import alert_rules_dir
from pinnprov.kibana.ndjson import build_ndjson

DEFAULT_KIBANA_URL = "http://127.0.0.1:5601"
RULE_CREATE_KEYS = ("name", "rule_type_id", "consumer", "enabled", "schedule", "tags", "params", "actions",
                    "notify_when", "throttle", "alert_delay", "flapping")
RULE_UPDATE_KEYS = ("name", "schedule", "tags", "params", "actions", "notify_when", "throttle", "alert_delay",
                    "flapping")  # PUT refuses rule_type_id, consumer, enabled
"""What a rule file may carry to Kibana (its create/update body schemas); `id` and `description` stay here."""


class KibanaError(ValueError):
    """Kibana unreachable or refusing a request; one line for the CLI."""


@dataclass(frozen=True)
class Outcome:
    type: str
    id: str
    title: str
    ok: bool
    detail: str = ""

    def line(self) -> str:
        mark = "ok    " if self.ok else "FAILED"
        return f"{mark} {self.type} {self.id} ({self.title}){': ' + self.detail if self.detail else ''}"


@dataclass
class Report:
    outcomes: list[Outcome] = field(default_factory=list)

    @property
    def failed(self) -> list[Outcome]:
        return [o for o in self.outcomes if not o.ok]


class KibanaClient:
    """Minimal Kibana REST client: JSON in, JSON out, errors as KibanaError with Kibana's own message."""

    def __init__(self, url: str | None = None, *, space: str | None = None, credentials: Credentials | None = None,
                 ca_certs: str | None = None, timeout_s: float = 30.0, env: Mapping[str, str] | None = None) -> None:
        env = os.environ if env is None else env
        base = normalise_url(url or env.get("PINNPROV_KIBANA_URL") or DEFAULT_KIBANA_URL, default_port=5601,
                             what="Kibana URL")
        if space:
            if not all(c.isalnum() or c in "-_" for c in space):
                raise ValueError(f"--space: {space!r} is not a Kibana space id")
            base = f"{base}/s/{space}"
        self.base = base
        self.credentials = credentials or resolve_credentials("PINNPROV_KIBANA_", fallback_prefix="PINNPROV_ES_",
                                                              env=env)
        ca = ca_certs or env.get("PINNPROV_KIBANA_CA_CERTS") or env.get("PINNPROV_ES_CA_CERTS") or None
        if ca and not Path(ca).expanduser().is_file():
            raise ValueError(f"PINNPROV_KIBANA_CA_CERTS: {ca!r} is not a file")
        self.context = ssl.create_default_context(cafile=str(Path(ca).expanduser()) if ca else None)
        self.timeout_s = timeout_s

    def request(self, method: str, path: str, body: bytes | None = None,
                content_type: str = "application/json") -> tuple[int, Any]:
        """(status, parsed JSON body); HTTP errors are returned, unreachable Kibana raises KibanaError."""
        headers = {"kbn-xsrf": "pinnprov", "Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = content_type
        authorization = self.credentials.authorization_header()
        if authorization:
            headers["Authorization"] = authorization
        request = urllib.request.Request(f"{self.base}{path}", data=body, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s, context=self.context) as response:
                return response.status, _json(response.read())
        except urllib.error.HTTPError as error:
            status, payload = error.code, _json(error.read())
            if status == 401:
                raise KibanaError(f"Kibana at {self.base}: authentication failed (401); set PINNPROV_KIBANA_API_KEY "
                                  "or PINNPROV_KIBANA_USERNAME/PASSWORD") from None
            return status, payload
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            raise KibanaError(f"cannot reach Kibana at {self.base}: {reason}") from None


def _json(data: bytes) -> Any:
    try:
        return json.loads(data) if data else {}
    except json.JSONDecodeError:
        return {"message": data[:200].decode("utf-8", "replace")}


def _message(payload: Any) -> str:
    if isinstance(payload, dict):
        return str(payload.get("message") or payload.get("error") or payload)[:300]
    return str(payload)[:300]


def multipart(field_name: str, filename: str, data: bytes, content_type: str) -> tuple[bytes, str]:
    """A one-file multipart/form-data body and its Content-Type (what a browser upload sends)."""
    boundary = f"pinnprov-{uuid.uuid4().hex}"
    head = (
        f"--{boundary}\r\nContent-Disposition: form-data; name=\"{field_name}\"; filename=\"{filename}\"\r\n"
        f"Content-Type: {content_type}\r\n\r\n"
    ).encode()
    return head + data + f"\r\n--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def _failure(error: dict[str, Any]) -> str:
    detail = error.get("error", {})
    kind = str(detail.get("type", "unknown"))
    if kind == "missing_references":
        refs = ", ".join(f"{r.get('type')} {r.get('id')}" for r in detail.get("references", []))
        return f"missing references: {refs}"
    message = detail.get("message") or detail.get("reason") or ""
    return f"{kind}{': ' + str(message) if message else ''}"


def import_saved_objects(client: KibanaClient, directory: Path | None = None,
                         prefix: str = DEFAULT_PREFIX) -> Report:
    """POST /api/saved_objects/_import?overwrite=true with the folder as ndjson; one outcome per object."""
    ndjson = build_ndjson(directory, validate_prefix(prefix))
    body, content_type = multipart("file", "pinnprov.ndjson", ndjson, "application/ndjson")
    status, payload = client.request("POST", "/api/saved_objects/_import?overwrite=true", body, content_type)
    if status != 200 or not isinstance(payload, dict):
        raise KibanaError(f"saved-objects import refused ({status}): {_message(payload)}")
    report = Report()
    for result in payload.get("successResults", []):
        title = str(result.get("meta", {}).get("title", ""))
        report.outcomes.append(Outcome(str(result.get("type")), str(result.get("id")), title, True))
    for error in payload.get("errors", []):
        title = str(error.get("title") or error.get("meta", {}).get("title", ""))
        report.outcomes.append(Outcome(str(error.get("type")), str(error.get("id")), title, False, _failure(error)))
    return report


def load_rules(directory: Path | None = None, prefix: str = DEFAULT_PREFIX) -> list[dict[str, Any]]:
    """Rule definitions from the folder, with index names rewritten for `prefix`."""
    validate_prefix(prefix)
    rules = []
    for path in sorted((directory or alert_rules_dir()).glob("*.json")):
        try:
            rule = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as error:
            raise ValueError(f"{path.name}: invalid JSON at line {error.lineno}: {error.msg}") from None
        indices = rule.get("params", {}).get("index", [])
        rule["params"]["index"] = [
            f"{prefix}-{name.removeprefix(DEFAULT_PREFIX + '-')}" if name.startswith(DEFAULT_PREFIX + "-") else name
            for name in indices
        ]
        rules.append(rule)
    return rules


def apply_alert_rules(client: KibanaClient, directory: Path | None = None, prefix: str = DEFAULT_PREFIX,
                      connectors: set[str] | None = None) -> Report:
    """Create each rule with its fixed id; if it exists (409), update it: running this twice is harmless.

    `connectors`: the connector ids that exist (from `apply_connectors`); actions using another one are left
    out and said so. None sends every action as written (Kibana refuses a rule whose connector is missing).
    """
    report = Report()
    for rule in load_rules(directory, prefix):
        rule_id, name = str(rule["id"]), str(rule.get("name", ""))
        left_out = 0
        if connectors is not None and "actions" in rule:
            kept = [action for action in rule["actions"] if action.get("id") in connectors]
            left_out = len(rule["actions"]) - len(kept)
            rule["actions"] = kept
        create = {key: rule[key] for key in RULE_CREATE_KEYS if key in rule}
        status, payload = client.request("POST", f"/api/alerting/rule/{rule_id}", json.dumps(create).encode())
        action = "created"
        if status == 409:
            update = {key: rule[key] for key in RULE_UPDATE_KEYS if key in rule}
            status, payload = client.request("PUT", f"/api/alerting/rule/{rule_id}", json.dumps(update).encode())
            action = "updated"
        ok = status in (200, 201)
        if ok and left_out:
            action += f" ({left_out} action(s) left out: their connector is not configured)"
        report.outcomes.append(Outcome("rule", rule_id, name, ok, action if ok else f"{status}: {_message(payload)}"))
    return report
