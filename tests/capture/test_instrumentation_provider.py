"""Provider setup: resource precedence, OTEL_* batch settings, private providers, run-id hand-over, bounded exit."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from pinnprov.capture.provider import (
    DEFAULT_SCHEDULE_DELAY_MS,
    RunIdGenerator,
    batch_processor,
    build_tracer_provider,
    shutdown_within,
)
from pinnprov.capture.resource import DEFAULT_SERVICE_NAME, build_resource
from pinnprov.core import vocabulary as v
from pinnprov.wiring import open_capture

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PINNPROV_SPOOL_DIR", str(tmp_path / "spool"))  # never the user's ~/.cache
    for name in ("OTEL_SERVICE_NAME", "OTEL_RESOURCE_ATTRIBUTES", "OTEL_BSP_SCHEDULE_DELAY", "OTEL_BSP_MAX_QUEUE_SIZE",
                 "PINNPROV_CAPTURE", "PINNPROV_CAPTURE_EVERY", "OTEL_EXPORTER_OTLP_ENDPOINT",
                 "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)


def test_resource_defaults_environment_and_explicit_service_name(monkeypatch: pytest.MonkeyPatch) -> None:
    resource = build_resource(import_tensorflow=False)
    attrs = resource.attributes
    assert attrs["service.name"] == DEFAULT_SERVICE_NAME
    assert attrs["process.pid"] == os.getpid() and attrs["host.name"]
    assert attrs["process.runtime.name"] == sys.implementation.name
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "host.name=gpu-node-7,deployment.environment=g5k")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "from-env")
    attrs = build_resource(import_tensorflow=False).attributes
    assert (attrs["service.name"], attrs["host.name"], attrs["deployment.environment"]) == (
        "from-env", "gpu-node-7", "g5k")
    assert build_resource("explicit", import_tensorflow=False).attributes["service.name"] == "explicit"
    with pytest.raises(ValueError, match="service_name"):
        build_resource(" ")


def test_resource_names_tensorflow_and_its_devices() -> None:
    pytest.importorskip("tensorflow")
    attrs = build_resource().attributes
    import tensorflow as tf

    assert attrs[v.RESOURCE_TENSORFLOW_VERSION] == tf.__version__
    assert "CPU:0" in attrs[v.RESOURCE_DEVICES]


def test_importing_instrumentation_does_not_import_tensorflow() -> None:
    code = ("import sys, pinnprov.capture.observer, pinnprov.capture.resource, pinnprov.capture.embedded, "
            "pinnprov.capture; print('tensorflow' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert out.stdout.strip() == "False"


def test_batch_settings_explicit_then_environment_then_default(monkeypatch: pytest.MonkeyPatch) -> None:
    exporter = InMemorySpanExporter()
    default = batch_processor(exporter)
    assert default._batch_processor._schedule_delay_millis == DEFAULT_SCHEDULE_DELAY_MS  # noqa: SLF001
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "750")
    monkeypatch.setenv("OTEL_BSP_MAX_QUEUE_SIZE", "4096")
    from_env = batch_processor(exporter)
    assert from_env._batch_processor._schedule_delay_millis == 750  # noqa: SLF001
    assert from_env._batch_processor._max_queue_size == 4096  # noqa: SLF001
    assert batch_processor(exporter, schedule_delay_ms=50)._batch_processor._schedule_delay_millis == 50  # noqa: SLF001
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "soon")
    with pytest.raises(ValueError, match="OTEL_BSP_SCHEDULE_DELAY.*soon"):
        batch_processor(exporter)
    for processor in (default, from_env):
        processor.shutdown()


def test_private_provider_leaves_the_global_one_alone(tmp_path: Path) -> None:
    before = trace.get_tracer_provider()
    with open_capture(store=str(tmp_path / "p.sqlite")) as observers:
        assert len(observers) == 1
    assert trace.get_tracer_provider() is before


def test_capture_can_be_disabled_by_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PINNPROV_CAPTURE", "off")
    with open_capture(store=str(tmp_path / "never.sqlite")) as observers:
        assert observers == []
    assert not (tmp_path / "never.sqlite").exists()
    monkeypatch.setenv("PINNPROV_CAPTURE", "maybe")
    with pytest.raises(ValueError, match="PINNPROV_CAPTURE"), open_capture():
        pass


def test_bad_capture_settings_fail_before_anything_starts(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="capture_every"), open_capture(store=str(tmp_path / "a"), capture_every=0):
        pass
    monkeypatch.setenv("PINNPROV_CAPTURE_EVERY", "ten")
    with pytest.raises(ValueError, match="PINNPROV_CAPTURE_EVERY"), open_capture(store=str(tmp_path / "b")):
        pass
    with pytest.raises(ValueError, match="unsupported scheme"), open_capture(store="redis://x/0", capture_every=1):
        pass
    monkeypatch.delenv("PINNPROV_CAPTURE_EVERY")
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "soon")
    threads = threading.active_count()
    with pytest.raises(ValueError, match="OTEL_BSP_SCHEDULE_DELAY"), open_capture(store=str(tmp_path / "c")):
        pass
    deadline = time.monotonic() + 10
    while threading.active_count() > threads and time.monotonic() < deadline:
        time.sleep(0.01)
    assert threading.active_count() <= threads  # the store's writer and the spool's replayer were shut down


def test_run_id_goes_to_the_next_root_span_of_the_calling_thread_only() -> None:
    ids = RunIdGenerator()
    ids.use_trace_id(0xABC)
    seen: list[int] = []
    other = threading.Thread(target=lambda: seen.append(ids.generate_trace_id()))
    other.start()
    other.join()
    assert seen[0] != 0xABC
    assert ids.generate_trace_id() == 0xABC
    assert ids.generate_trace_id() != 0xABC  # once only
    with pytest.raises(ValueError):
        ids.use_trace_id(0)


class _Hanging(SpanExporter):
    def __init__(self) -> None:
        self.release = threading.Event()

    def export(self, spans: object) -> SpanExportResult:
        self.release.wait(60)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        return None


def test_shutdown_gives_up_after_its_timeout_on_a_hanging_exporter() -> None:
    hanging = _Hanging()
    provider = build_tracer_provider([batch_processor(hanging, schedule_delay_ms=10)], Resource.create({}))
    provider.get_tracer("t").start_span("x").end()
    time.sleep(0.1)  # let the worker pick the span up and hang in export
    began = time.monotonic()
    assert shutdown_within(provider, None, 0.5) is False
    assert time.monotonic() - began < 10  # returned near its 0.5 s bound, not after the exporter's 60 s
    hanging.release.set()
