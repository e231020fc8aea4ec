"""Test helpers for the UI: `pinnprov ui` as a real subprocess, and Debian's headless Chromium driven by selenium.

Chromium and chromium-driver come from apt (.ci/install_browser, run by CI as root); selenium from the dev extra.
Without them the browser tests are skipped with the reason.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser")
DRIVER_CANDIDATES = ("/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver")
# Flags that work here as root in a container (no sandbox, no GPU, no phoning home).
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage", "--window-size=1400,1800")
URL_LINE = re.compile(r"pinnprov ui: open (https?://\S+)")
REPO = Path(__file__).resolve().parents[2]


def missing_browser() -> str:
    """Why no browser test can run here ('' when it can)."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install '.[dev]')"
    if not any(Path(path).is_file() for path in CHROMIUM_CANDIDATES):
        return "no Chromium (.ci/install_browser installs Debian's chromium and chromium-driver)"
    if not any(Path(path).is_file() for path in DRIVER_CANDIDATES):
        return "no chromedriver (.ci/install_browser installs Debian's chromium-driver)"
    return ""


def start_browser(profile_dir: Path | None = None) -> Any:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = next(path for path in CHROMIUM_CANDIDATES if Path(path).is_file())
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile_dir or tempfile.mkdtemp(prefix='pinnprov-chromium-')}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver_path = next(path for path in DRIVER_CANDIDATES if Path(path).is_file())
    return webdriver.Chrome(service=Service(driver_path), options=options)


def console_errors(driver: Any) -> list[str]:
    """Severe console messages (script errors, CSP violations, failed loads)."""
    return [entry["message"] for entry in driver.get_log("browser") if entry.get("level") == "SEVERE"]


class UiProcess:
    """`pinnprov ui` in a subprocess on port 0; `url` is the printed URL with its token."""

    def __init__(self, store_url: str, *args: str, log: Path) -> None:
        self.log = log
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        self._log_file = log.open("w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "pinnprov", "ui", "--store", store_url, "--port", "0", *args],
            stdout=subprocess.PIPE, stderr=self._log_file, text=True, env=env, cwd=REPO,
        )
        self.url = self._read_url()
        self.base, _, self.token = self.url.partition("/?token=")

    def _read_url(self, timeout_s: float = 60.0) -> str:
        deadline = time.monotonic() + timeout_s
        assert self.proc.stdout is not None
        lines = []
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            found = URL_LINE.search(line)
            if found:
                return found.group(1)
        self.stop()
        raise AssertionError(f"pinnprov ui printed no URL: {''.join(lines)} {self.log.read_text()}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log_file.close()


def have_command(name: str) -> bool:
    return shutil.which(name) is not None
