"""Test helpers: run `pinnprov collector` as a real subprocess on loopback, and poll with deadlines."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


def wait_for(predicate: Callable[[], T], timeout_s: float = 60.0, interval_s: float = 0.1, what: str = "") -> T:
    """Poll until `predicate()` is truthy; fail with `what` after the deadline (generous: the machine is shared)."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what or predicate}")
        time.sleep(interval_s)


def rows(db: Path, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
    """Query a SQLite store read-only (the collector may be writing it)."""
    if not db.exists():
        return []
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        return conn.execute(sql, params).fetchall()
    except sqlite3.OperationalError:  # schema not created yet
        return []
    finally:
        conn.close()


class Collector:
    """`pinnprov collector` in a subprocess; ports are chosen by the OS on the first start and kept."""

    def __init__(self, workdir: Path, *args: str, store: Path | None = None, env: dict[str, str] | None = None,
                 config: Path | None = None) -> None:
        self.workdir = workdir
        self.store = store if store is not None else workdir / "prov.db"
        self.spool_dir = workdir / "spool"
        self.args = list(args)
        self.env = {**os.environ, **(env or {})}
        self.config = config
        self.grpc_port = 0
        self.http_port = 0
        self.proc: subprocess.Popen | None = None
        self.log = workdir / "collector.log"

    @property
    def grpc(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def start(self, timeout_s: float = 60.0) -> Collector:
        ready = self.workdir / "ready.json"
        ready.unlink(missing_ok=True)
        command = [sys.executable, "-m", "pinnprov", "collector",
                   "--grpc-endpoint", f"127.0.0.1:{self.grpc_port}", "--http-endpoint", f"127.0.0.1:{self.http_port}",
                   "--store", f"sqlite:///{self.store}", "--spool-dir", str(self.spool_dir),
                   "--ready-file", str(ready), "--retry-max-s", "1", *self.args]
        if self.config is not None:
            command += ["--config", str(self.config)]
        with open(self.log, "a") as log:
            self.proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=self.env,
                                         cwd=self.workdir)
        deadline = time.monotonic() + timeout_s
        while not ready.exists():
            if self.proc.poll() is not None:
                raise AssertionError(f"collector exited with {self.proc.returncode}: {self.log.read_text()[-2000:]}")
            if time.monotonic() > deadline:
                raise AssertionError(f"collector did not start: {self.log.read_text()[-2000:]}")
            time.sleep(0.05)
        endpoints = json.loads(ready.read_text())
        self.grpc_port = int(endpoints["grpc"].rsplit(":", 1)[1])
        self.http_port = int(endpoints["http"].rsplit(":", 1)[1])
        return self

    def kill(self) -> None:
        """SIGKILL: no flush, no goodbye, like a power cut of the process."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)

    def stop(self) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(30)

    def metrics(self, token: str | None = None) -> dict[str, Any]:
        import requests

        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return requests.get(f"{self.http}/metrics-json", headers=headers, timeout=30).json()
