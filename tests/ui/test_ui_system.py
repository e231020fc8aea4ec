"""The run page's system chart: the trainer's system metrics on the loss's epoch axis. A real SQLite store written
through the real pipeline (the run's spans and its metric points), the real UI on loopback (`served`), and Debian's
headless Chromium for the page (skipped with the reason where it is not installed)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from prov_builders import request_for, run_id, sample_run, write_store
from ui_stores import Served, get, served

from pinnprov.collector.pipeline import Pipeline
from pinnprov.core import vocabulary as v
from pinnprov.store.sqlite_sink import SqliteSink

RUN = run_id(31)
EPOCHS = 10


def metrics_request(times: list[float]) -> ExportMetricsServiceRequest:
    """Process and host CPU, host memory and one GPU at each time, as the trainer's system metrics send them."""
    request = ExportMetricsServiceRequest()
    resource = request.resource_metrics.add()
    resource.resource.attributes.add(key=v.RUN_ID).value.string_value = RUN
    scope = resource.scope_metrics.add()
    scope.scope.name = v.SYSTEM_METRICS_SCOPE
    for name, value, attributes in ((v.METRIC_PROCESS_CPU, 0.5, {}), (v.METRIC_HOST_CPU, 0.75, {}),
                                    (v.METRIC_HOST_MEMORY_UTILIZATION, 0.25, {}),
                                    (v.METRIC_GPU_UTILIZATION, 0.9, {v.HW_ID: "0", v.HW_NAME: "A100"}),
                                    (v.METRIC_PROCESS_MEMORY, 2e9, {})):
        metric = scope.metrics.add(name=name, unit="1")
        for at in times:
            point = metric.gauge.data_points.add(time_unix_nano=int(at * 1e9), as_double=value)
            for key, text in attributes.items():
                point.attributes.add(key=key).value.string_value = text
    return request


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ui-system") / "prov.db"
    write_store(path, request_for(sample_run(31, epochs=EPOCHS, name="with-system")))
    epochs = sqlite3.connect(path).execute("SELECT started_at, ended_at FROM epoch_metric WHERE run_id = ? "
                                           "ORDER BY epoch", (RUN,)).fetchall()
    times = [started + (ended - started) / 2 for started, ended in epochs]  # mid-epoch samples
    sink = SqliteSink(path)
    assert Pipeline([sink]).handle_metrics(metrics_request([epochs[0][0] - 5.0, *times])).ok  # one before epoch 0
    sink.shutdown()
    return path


@pytest.fixture(scope="module")
def app(store: Path) -> Iterator[Served]:
    with served(f"sqlite:///{store}") as running:
        yield running


def test_the_system_series_sit_on_the_epoch_axis(app: Served) -> None:
    answer = get(app, "/api/runs/with-system/system")
    assert answer.status_code == 200, answer.text
    data = answer.json()
    assert data["run_id"] == RUN and data["unit"] == "%"
    assert data["x"] == pytest.approx([epoch + 0.5 for epoch in range(EPOCHS)])  # the pre-training sample has none
    series = {s["label"]: s["values"] for s in data["series"]}
    assert list(series) == ["process CPU", "host CPU", "host memory", "GPU 0"]  # RSS is bytes: not on this axis
    assert series["process CPU"] == pytest.approx([50.0] * EPOCHS)
    assert series["GPU 0"] == pytest.approx([90.0] * EPOCHS)


def test_a_run_without_system_metrics_has_an_empty_chart(app: Served, store: Path) -> None:
    write_store(store, request_for(sample_run(32, epochs=3, name="without-system")))
    data = get(app, "/api/runs/without-system/system").json()
    assert data["x"] == [] and data["series"] == []


def test_the_run_page_draws_the_system_chart_under_the_loss(store: Path, tmp_path: Path) -> None:
    from ui_browser import UiProcess, console_errors, missing_browser, start_browser

    reason = missing_browser()
    if reason:
        pytest.skip(reason)
    from collector_process import wait_for

    ui = UiProcess(f"sqlite:///{store}", log=tmp_path / "ui.log")
    driver: Any = start_browser(tmp_path / "chromium-profile")
    try:
        driver.get(ui.url)
        driver.get(f"{ui.base}/runs/with-system")
        chart = driver.find_element("id", "chart-system")
        wait_for(lambda: chart.get_attribute("data-points") == str(EPOCHS), timeout_s=30, what="the system chart")
        assert chart.is_displayed()
        assert chart.get_attribute("data-series").splitlines() == ["process CPU", "host CPU", "host memory", "GPU 0"]
        order = [element.get_attribute("id") for element in driver.find_elements("css selector", "#charts .chart")]
        assert order.index("chart-system") > order.index("chart-loss")
        assert console_errors(driver) == []
    finally:
        driver.quit()
        ui.stop()
