"""`pinnprov kibana import|alerts` against a loopback HTTP server that speaks Kibana's saved-objects import,
alerting-rule and connector APIs (multipart ndjson upload, kbn-xsrf, missing-reference checks, 409 on existing
ids, strict request-body keys), so the exact requests are checked and the failure reports are exercised.

The keys the fake accepts are Kibana's, copied from its route schemas (never from pinnprov/kibana/importer.py):
- create rule: x-pack/plugins/alerting/common/routes/rule/apis/create/schemas/v1.ts (createBodySchema,
  actionSchema, actionFrequencySchema); update rule: .../apis/update/schemas/v1.ts (updateBodySchema);
- create/update connector: x-pack/plugins/actions/common/routes/connector/apis/{create,update}/schemas/v1.ts;
- saved-objects import: the SavedObject fields Kibana exports and re-imports (id, type, attributes,
  references, coreMigrationVersion, typeMigrationVersion, migrationVersion, managed, namespaces, originId,
  version, created_at, updated_at, created_by, updated_by).
Like Kibana, a rule whose action names a connector that does not exist is refused.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import pytest

from pinnprov.cli import main
from pinnprov.kibana.connectors import load_connectors
from pinnprov.kibana.importer import KibanaClient, apply_alert_rules, import_saved_objects
from pinnprov.kibana.ndjson import build_ndjson

RULE_CREATE_KEYS = {"name", "rule_type_id", "enabled", "consumer", "tags", "throttle", "params", "schedule", "actions",
                    "notify_when", "alert_delay", "flapping"}
RULE_UPDATE_KEYS = {"name", "tags", "schedule", "throttle", "params", "actions", "notify_when", "alert_delay",
                    "flapping"}
RULE_REQUIRED = {"POST": {"name", "rule_type_id", "consumer", "schedule"}, "PUT": {"name", "schedule"}}
ACTION_KEYS = {"group", "id", "params", "frequency", "uuid", "alerts_filter", "use_alert_data_for_template"}
FREQUENCY_KEYS = {"summary", "notify_when", "throttle"}
NOTIFY_WHEN = {"onActionGroupChange", "onActiveAlert", "onThrottleInterval"}
CONNECTOR_KEYS = {"POST": {"name", "connector_type_id", "config", "secrets"}, "PUT": {"name", "config", "secrets"}}
SAVED_OBJECT_KEYS = {"id", "type", "attributes", "references", "coreMigrationVersion", "typeMigrationVersion",
                     "migrationVersion", "managed", "namespaces", "originId", "version", "created_at", "updated_at",
                     "created_by", "updated_by"}


def _bad_request(message: str) -> tuple[int, Any]:
    return 400, {"statusCode": 400, "error": "Bad Request", "message": message}


def _rule_body_problem(method: str, data: dict[str, Any]) -> str | None:
    """What @kbn/config-schema would say about a rule body, or None."""
    allowed = RULE_CREATE_KEYS if method == "POST" else RULE_UPDATE_KEYS
    extra = sorted(set(data) - allowed)
    if extra:
        return f"[request body.{extra[0]}]: definition for this key is missing"
    missing = sorted(RULE_REQUIRED[method] - set(data))
    if missing:
        return f"[request body.{missing[0]}]: expected value of type [string] but got [undefined]"
    if data.get("notify_when") is not None and data["notify_when"] not in NOTIFY_WHEN:
        return f"[request body.notify_when]: types that failed validation: {data['notify_when']}"
    for number, action in enumerate(data.get("actions", [])):
        extra = sorted(set(action) - ACTION_KEYS)
        if extra:
            return f"[request body.actions.{number}.{extra[0]}]: definition for this key is missing"
        frequency = action.get("frequency")
        if frequency is not None:
            if set(frequency) != FREQUENCY_KEYS:
                return f"[request body.actions.{number}.frequency]: expected keys {sorted(FREQUENCY_KEYS)}"
            if frequency["notify_when"] not in NOTIFY_WHEN:
                return f"[request body.actions.{number}.frequency.notify_when]: types that failed validation"
            if data.get("notify_when") is not None or data.get("throttle") is not None:
                return ("Cannot mix and match per-action frequency params when notify_when or throttle are "
                        "globally defined.")
    return None


def seed_connectors(fake: FakeKibana) -> None:
    """Kibana already has pinnprov's connectors (as after an earlier `pinnprov kibana alerts`)."""
    for connector in load_connectors():
        fake.connectors[connector.id] = {"connector_type_id": connector.body["connector_type_id"]}


class FakeKibana:
    def __init__(self, *, api_key: str | None = None, fail: dict[str, dict[str, Any]] | None = None) -> None:
        self.requests: list[tuple[str, str, dict[str, str], bytes]] = []
        self.objects: dict[tuple[str, str], dict[str, Any]] = {}
        self.rules: dict[str, dict[str, Any]] = {}
        self.connectors: dict[str, dict[str, Any]] = {}
        self.api_key, self.fail = api_key, fail or {}
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                return

            def reply(self, status: int, payload: Any) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def handle_any(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = {k.lower(): v for k, v in self.headers.items()}
                fake.requests.append((self.command, self.path, headers, body))
                if fake.api_key and headers.get("authorization") != f"ApiKey {fake.api_key}":
                    self.reply(401, {"statusCode": 401, "error": "Unauthorized", "message": "Unauthorized"})
                elif "kbn-xsrf" not in headers:
                    self.reply(400, {"statusCode": 400, "message": "Request must contain a kbn-xsrf header."})
                else:
                    path = urlsplit(self.path).path
                    path = path.split("/", 3)[3] if path.startswith("/s/") else path.lstrip("/")
                    self.reply(*fake.route(self.command, "/" + path, urlsplit(self.path).query, headers, body))

            do_GET = do_POST = do_PUT = handle_any

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def route(self, method: str, path: str, query: str, headers: dict[str, str], body: bytes) -> tuple[int, Any]:
        if path == "/api/saved_objects/_import" and method == "POST":
            return self.import_(query, headers, body)
        if path.startswith("/api/actions/connector/") and method in ("POST", "PUT"):
            return self.connector(method, path.rsplit("/", 1)[1], json.loads(body))
        if path.startswith("/api/alerting/rule/"):
            rule_id = path.rsplit("/", 1)[1]
            data = json.loads(body)
            problem = _rule_body_problem(method, data)
            if problem:
                return _bad_request(problem)
            missing = [a["id"] for a in data.get("actions", []) if a["id"] not in self.connectors]
            if missing:
                return 404, {"statusCode": 404, "error": "Not Found",
                             "message": f"Saved object [action/{missing[0]}] not found"}
            if method == "POST":
                if rule_id in self.rules:
                    return 409, {"statusCode": 409, "error": "Conflict",
                                 "message": f"Saved object [alert/{rule_id}] conflict"}
                self.rules[rule_id] = data
                return 200, {"id": rule_id, **data}
            if rule_id not in self.rules:
                return 404, {"statusCode": 404, "message": "not found"}
            self.rules[rule_id].update(data)
            return 200, {"id": rule_id, **self.rules[rule_id]}
        return 404, {"statusCode": 404, "message": f"no route {method} {path}"}

    def connector(self, method: str, connector_id: str, data: dict[str, Any]) -> tuple[int, Any]:
        extra = sorted(set(data) - CONNECTOR_KEYS[method])
        if extra:
            return _bad_request(f"[request body.{extra[0]}]: definition for this key is missing")
        if method == "POST":
            if connector_id in self.connectors:
                return 409, {"statusCode": 409, "error": "Conflict",
                             "message": f"Saved object [action/{connector_id}] conflict"}
            self.connectors[connector_id] = data
            return 200, {"id": connector_id, **{k: v for k, v in data.items() if k != "secrets"}}
        if connector_id not in self.connectors:
            return 404, {"statusCode": 404, "message": "not found"}
        self.connectors[connector_id].update(data)
        return 200, {"id": connector_id, "name": data["name"]}

    def import_(self, query: str, headers: dict[str, str], body: bytes) -> tuple[int, Any]:
        message = BytesParser(policy=HTTP).parsebytes(
            f"Content-Type: {headers['content-type']}\r\n\r\n".encode() + body
        )
        (part,) = list(message.iter_parts())
        if part.get_param("name", header="content-disposition") != "file":
            return 400, {"message": "file is required"}
        uploaded = [json.loads(line) for line in part.get_payload(decode=True).splitlines() if line.strip()]
        for obj in uploaded:
            extra = sorted(set(obj) - SAVED_OBJECT_KEYS)
            if extra:
                return _bad_request(f"[{obj.get('id')}]: unknown saved-object key {extra[0]}")
        known = {(o["type"], o["id"]) for o in uploaded} | set(self.objects)
        results, errors = [], []
        for obj in uploaded:
            missing = [r for r in obj["references"] if (r["type"], r["id"]) not in known]
            title = obj["attributes"].get("title", "")
            if obj["id"] in self.fail:
                errors.append({"id": obj["id"], "type": obj["type"], "title": title, "error": self.fail[obj["id"]]})
            elif missing:
                errors.append({"id": obj["id"], "type": obj["type"], "title": title, "error": {
                    "type": "missing_references", "references": [{"type": r["type"], "id": r["id"]} for r in missing]}})
            elif (obj["type"], obj["id"]) in self.objects and "overwrite=true" not in query:
                errors.append({"id": obj["id"], "type": obj["type"], "title": title, "error": {"type": "conflict"}})
            else:
                self.objects[(obj["type"], obj["id"])] = obj
                results.append({"type": obj["type"], "id": obj["id"], "meta": {"title": title}})
        return 200, {"success": not errors, "successCount": len(results), "successResults": results,
                     "errors": errors}

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def kibana() -> Iterator[Any]:
    made: list[FakeKibana] = []

    def make(**options: Any) -> FakeKibana:
        made.append(FakeKibana(**options))
        return made[-1]

    yield make
    for fake in made:
        fake.close()


def test_import_uploads_the_folder_as_ndjson_with_overwrite_and_xsrf(kibana: Any) -> None:
    fake = kibana()
    report = import_saved_objects(KibanaClient(fake.url, env={}))
    assert len(report.outcomes) == 15 and not report.failed
    ((method, path, headers, body),) = fake.requests
    assert (method, path) == ("POST", "/api/saved_objects/_import?overwrite=true")
    assert headers["kbn-xsrf"] and headers["content-type"].startswith("multipart/form-data; boundary=")
    assert b'filename="pinnprov.ndjson"' in body and build_ndjson() in body
    again = import_saved_objects(KibanaClient(fake.url, env={}))  # overwrite: the same ids again
    assert not again.failed


def test_partial_failures_are_reported_per_object_with_exit_status_1(kibana: Any, capsys: Any) -> None:
    fake = kibana(fail={"pinnprov-lens-epoch-time": {"type": "unsupported_type"}})
    assert main(["kibana", "import", "--kibana-url", fake.url, "--space", "team-a"]) == 1
    out = capsys.readouterr().out
    assert "FAILED lens pinnprov-lens-epoch-time (Epoch time per run): unsupported_type" in out
    assert "ok     dashboard pinnprov-dashboard-training (pinnprov: PINN training)" in out
    assert out.strip().endswith("14 ok, 1 failed")
    assert fake.requests[0][1].startswith("/s/team-a/api/saved_objects/_import")


def test_missing_references_name_the_missing_objects(kibana: Any, tmp_path: Any) -> None:
    import shutil

    from pinnprov.kibana import saved_objects_dir

    folder = tmp_path / "objects"
    shutil.copytree(saved_objects_dir(), folder)
    (folder / "pinnprov-epochs.json").unlink()  # the data view every chart reads
    report = import_saved_objects(KibanaClient(kibana().url, env={}), folder)
    failed = {o.id: o.detail for o in report.failed}
    assert failed["pinnprov-lens-total-loss"] == "missing references: index-pattern pinnprov-epochs"
    assert len(failed) == 7  # six charts and the dashboard's controls


def test_credentials_come_from_the_environment_and_401_is_one_clear_line(
    kibana: Any, capsys: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = kibana(api_key="a2V5")
    monkeypatch.setenv("PINNPROV_ES_API_KEY", "a2V5")  # Kibana falls back to the Elasticsearch credentials
    assert main(["kibana", "import", "--kibana-url", fake.url]) == 0
    monkeypatch.setenv("PINNPROV_KIBANA_API_KEY", "d3Jvbmc=")  # its own key wins, and is wrong
    assert main(["kibana", "import", "--kibana-url", fake.url]) == 2
    assert "authentication failed (401)" in capsys.readouterr().err


def test_alert_rules_are_created_then_updated_idempotently(kibana: Any) -> None:
    fake = kibana()
    seed_connectors(fake)
    client = KibanaClient(fake.url, env={})
    created = apply_alert_rules(client, prefix="g5k")
    assert [o.detail for o in created.outcomes] == ["created"] * 4
    rule = next(r for r in fake.rules.values() if r["name"].startswith("pinnprov: total loss"))
    assert rule["rule_type_id"] == ".index-threshold" and rule["params"]["index"] == ["g5k-epochs"]
    assert rule["params"]["filterKuery"] == "epoch >= 5000" and rule["params"]["threshold"] == [0.01]
    updated = apply_alert_rules(client, prefix="g5k")
    assert [o.detail for o in updated.outcomes] == ["updated"] * 4 and len(fake.rules) == 4
    puts = [r for r in fake.requests if r[0] == "PUT"]
    assert len(puts) == 4 and all("rule_type_id" not in json.loads(r[3]) for r in puts)


def test_alert_rule_refused_by_kibana_is_reported(kibana: Any, capsys: Any) -> None:
    fake = kibana()
    original = fake.route

    def refuse_slow(method: str, path: str, query: str, headers: dict[str, str], body: bytes) -> Any:
        if b"epochs slower" in body:
            return 400, {"statusCode": 400, "message": "params invalid: [threshold]: must be a number"}
        return original(method, path, query, headers, body)

    fake.route = refuse_slow  # type: ignore[method-assign]
    assert main(["kibana", "alerts", "--kibana-url", fake.url]) == 1
    out = capsys.readouterr().out
    assert "FAILED rule" in out and "400: params invalid: [threshold]: must be a number" in out


def test_unreachable_kibana_and_bad_space(capsys: Any) -> None:
    assert main(["kibana", "alerts", "--kibana-url", "http://127.0.0.1:1"]) == 2
    assert "cannot reach Kibana at http://127.0.0.1:1" in capsys.readouterr().err
    assert main(["kibana", "import", "--space", "../admin"]) == 2
    assert "is not a Kibana space id" in capsys.readouterr().err


def test_connectors_take_secrets_from_the_environment_and_rules_notify_through_them(kibana: Any) -> None:
    fake = kibana()
    client = KibanaClient(fake.url, env={})
    env = {"PINNPROV_KIBANA_WEBHOOK_URL": "https://hooks.example/pinn", "PINNPROV_KIBANA_WEBHOOK_USER": "pinn",
           "PINNPROV_KIBANA_WEBHOOK_PASSWORD": "s3cret"}
    from pinnprov.kibana.connectors import apply_connectors

    applied = apply_connectors(client, env=env)
    assert [o.detail for o in applied.outcomes] == ["created", "created"]
    webhook = next(c for c in fake.connectors.values() if c["connector_type_id"] == ".webhook")
    assert webhook["config"]["url"] == "https://hooks.example/pinn"
    assert webhook["secrets"] == {"user": "pinn", "password": "s3cret"}
    assert b"s3cret" not in b"".join(p.read_bytes() for p in _connector_files())  # the files hold references
    assert [o.detail for o in apply_connectors(client, env=env).outcomes] == ["updated", "updated"]
    puts = [json.loads(r[3]) for r in fake.requests if r[0] == "PUT" and "/connector/" in r[1]]
    assert all("connector_type_id" not in body for body in puts) and len(puts) == 2

    created = apply_alert_rules(client, connectors=applied.available)
    assert [o.detail for o in created.outcomes] == ["created"] * 4
    for rule in fake.rules.values():
        assert {a["group"] for a in rule["actions"]} == {"threshold met"}
        assert {a["id"] for a in rule["actions"]} == applied.available
        assert all(set(a["frequency"]) == {"summary", "notify_when", "throttle"} for a in rule["actions"])
    high = next(r for r in fake.rules.values() if r["name"].startswith("pinnprov: total loss"))
    assert high["actions"][0]["frequency"] == {"summary": False, "notify_when": "onThrottleInterval", "throttle": "1h"}


def _connector_files() -> list[Any]:
    from pinnprov.kibana import connectors_dir

    return sorted(connectors_dir().glob("*.json"))


def test_without_webhook_settings_its_connector_is_skipped_and_rules_keep_the_server_log(
        kibana: Any, capsys: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("PINNPROV_KIBANA_WEBHOOK_URL", "PINNPROV_KIBANA_WEBHOOK_USER", "PINNPROV_KIBANA_WEBHOOK_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    fake = kibana()
    assert main(["kibana", "alerts", "--kibana-url", fake.url]) == 0
    out = capsys.readouterr().out
    assert "connector 9c4d2a77-1e8b-4b35-a0f6-3d7e5c91b246 (pinnprov: webhook): skipped: set " \
           "PINNPROV_KIBANA_WEBHOOK_PASSWORD, PINNPROV_KIBANA_WEBHOOK_URL, PINNPROV_KIBANA_WEBHOOK_USER" in out
    assert "created (1 action(s) left out: their connector is not configured)" in out
    assert all([a["id"] for a in r["actions"]] == ["5b0f3c1e-6a43-4f2e-9d57-0c2f4a8e7b10"] for r in fake.rules.values())


def test_rule_level_notify_when_and_throttle_are_kept(kibana: Any, tmp_path: Any) -> None:
    import shutil

    from pinnprov.kibana import alert_rules_dir

    folder = tmp_path / "rules"
    shutil.copytree(alert_rules_dir(), folder)
    path = folder / "epoch-time-slow.json"
    rule = json.loads(path.read_text())
    rule.update(notify_when="onThrottleInterval", throttle="30m")
    for action in rule["actions"]:
        action.pop("frequency")  # the older, rule-level form: Kibana refuses mixing the two
    path.write_text(json.dumps(rule))
    fake = kibana()
    seed_connectors(fake)
    assert not apply_alert_rules(KibanaClient(fake.url, env={}), folder).failed
    stored = fake.rules[rule["id"]]
    assert (stored["notify_when"], stored["throttle"]) == ("onThrottleInterval", "30m")
    assert not apply_alert_rules(KibanaClient(fake.url, env={}), folder).failed  # and on update (PUT)
    put = json.loads(next(r[3] for r in fake.requests if r[0] == "PUT" and rule["id"] in r[1]))
    assert (put["notify_when"], put["throttle"]) == ("onThrottleInterval", "30m")
