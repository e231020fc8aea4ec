"""Against a real Kibana (PINNPROV_TEST_KIBANA_URL; credentials from PINNPROV_KIBANA_* or PINNPROV_ES_*).

Imports the saved objects and the alerting rules twice (idempotence) and reads them back.
"""

from __future__ import annotations

import json
import os

import pytest

from pinnprov.kibana.importer import KibanaClient, apply_alert_rules, import_saved_objects, load_rules
from pinnprov.kibana.ndjson import load_objects

URL = os.environ.get("PINNPROV_TEST_KIBANA_URL", "")
pytestmark = [
    pytest.mark.live,
    pytest.mark.skipif(not URL, reason="set PINNPROV_TEST_KIBANA_URL to run against a real Kibana"),
]


def test_saved_objects_import_twice_and_read_back() -> None:
    client = KibanaClient(URL)
    for _ in range(2):
        report = import_saved_objects(client)
        assert not report.failed, [o.line() for o in report.failed]
    status, payload = client.request("GET", "/api/saved_objects/dashboard/pinnprov-dashboard-training")
    assert status == 200 and payload["attributes"]["title"] == "pinnprov: PINN training"
    lens_ids = {o["id"] for o in load_objects() if o["type"] == "lens"}
    body = json.dumps([{"type": "lens", "id": oid} for oid in sorted(lens_ids)]).encode()
    status, payload = client.request("POST", "/api/saved_objects/_bulk_get", body)
    assert status == 200 and all("error" not in obj for obj in payload["saved_objects"])


def test_alert_rules_create_then_update(monkeypatch: pytest.MonkeyPatch) -> None:
    from pinnprov.kibana.connectors import apply_connectors

    # Kibana creates a webhook connector without calling it: a loopback URL nobody listens on is enough.
    for name, value in (("URL", "https://127.0.0.1:9/pinnprov-test"), ("USER", "pinnprov"), ("PASSWORD", "unused")):
        if not os.environ.get(f"PINNPROV_KIBANA_WEBHOOK_{name}"):
            monkeypatch.setenv(f"PINNPROV_KIBANA_WEBHOOK_{name}", value)
    client = KibanaClient(URL)
    connectors = apply_connectors(client)  # rule actions name them
    assert not [o for o in connectors.outcomes if not o.ok], [o.line() for o in connectors.outcomes]
    first = apply_alert_rules(client, connectors=connectors.available)
    assert not first.failed, [o.line() for o in first.failed]
    second = apply_alert_rules(client, connectors=connectors.available)
    assert [o.detail for o in second.outcomes] == ["updated"] * len(second.outcomes)
    for rule in load_rules():
        status, payload = client.request("GET", f"/api/alerting/rule/{rule['id']}")
        assert status == 200 and payload["rule_type_id"] == ".index-threshold"
