"""System metrics of a trainer: process CPU and RSS, host CPU and memory, and per GPU utilisation, memory and power.

Why: the argument for low overhead is the CPU-GPU split (provenance on the CPU while the PINN runs on the GPU);
these series show how busy each side was, beside the loss, per run (MLflow and W&B record them by default too).

How, off the training thread: the values are OpenTelemetry *observable* gauges. Their callbacks run on the
PeriodicExportingMetricReader's thread when it collects (every `interval_s`), so the training loop never calls
them; one sample serves all gauges of a collection. Sources: `psutil` when installed, else /proc and os.times
(Linux); the GPUs through NVIDIA's NVML (`nvidia-ml-py`, module `pynvml`, imported lazily when the capture
starts, never at import). Without NVML, or when it fails to initialise (no driver, no GPU), the GPU gauges are
skipped with one logged line saying why, never an error; a GPU reading that fails later is left out of that sample.

Settings (explicit argument > environment > default): `PINNPROV_SYSTEM_METRICS` (on), `PINNPROV_SYSTEM_METRICS_INTERVAL`
(seconds, 5).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.metrics import CallbackOptions, Meter, Observation

from pinnprov.core import vocabulary as v
from pinnprov.core.settings import parse_bool, resolve

log = logging.getLogger(__name__)

ENABLED_ENV = "PINNPROV_SYSTEM_METRICS"
INTERVAL_ENV = "PINNPROV_SYSTEM_METRICS_INTERVAL"
DEFAULT_INTERVAL_S = 5.0


@dataclass(frozen=True)
class SystemMetricsSettings:
    enabled: bool = True
    interval_s: float = DEFAULT_INTERVAL_S


def resolve_system_metrics(enabled: bool | None = None, interval_s: float | None = None) -> SystemMetricsSettings:
    """explicit > PINNPROV_SYSTEM_METRICS / PINNPROV_SYSTEM_METRICS_INTERVAL > on, every 5 s."""
    on = bool(resolve("system_metrics", enabled, ENABLED_ENV, True, parse_bool))
    interval = float(resolve("system_metrics_interval_s", interval_s, INTERVAL_ENV, DEFAULT_INTERVAL_S, float))
    if not interval > 0:
        raise ValueError(f"system_metrics_interval_s: must be positive, got {interval!r}")
    return SystemMetricsSettings(on, interval)


@dataclass
class Sample:
    """One reading of every source; None where a source gave nothing."""

    process_cpu: float | None = None
    process_rss: float | None = None
    host_cpu: float | None = None
    host_memory_used: float | None = None
    host_memory_utilization: float | None = None
    gpus: list[dict[str, Any]] = field(default_factory=list)  # index, name, utilization, memory_used, power_w


class _Cpu:
    """CPU fractions from differences between two readings (the first reading gives None)."""

    def __init__(self) -> None:
        self._cpus = os.cpu_count() or 1
        self._process: tuple[float, float] | None = None
        self._host: tuple[float, float] | None = None

    def process(self) -> float | None:
        times = os.times()
        now = (time.monotonic(), times.user + times.system)
        last, self._process = self._process, now
        if last is None or now[0] <= last[0]:
            return None
        return max(0.0, (now[1] - last[1]) / (now[0] - last[0]) / self._cpus)

    def host(self, psutil: Any) -> float | None:
        if psutil is not None:
            return float(psutil.cpu_percent(None)) / 100.0
        try:
            with open("/proc/stat", encoding="ascii") as stat:
                fields = [float(x) for x in stat.readline().split()[1:]]
        except OSError:
            return None
        idle, total = fields[3] + (fields[4] if len(fields) > 4 else 0.0), sum(fields)
        last, self._host = self._host, (idle, total)
        if last is None or total <= last[1]:
            return None
        return 1.0 - (idle - last[0]) / (total - last[1])


def _proc_memory() -> tuple[float | None, float | None, float | None]:
    """(process RSS, host memory used, host memory utilisation) from /proc, in bytes."""
    rss = used = utilization = None
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:
            rss = float(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        info: dict[str, float] = {}
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                name, _, rest = line.partition(":")
                info[name] = float(rest.split()[0]) * 1024
        total, available = info.get("MemTotal"), info.get("MemAvailable")
        if total and available is not None:
            used, utilization = total - available, (total - available) / total
    except (OSError, ValueError, IndexError):
        pass
    return rss, used, utilization


class Gpus:
    """Per-GPU readings through NVML; `available` is False (with `reason`) when NVML is absent or fails."""

    def __init__(self, import_nvml: Callable[[], Any] | None = None) -> None:
        self._import = import_nvml or _import_pynvml
        self._nvml: Any = None
        self._handles: list[tuple[int, str, Any]] = []
        self.reason = ""
        self._started = False
        self._warned: set[str] = set()

    @property
    def available(self) -> bool:
        self._start()
        return bool(self._handles)

    def _start(self) -> None:
        if self._started:
            return
        self._started = True
        try:
            nvml = self._import()
        except ImportError:
            self.reason = "nvidia-ml-py (module pynvml) is not installed"
        else:
            try:
                nvml.nvmlInit()
                for index in range(int(nvml.nvmlDeviceGetCount())):
                    handle = nvml.nvmlDeviceGetHandleByIndex(index)
                    name = nvml.nvmlDeviceGetName(handle)
                    self._handles.append((index, name.decode() if isinstance(name, bytes) else str(name), handle))
                self._nvml = nvml
                if not self._handles:
                    self.reason = "NVML found no GPU"
            except Exception as error:  # noqa: BLE001 - NVMLError and friends: no driver, no device
                self._handles = []
                self.reason = f"NVML failed to initialise: {type(error).__name__}: {error}"
        if self.reason:
            log.info("system metrics: GPU metrics skipped: %s", self.reason)

    def read(self) -> list[dict[str, Any]]:
        self._start()
        readings = []
        for index, name, handle in self._handles:
            reading: dict[str, Any] = {"index": index, "name": name}
            for key, read in (("utilization", lambda h: self._nvml.nvmlDeviceGetUtilizationRates(h).gpu / 100.0),
                              ("memory_used", lambda h: float(self._nvml.nvmlDeviceGetMemoryInfo(h).used)),
                              ("power_w", lambda h: self._nvml.nvmlDeviceGetPowerUsage(h) / 1000.0)):
                try:
                    reading[key] = float(read(handle))
                except Exception as error:  # noqa: BLE001 - e.g. power not supported on this board
                    if key not in self._warned:
                        self._warned.add(key)
                        log.info("system metrics: GPU %s of GPU %d not readable: %s", key, index, error)
            readings.append(reading)
        return readings

    def close(self) -> None:
        if self._nvml is not None:
            try:
                self._nvml.nvmlShutdown()
            except Exception:  # noqa: BLE001
                log.debug("nvmlShutdown failed", exc_info=True)
            self._nvml = None


def _import_pynvml() -> Any:
    import pynvml  # nvidia-ml-py

    return pynvml


def _import_psutil() -> Any:
    try:
        import psutil
    except ImportError:
        return None
    return psutil


class SystemSampler:
    """Takes one `Sample` per collection (cached for `max_age_s`, so every gauge of one collection shares it)."""

    def __init__(self, gpus: Gpus | None = None, *, max_age_s: float = 0.5, psutil: Any = "auto") -> None:
        self.gpus = gpus or Gpus()
        self._psutil = _import_psutil() if psutil == "auto" else psutil
        self._process = self._psutil.Process() if self._psutil is not None else None
        self._cpu = _Cpu()
        self._lock = threading.Lock()
        self._sample: Sample | None = None
        self._taken = 0.0
        self._max_age = max_age_s
        self.samples = 0
        self.errors = 0

    def sample(self) -> Sample:
        with self._lock:
            now = time.monotonic()
            if self._sample is None or now - self._taken > self._max_age:
                self._sample, self._taken = self._read(), now
            return self._sample

    def _read(self) -> Sample:
        sample = Sample()
        try:
            sample.process_cpu = self._cpu.process()
            sample.host_cpu = self._cpu.host(self._psutil)
            if self._psutil is not None and self._process is not None:
                memory = self._psutil.virtual_memory()
                sample.process_rss = float(self._process.memory_info().rss)
                sample.host_memory_used = float(memory.total - memory.available)
                sample.host_memory_utilization = float(memory.total - memory.available) / float(memory.total)
            else:
                sample.process_rss, sample.host_memory_used, sample.host_memory_utilization = _proc_memory()
        except Exception as error:  # noqa: BLE001 - a sample must never break the metric reader
            self.errors += 1
            log.debug("system metrics: sample failed: %s", error)
        sample.gpus = self.gpus.read()
        self.samples += 1
        return sample

    def close(self) -> None:
        self.gpus.close()


def _one(value: float | None, attributes: dict[str, str] | None = None) -> Iterable[Observation]:
    return [] if value is None else [Observation(value, attributes or {})]


def register(meter: Meter, sampler: SystemSampler) -> None:
    """The observable gauges of the system metrics on `meter` (their callbacks run on the metric reader's thread)."""

    def gauge(name: str, unit: str, description: str, read: Callable[[Sample], Iterable[Observation]]) -> None:
        def callback(options: CallbackOptions) -> Iterable[Observation]:
            return read(sampler.sample())

        meter.create_observable_gauge(name, [callback], unit, description)

    gauge(v.METRIC_PROCESS_CPU, "1", "CPU time of the training process / wall time / CPUs",
          lambda s: _one(s.process_cpu))
    gauge(v.METRIC_PROCESS_MEMORY, "By", "resident set size of the training process", lambda s: _one(s.process_rss))
    gauge(v.METRIC_HOST_CPU, "1", "busy fraction of the host's CPUs", lambda s: _one(s.host_cpu))
    gauge(v.METRIC_HOST_MEMORY, "By", "memory of the host in use",
          lambda s: _one(s.host_memory_used, {v.MEMORY_STATE: "used"}))
    gauge(v.METRIC_HOST_MEMORY_UTILIZATION, "1", "fraction of the host's memory in use",
          lambda s: _one(s.host_memory_utilization))
    if not sampler.gpus.available:
        return

    def per_gpu(key: str, extra: dict[str, str]) -> Callable[[Sample], Iterable[Observation]]:
        return lambda s: [Observation(gpu[key], {v.HW_ID: str(gpu["index"]), v.HW_NAME: gpu["name"], **extra})
                          for gpu in s.gpus if key in gpu]

    gauge(v.METRIC_GPU_UTILIZATION, "1", "busy fraction of the GPU", per_gpu("utilization", {}))
    gauge(v.METRIC_GPU_MEMORY, "By", "memory used on the GPU", per_gpu("memory_used", {}))
    gauge(v.METRIC_GPU_POWER, "W", "power drawn by the GPU", per_gpu("power_w", {v.HW_TYPE: "gpu"}))
