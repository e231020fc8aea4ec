"""The velocity model in a real browser while a real training runs: headless Chromium opens the run page of
`pinnprov ui`, sees the PINN's model appear beside the exact model (a synthetic data set), the epoch slider gain
positions as snapshots arrive (live), moves the slider back to an earlier epoch, and the compare page shows the
experiment's final models side by side. The model view's screenshot goes to the test's folder, and to
docs/ui-model.png with PINNPROV_UPDATE_SCREENSHOTS=1 (so a test run leaves the checkout as it was).

An ensemble's run page (models written by `EnsembleRecord.add_models` on the benchmark's scoring grid, no
training) shows its mean beside the exact model on the velocity scale, and its std and p95 - p05 in the spread
panel, each with its own magma colour scale and colour bar."""

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
        "return Array.from(document.querySelectorAll(`#${arguments[0]} canvas:not(.colour-bar)`))"
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


def _pixels(driver: Any, panels: str) -> dict[str, list[list[int]]]:
    """kind -> RGBA of every cell of the drawn models (colour bars apart), read in one script."""
    return dict(driver.execute_script(
        "return Array.from(document.querySelectorAll(`#${arguments[0]} canvas:not(.colour-bar)`)).map((c) => {"
        "  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
        "  const px = []; for (let i = 0; i < d.length; i += 4) px.push([d[i], d[i + 1], d[i + 2], d[i + 3]]);"
        "  return [c.dataset.kind, px]; });", panels))


def test_an_ensembles_spread_has_its_own_scale_in_the_browser(tmp_path: Path) -> None:
    import numpy as np

    from pinnprov.experiments.ensemble_record import EnsembleRecord
    from pinnprov.pinn.benchmark import score_grid, true_velocity
    from pinnprov.pinn.observer import DatasetIdentity

    url = f"sqlite:///{tmp_path / 'prov.db'}"
    grid_x, grid_z = score_grid()
    exact = true_velocity(grid_x, grid_z)
    std = 5.0 + 60.0 * np.abs(np.sin(grid_x / 3.0) * np.cos(grid_z / 4.0))  # the spread, m/s
    std[0, 0] = 0.0  # the members agree here: the bottom of the spread's scale
    std[-1, -1] = 120.0  # and disagree most here: its top
    mean = exact + 0.5 * std
    record = EnsembleRecord(url, "ui-ensemble", "ui-ensemble", {"ensemble.size": 3},
                            DatasetIdentity("benchmark", "ab" * 32, 100, "benchmark"))
    record.start()
    record.add_models(grid_x, grid_z, {"mean": mean, "std": std, "p05": mean - 1.5 * std, "p95": mean + 1.5 * std,
                                       "exact": exact})
    record.end("completed", {"r2": 0.9})
    ui = UiProcess(url, log=tmp_path / "ui.log")
    driver = start_browser(tmp_path / "chromium-profile")
    try:
        driver.get(ui.url)
        driver.get(f"{ui.base}/runs/ui-ensemble")
        wait_for(lambda: set(_models(driver)) == {"exact", "mean"}
                 and set(_models(driver, "model-spread-panels")) == {"std", "p95-p05"}, timeout_s=30,
                 what="the ensemble's mean and spread")
        spread = driver.find_element("id", "model-spread")
        assert spread.is_displayed() and spread.get_attribute("data-panels") == "2"
        assert not driver.find_element("id", "model-slider").is_displayed()  # one mean: nothing to slide over
        assert driver.find_element("id", "model-ensemble-title").is_displayed()
        assert not driver.find_element("id", "model-title").is_displayed()
        bars = driver.find_elements("css selector", "#model-spread-panels canvas.colour-bar")
        assert sorted(bar.get_attribute("data-scale") for bar in bars) == ["p95-p05", "std"]
        scales = [" ".join(scale.text.split())
                  for scale in driver.find_elements("css selector", "#model-spread-panels .colour-scale")]
        assert scales == ["0 120 m/s", "0 360 m/s"]  # 0 to each panel's own largest value
        pixels = _pixels(driver, "model-spread-panels")
        nx = grid_x.shape[1]
        assert pixels["std"][0] == [0, 0, 4, 255]  # magma's bottom at 0 m/s ...
        assert pixels["std"][-1] == [252, 253, 191, 255]  # ... and its top at the largest std
        assert pixels["p95-p05"][-1] == [252, 253, 191, 255]
        velocity = _pixels(driver, "model-panels")
        assert velocity["mean"][nx * grid_x.shape[0] - 1] != pixels["std"][-1]  # the mean is on viridis
        assert driver.find_element("id", "model-range").text  # the velocity scale's range as before
        section = driver.find_element("id", "models")
        driver.execute_script("arguments[0].scrollIntoView()", section)
        section.screenshot(str(tmp_path / "ui-ensemble-model.png"))
        assert console_errors(driver) == []
    finally:
        driver.quit()
        ui.stop()
    assert (tmp_path / "ui-ensemble-model.png").stat().st_size > 5_000
