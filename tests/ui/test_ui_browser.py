"""The UI in a real browser against a real training: headless Chromium (Debian's, driven by selenium) opens the
pages of `pinnprov ui` while `pinnprov train` runs, sees the epoch count and the curves grow, stops the run with a
reason from the run page, and the store then holds the run `stopped` with that adaptation, agent `user:<login>`,
reason marked as sent through the UI. A screenshot of each page is saved under the test's output folder."""

from __future__ import annotations

import getpass
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

TINY = {"tau_layers": 2, "tau_units": 8, "velocity_layers": 2, "velocity_units": 8, "collocation_count": 200,
        "boundary_points": 20, "steps_per_call": 10, "stopping": "none", "threads": 1, "seed": 5,
        "lr_decay_steps": 200}
RUN_NAME = "ui-e2e"
EXPERIMENT = "ui-browser"
REASON = "Adam is far ahead, seen in the browser"


@pytest.fixture(scope="module")
def training(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A real `pinnprov train` that would run for minutes, capturing into a fresh SQLite store."""
    work = tmp_path_factory.mktemp("ui-browser")
    config = work / "tiny.json"
    config.write_text(json.dumps(TINY))
    db = work / "prov.db"
    log = (work / "train.log").open("w")
    env = {**os.environ, "PYTHONPATH": str(REPO), "PINNPROV_STEERING_INTERVAL": "0.2"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "pinnprov", "train", "--config", str(config), "--epochs", "1000000",
         "--time-budget", "300", "--no-jit", "--no-progress", "--store", f"sqlite:///{db}", "--run-name", RUN_NAME,
         "--experiment", EXPERIMENT, "--out", str(work / "out")],
        stdout=log, stderr=subprocess.STDOUT, env=env, cwd=REPO,
    )
    try:
        wait_for(lambda: rows(db, "SELECT last_epoch FROM run WHERE run_name = ? AND last_epoch >= 20", (RUN_NAME,))
                 or proc.poll() is not None, timeout_s=240, what="the training's first epochs in the store")
        assert proc.poll() is None, (work / "train.log").read_text()
        yield {"db": db, "proc": proc, "work": work}
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(timeout=60)
        log.close()


def _text(driver: Any, element_id: str) -> str:
    return str(driver.find_element("id", element_id).text)


def _points(driver: Any) -> int:
    return int(driver.find_element("id", "charts").get_attribute("data-points") or 0)


def _epoch(driver: Any) -> int:
    text = _text(driver, "epoch-count")
    return int(text) if text.isdigit() else -1


def test_watch_and_stop_a_training_from_the_browser(training: dict[str, Any], tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    db, proc = training["db"], training["proc"]
    shots = tmp_path / "screenshots"
    shots.mkdir()
    ui = UiProcess(f"sqlite:///{db}", log=tmp_path / "ui.log")
    driver = start_browser(tmp_path / "chromium-profile")
    try:
        driver.get(ui.url)  # the printed URL: sets the cookie, then shows the Runs page without the token
        assert "token=" not in driver.current_url
        link = wait_for(lambda: driver.find_elements(By.LINK_TEXT, RUN_NAME), timeout_s=30, what="the run listed")
        assert "running" in _text(driver, "runs-table")
        driver.save_screenshot(str(shots / "runs.png"))

        link[0].click()
        wait_for(lambda: _epoch(driver) >= 0 and _points(driver) > 0, timeout_s=30, what="the run page's curves")
        first_epoch, first_points = _epoch(driver), _points(driver)
        assert "running" in _text(driver, "run-status")
        wait_for(lambda: _epoch(driver) >= first_epoch + 20 and _points(driver) > first_points, timeout_s=60,
                 what="the epoch count and the curves growing")
        stored = rows(db, "SELECT last_epoch FROM run WHERE run_name = ?", (RUN_NAME,))[0][0]
        assert _epoch(driver) <= stored  # the page shows what the store holds, never more
        driver.save_screenshot(str(shots / "run.png"))

        driver.find_element("id", "steer-reason").send_keys(REASON)
        driver.find_element("id", "steer-stop").click()
        wait_for(lambda: "queued stop" in _text(driver, "steer-message"), timeout_s=20, what="the command queued")
        wait_for(lambda: "stopped" in _text(driver, "run-status"), timeout_s=60, what="the run page showing stopped")
        wait_for(lambda: "user:" in _text(driver, "adaptations-table"), timeout_s=20, what="the stop adaptation")
        driver.save_screenshot(str(shots / "run-stopped.png"))
        wait_for(lambda: "off" in (driver.find_element("id", "live").get_attribute("class") or ""), timeout_s=20,
                 what="the page to stop polling a finished run")
        last = rows(db, "SELECT last_epoch FROM run WHERE run_name = ?", (RUN_NAME,))[0][0]
        assert _epoch(driver) == last

        driver.get(f"{ui.base}/compare/{EXPERIMENT}")
        wait_for(lambda: driver.find_element("id", "chart-compare").get_attribute("data-curves") == "1",
                 timeout_s=30, what="Figure 3 drawn")
        assert RUN_NAME in _text(driver, "table2") and "exponential_decay" in _text(driver, "table3")
        driver.save_screenshot(str(shots / "compare.png"))
        assert console_errors(driver) == []
    finally:
        driver.quit()
        ui.stop()
    assert proc.wait(timeout=120) == 0
    login = getpass.getuser()
    (status,) = rows(db, "SELECT status FROM run WHERE run_name = ?", (RUN_NAME,))[0]
    assert status == "stopped"
    stops = rows(db, "SELECT a.agent, a.reason, a.new_value, c.state FROM adaptation a JOIN steering_command c "
                     "ON c.command_id = a.command_id WHERE a.parameter = 'stop'")
    assert stops == [(f"user:{login}", f"{REASON} (via pinnprov ui)", "True", "applied")]
    for name in ("runs", "run", "run-stopped", "compare"):
        assert (shots / f"{name}.png").stat().st_size > 10_000, name
    print(f"screenshots in {shots}")

