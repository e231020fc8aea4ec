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


SENDER = '''
"""A trainer stand-in: the real OTel SDK emitting one run's epoch spans at a steady rate, through the
SpoolingSpanExporter around a real OTLP exporter (what `pinnprov train --otlp-endpoint` does)."""
import sys, time
sys.path.insert(0, sys.argv[1])
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import set_span_in_context
from pinnprov.core import vocabulary as v
from pinnprov.capture.spool_exporter import SpoolingSpanExporter
from prov_builders import RunIdGenerator, epoch_attributes

run_id, endpoint, spool, epochs, rate = sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]), float(sys.argv[6])
if endpoint.endswith("/v1/traces"):
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    inner = OTLPSpanExporter(endpoint=endpoint, timeout=2)
else:
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    inner = OTLPSpanExporter(endpoint=endpoint, insecure=True, timeout=2)
exporter = SpoolingSpanExporter(inner, spool, retry_initial_s=0.2, retry_max_s=1.0, shutdown_replay_s=5.0)
provider = TracerProvider(resource=Resource.create({"service.name": "sender"}), id_generator=RunIdGenerator(run_id))
provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=100, max_export_batch_size=64))
tracer = provider.get_tracer(v.INSTRUMENTATION_SCOPE)
identity = {v.RUN_ID: run_id, v.RUN_NAME: "run-" + run_id[-6:], v.EXPERIMENT: "durability"}
root = tracer.start_span(v.RUN_SPAN, attributes=identity)
context = set_span_in_context(root)
tracer.start_span(v.RUN_START_SPAN, context=context, attributes={**identity, v.HP_OPTIMIZER: "adam"}).end()
for epoch in range(epochs):
    with tracer.start_as_current_span(v.EPOCH_SPAN, context=context, attributes=epoch_attributes(
            epoch, loss=1000.0 / (epoch + 1), bc=0.5, residual=2.0 / (epoch + 1), data=3.0, lr=1e-3)):
        time.sleep(1.0 / rate)
    print(epoch, flush=True)
root.set_attributes({**identity, v.RUN_STATUS: "completed", v.RUN_EPOCHS: epochs})
root.end()
provider.shutdown()
print("pending", exporter.pending(), flush=True)
'''


def start_sender(workdir: Path, run_id: str, endpoint: str, spool: Path, epochs: int, rate: float) -> subprocess.Popen:
    script = workdir / "sender.py"
    script.write_text(SENDER)
    out = open(workdir / f"sender-{run_id[-6:]}.log", "w")  # noqa: SIM115 - closed with the process
    return subprocess.Popen([sys.executable, str(script), str(Path(__file__).parent), run_id, endpoint, str(spool),
                             str(epochs), str(rate)], stdout=out, stderr=subprocess.STDOUT, cwd=workdir)
