"""System metrics of a trainer: sampled off the training thread by the metric reader, with and without NVML, and
stored with the run in the embedded store.

NVML: `nvidia-ml-py` is not installed on this machine, so its absence is tested for real (`Gpus()` imports
`pynvml` and finds nothing). A *present* NVML is simulated by handing `Gpus` a fake module (the `import_nvml`
hook; nothing is put into sys.modules) when the real one is absent: one whose `nvmlInit` fails (no driver), and
one with a GPU whose power reading fails. With the real module installed those two tests are skipped.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import sqlite3
import threading
import time
import uuid
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from pinnprov.capture.system_metrics import Gpus, SystemSampler, register, resolve_system_metrics
from pinnprov.core import vocabulary as v
from pinnprov.pinn.observer import DatasetIdentity, EpochEnded, RunEnded, RunStarted

REAL_NVML = importlib.util.find_spec("pynvml") is not None
needs_fake_nvml = pytest.mark.skipif(REAL_NVML, reason="the real pynvml is installed: no fake module is set up")
HOST_METRICS = {v.METRIC_PROCESS_CPU, v.METRIC_PROCESS_MEMORY, v.METRIC_HOST_CPU, v.METRIC_HOST_MEMORY,
                v.METRIC_HOST_MEMORY_UTILIZATION}
GPU_METRICS = {v.METRIC_GPU_UTILIZATION, v.METRIC_GPU_MEMORY, v.METRIC_GPU_POWER}


def collect(sampler: SystemSampler) -> dict[str, list[Any]]:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    register(provider.get_meter(v.SYSTEM_METRICS_SCOPE), sampler)
    reader.get_metrics_data()  # the first CPU reading only starts the difference
    time.sleep(0.6)
    data = reader.get_metrics_data()
    provider.shutdown()
    return {metric.name: list(metric.data.data_points)
            for rm in data.resource_metrics for sm in rm.scope_metrics for metric in sm.metrics}


def test_settings_precedence(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PINNPROV_SYSTEM_METRICS", raising=False)
    monkeypatch.delenv("PINNPROV_SYSTEM_METRICS_INTERVAL", raising=False)
    assert resolve_system_metrics() == resolve_system_metrics(True, 5.0)
    monkeypatch.setenv("PINNPROV_SYSTEM_METRICS", "0")
    monkeypatch.setenv("PINNPROV_SYSTEM_METRICS_INTERVAL", "2")
    assert (resolve_system_metrics().enabled, resolve_system_metrics().interval_s) == (False, 2.0)
    assert resolve_system_metrics(True, 1.0).enabled
    with pytest.raises(ValueError, match="system_metrics_interval_s"):
        resolve_system_metrics(None, 0)


@pytest.mark.skipif(REAL_NVML, reason="the real pynvml is installed")
def test_without_nvml_the_gpus_are_skipped_with_a_reason(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="pinnprov.capture.system_metrics")
    gpus = Gpus()
    assert not gpus.available
    assert gpus.reason == "nvidia-ml-py (module pynvml) is not installed"
    points = collect(SystemSampler(gpus))
    assert set(points) == HOST_METRICS
    assert 0.0 <= points[v.METRIC_PROCESS_CPU][0].value <= 1.0
    assert points[v.METRIC_PROCESS_MEMORY][0].value > 10e6
    assert 0.0 <= points[v.METRIC_HOST_CPU][0].value <= 1.0
    assert dict(points[v.METRIC_HOST_MEMORY][0].attributes) == {v.MEMORY_STATE: "used"}
    skipped = [r for r in caplog.records if "GPU metrics skipped" in r.getMessage()]
    assert len(skipped) == 1 and skipped[0].levelno == logging.INFO
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_without_psutil_proc_is_read() -> None:
    points = collect(SystemSampler(Gpus(lambda: (_ for _ in ()).throw(ImportError("no"))), psutil=None))
    assert set(points) == HOST_METRICS
    assert points[v.METRIC_PROCESS_MEMORY][0].value > 10e6
    assert 0.0 < points[v.METRIC_HOST_MEMORY_UTILIZATION][0].value < 1.0


class NvmlError(Exception):
    pass


def fake_nvml(*, init_fails: bool = False) -> SimpleNamespace:
    def init() -> None:
        if init_fails:
            raise NvmlError("Driver Not Loaded")

    def power(handle: object) -> int:
        raise NvmlError("Not Supported")

    return SimpleNamespace(
        nvmlInit=init, nvmlShutdown=lambda: None, nvmlDeviceGetCount=lambda: 1,
        nvmlDeviceGetHandleByIndex=lambda index: f"gpu{index}", nvmlDeviceGetName=lambda handle: b"Tesla V100",
        nvmlDeviceGetUtilizationRates=lambda handle: SimpleNamespace(gpu=42, memory=10),
        nvmlDeviceGetMemoryInfo=lambda handle: SimpleNamespace(used=3 * 2**30, total=16 * 2**30),
        nvmlDeviceGetPowerUsage=power)


@needs_fake_nvml
def test_an_nvml_that_fails_to_initialise_is_a_skip_not_an_error(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="pinnprov.capture.system_metrics")
    gpus = Gpus(lambda: fake_nvml(init_fails=True))
    assert not gpus.available
    assert gpus.reason == "NVML failed to initialise: NvmlError: Driver Not Loaded"
    assert set(collect(SystemSampler(gpus))) == HOST_METRICS
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


@needs_fake_nvml
def test_gpu_readings_through_nvml_skip_what_fails(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="pinnprov.capture.system_metrics")
    points = collect(SystemSampler(Gpus(fake_nvml)))
    assert set(points) == HOST_METRICS | {v.METRIC_GPU_UTILIZATION, v.METRIC_GPU_MEMORY}  # power: not supported
    (utilization,) = points[v.METRIC_GPU_UTILIZATION]
    assert utilization.value == pytest.approx(0.42)
    assert dict(utilization.attributes) == {v.HW_ID: "0", v.HW_NAME: "Tesla V100"}
    assert points[v.METRIC_GPU_MEMORY][0].value == 3 * 2**30
    assert len([r for r in caplog.records if "power_w of GPU 0 not readable" in r.getMessage()]) == 1


def test_samples_are_taken_on_the_reader_thread_never_the_caller_s(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """The embedded capture: epochs from this thread, system metrics sampled by the reader's thread, all of it
    stored under the run (the run id travels on the metrics' resource)."""
    from pinnprov.capture import system_metrics
    from pinnprov.capture.capture_session import capture_session
    from pinnprov.capture.capture_settings import resolve_capture_settings
    from pinnprov.wiring import _embedded_exporter

    for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_METRIC_EXPORT_INTERVAL", "PINNPROV_CAPTURE"):
        monkeypatch.delenv(name, raising=False)
    threads: list[str] = []
    original = system_metrics.SystemSampler._read

    def spy(self: SystemSampler) -> Any:
        threads.append(threading.current_thread().name)
        return original(self)

    monkeypatch.setattr(system_metrics.SystemSampler, "_read", spy)
    db = tmp_path / "sys.db"
    settings = resolve_capture_settings(store=f"sqlite:///{db}", spool=False)
    run_id = uuid.uuid4().hex
    with capture_session(settings, _embedded_exporter, import_tensorflow=False,
                         system_metrics=resolve_system_metrics(True, 0.2)) as (observer,):
        now = time.time()
        observer.on_run_start(RunStarted(run_id, "sys", "sys", now, {"optimizer": "adam"},
                                         DatasetIdentity("crosshole", "00" * 32, 100, "benchmark")))
        for epoch in range(5):
            observer.on_epoch_end(EpochEnded(epoch, now + epoch * 0.1, now + epoch * 0.1 + 0.1, 0.1, 1.0, 0.1,
                                             0.2, 0.3, 1e-3))
            time.sleep(0.15)
        observer.on_run_end(RunEnded("completed", time.time(), 5))
    assert threads and threading.current_thread().name not in threads
    conn = sqlite3.connect(db)
    names = {row[0] for row in conn.execute("SELECT DISTINCT name FROM metric_point WHERE run_id = ?", (run_id,))}
    assert names >= HOST_METRICS
    assert {v.METRIC_EPOCH_DURATION, v.METRIC_LOSS, v.METRIC_LEARNING_RATE, v.METRIC_EPOCHS} <= names
    (resource,) = conn.execute("SELECT attributes FROM metric_resource WHERE run_id = ?", (run_id,)).fetchall()
    assert json.loads(resource[0])[v.RUN_ID] == run_id
    assert conn.execute("SELECT COUNT(*) FROM epoch_metric WHERE run_id = ?", (run_id,)).fetchone() == (5,)


def test_the_switch_turns_them_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pinnprov.capture.capture_session import capture_session
    from pinnprov.capture.capture_settings import resolve_capture_settings
    from pinnprov.wiring import _embedded_exporter

    monkeypatch.setenv("PINNPROV_SYSTEM_METRICS", "0")
    db = tmp_path / "off.db"
    settings = resolve_capture_settings(store=f"sqlite:///{db}", spool=False)
    with capture_session(settings, _embedded_exporter, import_tensorflow=False) as (observer,):
        now = time.time()
        observer.on_run_start(RunStarted(uuid.uuid4().hex, "off", "off", now, {},
                                         DatasetIdentity("crosshole", "00" * 32, 100, "benchmark")))
        observer.on_epoch_end(EpochEnded(0, now, now + 0.1, 0.1, 1.0, 0.1, 0.2, 0.3, 1e-3))
        observer.on_run_end(RunEnded("completed", time.time(), 1))
    names = {row[0] for row in sqlite3.connect(db).execute("SELECT DISTINCT name FROM metric_point")}
    assert v.METRIC_LOSS in names and not names & (HOST_METRICS | GPU_METRICS)


def test_the_capture_settings_carry_the_switch(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """`open_capture(system_metrics=False)`, `start_run(...)` and the integrations take it like every capture
    keyword: explicit > PINNPROV_SYSTEM_METRICS[_INTERVAL] > on, every 5 s."""
    from pinnprov.capture.capture_settings import CAPTURE_OPTION_NAMES, resolve_capture_settings

    monkeypatch.delenv("PINNPROV_SYSTEM_METRICS", raising=False)
    monkeypatch.delenv("PINNPROV_SYSTEM_METRICS_INTERVAL", raising=False)
    assert {"system_metrics", "system_metrics_interval_s"} <= CAPTURE_OPTION_NAMES
    store = f"sqlite:///{tmp_path / 's.db'}"
    settings = resolve_capture_settings(store=store)
    assert (settings.system_metrics, settings.system_metrics_interval_s) == (True, 5.0)
    monkeypatch.setenv("PINNPROV_SYSTEM_METRICS_INTERVAL", "2.5")
    assert resolve_capture_settings(store=store).system_metrics_interval_s == 2.5
    assert resolve_capture_settings(store=store, system_metrics=False).system_metrics is False
    with pytest.raises(ValueError, match="system_metrics_interval_s"):
        resolve_capture_settings(store=store, system_metrics_interval_s=-1)
