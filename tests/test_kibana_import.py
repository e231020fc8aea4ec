"""`pinnprov kibana import|alerts` against a loopback HTTP server that speaks Kibana's saved-objects import and
alerting-rule APIs (multipart ndjson upload, kbn-xsrf, missing-reference checks, 409 on existing rule ids,
strict request-body keys), so the exact requests are checked and the failure reports are exercised.
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

from kibana.importer import RULE_CREATE_KEYS, RULE_UPDATE_KEYS, KibanaClient, apply_alert_rules, import_saved_objects
from kibana.ndjson import build_ndjson
from pinnprov.cli import main


class FakeKibana:
    def __init__(self, *, api_key: str | None = None, fail: dict[str, dict[str, Any]] | None = None) -> None:
        self.requests: list[tuple[str, str, dict[str, str], bytes]] = []
        self.objects: dict[tuple[str, str], dict[str, Any]] = {}
        self.rules: dict[str, dict[str, Any]] = {}
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
        if path.startswith("/api/alerting/rule/"):
            rule_id = path.rsplit("/", 1)[1]
            data = json.loads(body)
            allowed = RULE_CREATE_KEYS if method == "POST" else RULE_UPDATE_KEYS
            extra = sorted(set(data) - set(allowed))
            if extra:
                return 400, {"statusCode": 400, "message": f"[request body.{extra[0]}]: definition for this key is "
                             "missing"}
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

    def import_(self, query: str, headers: dict[str, str], body: bytes) -> tuple[int, Any]:
        message = BytesParser(policy=HTTP).parsebytes(
            f"Content-Type: {headers['content-type']}\r\n\r\n".encode() + body
        )
        (part,) = list(message.iter_parts())
        if part.get_param("name", header="content-disposition") != "file":
            return 400, {"message": "file is required"}
        uploaded = [json.loads(line) for line in part.get_payload(decode=True).splitlines() if line.strip()]
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
    assert len(report.outcomes) == 10 and not report.failed
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
    assert out.strip().endswith("9 ok, 1 failed")
    assert fake.requests[0][1].startswith("/s/team-a/api/saved_objects/_import")


def test_missing_references_name_the_missing_objects(kibana: Any, tmp_path: Any) -> None:
    import shutil

    from kibana import saved_objects_dir

    folder = tmp_path / "objects"
    shutil.copytree(saved_objects_dir(), folder)
    (folder / "pinnprov-epochs.json").unlink()  # the data view every chart reads
    report = import_saved_objects(KibanaClient(kibana().url, env={}), folder)
    failed = {o.id: o.detail for o in report.failed}
    assert failed["pinnprov-lens-total-loss"] == "missing references: index-pattern pinnprov-epochs"
    assert len(failed) == 6  # five charts and the dashboard's controls


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
