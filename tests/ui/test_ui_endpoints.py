"""The UI's HTTP API on a real uvicorn on loopback over a real SQLite store written through the real pipeline:
the token on every request, Host and Origin checks, read-only reads, series (raw, ranges, deltas, min/max
buckets), Table 1, Compare, the PROV download and steering through the store's steering channel."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from prov_builders import dump, request_for, run_id, write_store
from ui_stores import AGENT, DIP_EPOCH, LONG_EPOCHS, SPIKE_EPOCH, Served, get, post, served, store_runs

from pinnprov.store.access import open_store
from pinnprov.store.queries import QueryOptions, run_query

LONG = run_id(9)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from pinnprov.store.records import AlertRecord
    from pinnprov.store.sqlite_sink import SqliteSink

    path = tmp_path_factory.mktemp("ui") / "prov.db"
    write_store(path, request_for(*store_runs()))
    sink = SqliteSink(path)  # an alert firing, as the collector's alert engine stores it
    assert sink.export([AlertRecord(f"loss-high/{LONG}/4321", "loss-high", LONG, SPIKE_EPOCH, 1_700_000_100.0,
                                    "loss", 1e6, 100.0, "loss 1e+06 > 100", "notify")]).ok
    sink.shutdown()
    return path


@pytest.fixture(scope="module")
def app(store: Path) -> Iterator[Served]:
    with served(f"sqlite:///{store}") as running:
        yield running


def _query(store: Path, name: str, **options: object) -> tuple[list[str], list[list]]:
    with open_store(str(store)) as opened:
        result = run_query(opened, name, QueryOptions(**options))
    return list(result.columns), [list(row) for row in result.rows]


# --- the token, Host and Origin ---------------------------------------------------------------------------------

@pytest.mark.parametrize("path", ["/", "/runs/latest", "/compare", "/api/runs", "/api/runs/latest/series",
                                  "/static/run.js", "/static/vendor/uplot/uPlot.iife.min.js"])
def test_every_request_needs_the_token(app: Served, path: str) -> None:
    assert get(app, path, headers={}).status_code == 403
    assert get(app, path, headers={"X-PinnProv-Token": "0" * 48}).status_code == 403
    assert get(app, path, headers={"Cookie": f"pinnprov_ui_{app.port}=wrong"}).status_code == 403
    assert get(app, path).status_code == 200
    assert get(app, path, headers={"Cookie": f"pinnprov_ui_{app.port}={app.token}"}).status_code == 200


def test_the_printed_url_sets_a_strict_cookie_and_drops_the_token(app: Served) -> None:
    answer = get(app, f"/runs/latest?token={app.token}&x=1", headers={})
    assert answer.status_code == 303 and answer.headers["location"] == "/runs/latest?x=1"
    cookie = answer.headers["set-cookie"]
    assert cookie.startswith(f"pinnprov_ui_{app.port}={app.token};") and "HttpOnly" in cookie
    assert "SameSite=Strict" in cookie
    api = get(app, f"/api/runs?token={app.token}", headers={})  # scripts: the query works, no redirect
    assert api.status_code == 200 and "runs" in api.json()


def test_pages_carry_the_token_for_their_own_fetches_and_a_strict_policy(app: Served) -> None:
    page = get(app, "/runs/latest")
    assert f'<meta name="pinnprov-token" content="{app.token}">' in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-frame-options"] == "DENY" and page.headers["referrer-policy"] == "no-referrer"
    assert "<script>" not in page.text and "https://" not in page.text  # no inline scripts, no CDN


def test_a_foreign_host_header_is_refused_even_with_the_token(app: Served) -> None:
    for host in ("evil.example", f"evil.example:{app.port}", "127.0.0.1:1", f"localhost.evil:{app.port}"):
        answer = get(app, "/api/runs", headers=app.headers(Host=host))
        assert answer.status_code == 403 and "Host" in answer.json()["error"], host
    assert get(app, "/api/runs", headers=app.headers(Host=f"localhost:{app.port}")).status_code == 200


def test_steering_needs_the_header_token_and_refuses_other_origins(app: Served, store: Path) -> None:
    before = dump(store)["steering_command"]
    command = {"kind": "stop", "reason": "csrf"}
    cookie_only = {"Cookie": f"pinnprov_ui_{app.port}={app.token}"}
    assert post(app, f"/api/runs/{LONG}/steer", command, headers=cookie_only).status_code == 403
    foreign = app.headers(Origin="https://evil.example")
    assert post(app, f"/api/runs/{LONG}/steer", command, headers=foreign).status_code == 403
    form = requests.post(f"{app.base}/api/runs/{LONG}/steer", data={"kind": "stop", "reason": "form"},
                         headers=app.headers(), timeout=30)
    assert form.status_code == 415  # an HTML form cannot send JSON
    assert dump(store)["steering_command"] == before


def test_only_the_steering_post_writes(app: Served) -> None:
    for method in ("PUT", "DELETE", "PATCH"):
        answer = requests.request(method, f"{app.base}/api/runs/{LONG}", headers=app.headers(), timeout=30)
        assert answer.status_code == 405, method
    assert requests.post(f"{app.base}/api/runs", json={}, headers=app.headers(), timeout=30).status_code == 405


# --- reads ------------------------------------------------------------------------------------------------------

def test_reads_leave_the_store_unchanged(app: Served, store: Path) -> None:
    before = dump(store)
    for path in ["/api/info", "/api/runs", "/api/runs?experiment=fig3&status=completed", "/api/runs/run-001",
                 f"/api/runs/{LONG}/series", f"/api/runs/{LONG}/series?from=10&to=20", "/api/runs/run-001/table1",
                 "/api/compare/fig3", "/api/runs/run-001/prov", "/api/runs/run-001/prov?format=provn", "/"]:
        assert get(app, path).status_code == 200, path
    assert dump(store) == before


def test_runs_are_the_runs_and_latest_queries_with_r2(app: Served, store: Path) -> None:
    data = get(app, "/api/runs").json()
    assert data["experiments"] == ["fig3", "other"]
    _, runs = _query(store, "runs")
    assert [run["run_id"] for run in data["runs"]] == [row[0] for row in runs]
    by_name = {run["run_name"]: run for run in data["runs"]}
    columns, latest = _query(store, "latest")
    for row in latest:
        record = dict(zip(columns, row, strict=True))
        run = by_name[record["run_name"]]
        assert (run["epoch"], run["loss"], run["loss_data"]) == (record["epoch"], record["loss"], record["loss_data"])
    assert by_name["run-001"]["r2"] == 0.5 and by_name["long-9"]["r2"] is None
    assert by_name["long-9"]["status"] == "running" and by_name["long-9"]["epoch"] == LONG_EPOCHS - 1
    filtered = get(app, "/api/runs?experiment=fig3&status=running").json()["runs"]
    assert [run["run_name"] for run in filtered] == ["long-9"]


def test_run_detail_has_hyperparameters_adaptations_and_alerts(app: Served, store: Path) -> None:
    detail = get(app, "/api/runs/run-001").json()
    assert detail["run"]["run_id"] == run_id(1) and detail["run"]["optimizer"] == "adam"
    assert detail["summary"] == {"r2": 0.5}
    assert ["optimizer", "adam", "str"] in detail["hyperparameters"]["rows"]
    columns, rows = _query(store, "adaptations", run_id=run_id(1))
    assert detail["adaptations"] == {"columns": columns, "rows": rows} and len(rows) == 1
    assert detail["alerts"]["rows"] == [] and detail["commands"] == []
    assert get(app, "/api/runs/nope").status_code == 404
    assert "ambiguous" in get(app, "/api/runs/run-00").json()["error"]


def test_run_detail_lists_alert_firings(app: Served) -> None:
    alerts = get(app, f"/api/runs/{LONG}").json()["alerts"]
    assert alerts["columns"][:4] == ["at", "run_name", "rule", "epoch"]
    assert [row[2:6] for row in alerts["rows"]] == [["loss-high", SPIKE_EPOCH, "loss", 1e6]]


def test_series_of_a_short_run_is_every_epoch(app: Served, store: Path) -> None:
    data = get(app, "/api/runs/run-001/series").json()
    columns, rows = _query(store, "epochs", run_id=run_id(1))
    assert data["exact"] and data["last_epoch"] == 29 and data["status"] == "completed"
    for name in ("epoch", "loss", "loss_bc", "loss_residual", "loss_data", "learning_rate", "elapsed_s"):
        assert data["columns"][name] == [row[columns.index(name)] for row in rows], name


def test_series_delta_is_only_the_epochs_after_the_last_seen(app: Served) -> None:
    data = get(app, "/api/runs/run-001/series?after=26").json()
    assert data["columns"]["epoch"] == [27, 28, 29] and data["exact"]
    assert get(app, "/api/runs/run-001/series?after=29").json()["columns"]["epoch"] == []


def test_downsampling_keeps_first_last_min_and_max(app: Served, store: Path) -> None:
    columns, rows = _query(store, "epochs", run_id=LONG)
    full = {name: [row[columns.index(name)] for row in rows] for name in columns}
    data = get(app, f"/api/runs/{LONG}/series?points=200").json()
    got = data["columns"]
    assert not data["exact"] and 100 <= len(got["epoch"]) <= 200
    assert got["epoch"] == sorted(set(got["epoch"]))  # strictly increasing: uPlot's x
    assert got["epoch"][0] == 0 and got["epoch"][-1] == LONG_EPOCHS - 1
    for name in ("loss", "loss_bc", "loss_residual", "loss_data", "learning_rate", "elapsed_s"):
        assert got[name][0] == full[name][0] and got[name][-1] == full[name][-1], name  # first and last, exact
        assert max(got[name]) == max(full[name]) and min(got[name]) == min(full[name]), name
        assert set(got[name]) <= set(full[name]), name  # every value is a stored value
    assert max(got["loss"]) == 1e6 and min(got["loss_data"]) == 1e-9
    spike = got["loss"].index(1e6)
    bucket = max(abs(got["epoch"][spike] - SPIKE_EPOCH), abs(got["epoch"][got["loss_data"].index(1e-9)] - DIP_EPOCH))
    assert bucket <= 2 * LONG_EPOCHS / 99  # drawn within its bucket (two points per bucket)


def test_zoom_fetches_every_epoch_of_the_range(app: Served, store: Path) -> None:
    data = get(app, f"/api/runs/{LONG}/series?from=4300&to=4400&points=200").json()
    columns, rows = _query(store, "epochs", run_id=LONG, from_epoch=4300, to_epoch=4400)
    assert data["exact"] and data["columns"]["epoch"] == list(range(4300, 4401))
    assert data["columns"]["loss"] == [row[columns.index("loss")] for row in rows]
    assert 1e6 in data["columns"]["loss"]
    wide = get(app, f"/api/runs/{LONG}/series?from=1000&to=5000&points=100").json()
    assert not wide["exact"] and wide["columns"]["epoch"][0] == 1000 and wide["columns"]["epoch"][-1] == 5000


@pytest.mark.parametrize("query", ["points=1", "points=100000", "from=x", "after=1.5"])
def test_bad_series_options_are_one_line_400s(app: Served, query: str) -> None:
    answer = get(app, f"/api/runs/{LONG}/series?{query}")
    assert answer.status_code == 400 and "\n" not in answer.json()["error"]


def test_table1_is_the_epochs_query_with_every(app: Served, store: Path) -> None:
    data = get(app, f"/api/runs/{LONG}/table1").json()
    assert data["every"] == 1000 and len(data["rows"]) == 6  # at most ten rows, a round K as the paper's 10,000
    assert (data["columns"], data["rows"]) == _query(store, "epochs", run_id=LONG, every=1000, last=500)
    assert get(app, f"/api/runs/{LONG}/table1?every=2000").json()["rows"][1][0] == 2000
    assert get(app, f"/api/runs/{LONG}/table1?every=0").status_code == 400


def test_compare_is_figure_3_with_tables_2_and_3(app: Served, store: Path) -> None:
    data = get(app, "/api/compare/fig3?points=100").json()
    assert [curve["run_name"] for curve in data["curves"]] == ["run-001", "run-002", "long-9"]
    assert data["curves"][0]["exact"] and not data["curves"][2]["exact"]
    assert max(data["curves"][2]["loss"]) == 1e6
    assert (data["table2"]["columns"], data["table2"]["rows"]) == _query(store, "latest", experiment="fig3")
    assert (data["table3"]["columns"], data["table3"]["rows"]) == _query(store, "lr", experiment="fig3")
    missing = get(app, "/api/compare/nope")
    assert missing.status_code == 404 and "fig3, other" in missing.json()["error"]


def test_prov_export_downloads_as_the_cli_writes_it(app: Served, store: Path) -> None:
    from pinnprov.store.prov_export import export_run

    answer = get(app, "/api/runs/run-001/prov")
    assert answer.headers["content-disposition"] == f'attachment; filename="pinnprov-{run_id(1)}.json"'
    with open_store(str(store)) as opened:
        assert answer.text == export_run(opened, run_id(1), "json")
    assert json.loads(answer.text)["activity"]
    assert "document" in get(app, "/api/runs/run-001/prov?format=provn").text
    assert get(app, "/api/runs/run-001/prov?format=xml").status_code == 400


# --- steering ---------------------------------------------------------------------------------------------------

def test_steering_queues_a_command_through_the_channel(app: Served, store: Path) -> None:
    answer = post(app, "/api/runs/long-9/steer", {"kind": "set_lr", "value": 2.5e-4, "reason": "too slow"},
                  headers=app.headers(Origin=app.base))
    assert answer.status_code == 202, answer.text
    sent = answer.json()
    rows = [row for row in dump(store)["steering_command"] if row[0] == sent["command_id"]]
    assert len(rows) == 1
    command_id, run, _, kind, parameter, value, agent, reason, state, acked, detail = rows[0]
    assert (run, kind, parameter, value, agent, state) == (LONG, "set_lr", "", 2.5e-4, AGENT, "pending")
    assert reason == "too slow (via pinnprov ui)" and acked is None
    weight = post(app, f"/api/runs/{LONG}/steer", {"kind": "set_weight", "parameter": "data", "value": "10",
                                                  "reason": "fit the picks"})
    assert weight.status_code == 202 and weight.json()["parameter"] == "data" and weight.json()["value"] == 10.0
    listed = get(app, f"/api/runs/{LONG}").json()["commands"]
    assert [c["kind"] for c in listed][-2:] == ["set_lr", "set_weight"]


@pytest.mark.parametrize(("run", "payload", "status", "message"), [
    ("long-9", {"kind": "stop"}, 400, "give a reason"),
    ("long-9", {"kind": "stop", "reason": "  "}, 400, "give a reason"),
    ("long-9", {"kind": "explode", "reason": "r"}, 400, "unknown steering command"),
    ("long-9", {"kind": "set_lr", "value": -1, "reason": "r"}, 400, "learning rate must be in"),
    ("long-9", {"kind": "set_lr", "value": "fast", "reason": "r"}, 400, "must be a number"),
    ("long-9", {"kind": "set_weight", "parameter": "prior", "value": 1, "reason": "r"}, 400, "loss term"),
    ("long-9", ["stop"], 400, "JSON object"),
    ("run-001", {"kind": "stop", "reason": "r"}, 409, "already ended"),
    ("nope", {"kind": "stop", "reason": "r"}, 404, "unknown run"),
])
def test_bad_steering_is_refused_with_one_line(app: Served, store: Path, run: str, payload: object, status: int,
                                               message: str) -> None:
    before = dump(store)["steering_command"]
    answer = post(app, f"/api/runs/{run}/steer", payload)
    assert answer.status_code == status and message in answer.json()["error"], answer.text
    assert dump(store)["steering_command"] == before


def test_a_missing_store_is_a_503_until_it_exists(tmp_path: Path) -> None:
    path = tmp_path / "later.db"
    with served(f"sqlite:///{path}") as running:
        answer = get(running, "/api/runs")
        assert answer.status_code == 503 and "store not found" in answer.json()["error"]
        assert get(running, "/").status_code == 200  # the page loads and shows the message
        assert not path.exists()  # a read never creates the store
        write_store(path, request_for(store_runs()[0]))
        assert [run["run_name"] for run in get(running, "/api/runs").json()["runs"]] == ["run-001"]
