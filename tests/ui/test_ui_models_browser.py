"""The velocity model in a real browser while a real training runs: headless Chromium opens the run page of
`pinnprov ui`, sees the PINN's model appear beside the exact model (a synthetic data set), the epoch slider gain
positions as snapshots arrive (live), moves the slider back to an earlier epoch, and the compare page shows the
experiment's final models side by side. The model view's screenshot goes to the test's folder, and to
docs/ui-model.png with PINNPROV_UPDATE_SCREENSHOTS=1 (so a test run leaves the checkout as it was)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from collector_process import rows, wait_for
from ui_browser import REPO, UiProcess, console_errors, missing_browser, start_browser

pytestmark = [pytest.mark.slow, pytest.mark.skipif(bool(missing_browser()), reason=missing_browser() or "ok")]

TINY = {"tau_layers": 3, "tau_units": 16, "velocity_layers": 3, "velocity_units": 16, "collocation_count": 300,
        "steps_per_call": 20, "stopping": "none", "threads": 1, "seed": 5}
RUN_NAME = "ui-models"
EXPERIMENT = "ui-models"
DOCS_SCREENSHOT = REPO / "docs" / "ui-model.png"


@pytest.fixture(scope="module")
def training(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    work = tmp_path_factory.mktemp("ui-models")
    config = work / "tiny.json"
    config.write_text(json.dumps(TINY))
    db = work / "prov.db"
    log = (work / "train.log").open("w")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "pinnprov", "train", "--config", str(config), "--epochs", "1000000",
         "--time-budget", "120", "--no-progress", "--store", f"sqlite:///{db}", "--run-name", RUN_NAME,
         "--experiment", EXPERIMENT, "--out", str(work / "out"), "--snapshot-every", "200"],
        stdout=log, stderr=subprocess.STDOUT, env=env, cwd=REPO,
    )
    try:
        wait_for(lambda: rows(db, "SELECT COUNT(*) FROM model_snapshot WHERE kind = 'pinn' HAVING COUNT(*) >= 2")
                 or proc.poll() is not None, timeout_s=240, what="the training's first model snapshots")
        assert proc.poll() is None, (work / "train.log").read_text()
        yield {"db": db, "proc": proc}
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(timeout=60)
        log.close()


def _models(driver: Any, panels: str = "model-panels") -> dict[str, str]:
    """kind -> epoch of the drawn models, read in one script (the page may replace its canvases meanwhile)."""
    return dict(driver.execute_script(
        "return Array.from(document.querySelectorAll(`#${arguments[0]} canvas`))"
        ".map((c) => [c.dataset.kind, c.dataset.epoch]);", panels))


def test_the_model_forms_live_in_the_browser(training: dict[str, Any], tmp_path: Path) -> None:
    from selenium.webdriver.common.keys import Keys

    db = training["db"]
    screenshot = DOCS_SCREENSHOT if os.environ.get("PINNPROV_UPDATE_SCREENSHOTS") == "1" else tmp_path / "ui-model.png"
    ui = UiProcess(f"sqlite:///{db}", log=tmp_path / "ui.log")
    driver = start_browser(tmp_path / "chromium-profile")
    try:
        driver.get(ui.url)
        driver.get(f"{ui.base}/runs/{RUN_NAME}")
        wait_for(lambda: {"exact", "pinn"} <= set(_models(driver)), timeout_s=30, what="the exact and PINN models")
        slider = driver.find_element("id", "model-epoch")
        first_max = int(slider.get_attribute("max"))
        first_epoch = int(_models(driver)["pinn"])
        wait_for(lambda: int(driver.find_element("id", "model-epoch").get_attribute("max")) > first_max
                 and int(_models(driver)["pinn"]) > first_epoch, timeout_s=60, what="a newer snapshot, shown live")
        stored = [e for (e,) in rows(db, "SELECT \"epoch\" FROM model_snapshot WHERE kind = 'pinn' ORDER BY 1")]
        assert int(_models(driver)["pinn"]) in stored
        section = driver.find_element("id", "models")
        driver.execute_script("arguments[0].scrollIntoView()", section)
        section.screenshot(str(screenshot))
        slider = driver.find_element("id", "model-epoch")
        slider.send_keys(Keys.HOME)  # back to the first snapshot: the slider leaves live mode
        wait_for(lambda: _models(driver).get("pinn") == str(stored[0]), timeout_s=20, what="the first snapshot")
        assert driver.find_element("id", "model-follow").get_attribute("hidden") is not None
        driver.get(f"{ui.base}/compare/{EXPERIMENT}")
        wait_for(lambda: driver.find_element("id", "compare-models").get_attribute("data-models") == "1",
                 timeout_s=30, what="the compare page's models")
        assert sorted(_models(driver, "compare-model-panels")) == ["exact", "pinn"]
        assert console_errors(driver) == []
    finally:
        driver.quit()
        ui.stop()
    assert screenshot.stat().st_size > 5_000
