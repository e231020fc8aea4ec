"""Every setting of a training process's provenance capture, resolved once before anything starts.

Precedence for each: explicit argument > environment (PINNPROV_CAPTURE, PINNPROV_CAPTURE_EVERY, PINNPROV_STORE,
PINNPROV_CAPTURE_SHUTDOWN_TIMEOUT, PINNPROV_SPOOL, PINNPROV_SPOOL_DIR, the OTEL_* variables) > default, so a bad
setting fails with one clear line before TensorFlow or any thread starts. Where the spans go:
- no OTLP endpoint anywhere: the *embedded* default, the store (PINNPROV_STORE or the default SQLite file);
- an endpoint: OTLP to that collector (pinnprov/capture/destination.py resolves it with its auth and TLS);
- an explicit store *and* an endpoint: both (a local copy next to the central collector).

The result, `CaptureSettings`, is the one object every step takes: `open_capture`, the matching steering command
source (`command_source_for`), `start_run` and the integrations resolve their keywords (`CaptureOptions`) once
and pass the frozen object on, instead of re-forwarding a dozen keywords at each step.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TypedDict

from pinnprov.capture.destination import Destination, resolve_destination
from pinnprov.capture.sampling import parse_capture_every
from pinnprov.core.settings import parse_bool, resolve, resolve_store_url

CAPTURE_ENV = "PINNPROV_CAPTURE"
STEERING_INTERVAL_ENV = "PINNPROV_STEERING_INTERVAL"  # how often the command source polls
DEFAULT_STEERING_INTERVAL_S = 0.5  # = steering_worker.DEFAULT_INTERVAL_S
SHUTDOWN_TIMEOUT_ENV = "PINNPROV_CAPTURE_SHUTDOWN_TIMEOUT"
SPOOL_ENV = "PINNPROV_SPOOL"
TIMEOUT_ENVS = ("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "OTEL_EXPORTER_OTLP_TIMEOUT")
DEFAULT_EXPORT_TIMEOUT_S = 3.0
NETWORK_SHUTDOWN_TIMEOUT_S = 5.0  # a collector that is down must not hold the trainer's exit for long
LOCAL_SHUTDOWN_TIMEOUT_S = 30.0  # the local store is on this machine: finishing its writes is worth waiting for


@dataclass(frozen=True)
class CaptureSettings:
    """A resolved capture configuration (see `resolve_capture_settings`)."""

    every: int  # capture every k-th epoch
    store_url: str | None  # embedded store, or None
    destination: Destination | None  # OTLP collector, or None
    shutdown_timeout_s: float  # how long closing may wait for the last exports
    spool_root: Path | None  # where undeliverable batches wait, or None (spooling off)
    export_timeout_s: float | None  # per OTLP export; None lets the SDK read OTEL_EXPORTER_OTLP[_TRACES]_TIMEOUT
    service_name: str | None
    protocol: str | None  # the explicit OTLP protocol, if any (the metrics endpoint infers its own otherwise)
    schedule_delay_ms: float | None  # batch processor delay; None lets the SDK read OTEL_BSP_SCHEDULE_DELAY
    set_global: bool  # also install the providers as OpenTelemetry's global ones
    enabled: bool = True  # False: no capture at all (PINNPROV_CAPTURE=0); nothing else was resolved
    steering_endpoint_url: str | None = None  # the collector's /v1/steering base, if not derived from the endpoint
    steering_interval_s: float = DEFAULT_STEERING_INTERVAL_S  # how often steering commands are polled
    system_metrics: bool = True  # the trainer's CPU, memory and GPU metrics (capture/system_metrics.py)
    system_metrics_interval_s: float = 5.0  # their sampling period


class CaptureOptions(TypedDict, total=False):
    """The keywords every capture entry point accepts (`open_capture`, `start_run`, the integrations), each
    resolved once by `resolve_capture_settings`: explicit > PINNPROV_* / OTEL_* > default."""

    store: str | None
    otlp_endpoint: str | None
    capture_every: int | None
    enabled: bool | None
    service_name: str | None
    protocol: str | None
    headers: str | Mapping[str, str] | None
    schedule_delay_ms: float | None
    shutdown_timeout_s: float | None
    spool: bool | None
    spool_dir: Path | None
    export_timeout_s: float | None
    set_global: bool
    steering_endpoint_url: str | None
    steering_interval_s: float | None
    system_metrics: bool | None
    system_metrics_interval_s: float | None


CAPTURE_OPTION_NAMES = frozenset(CaptureOptions.__annotations__)


def capture_enabled(explicit: bool | None = None) -> bool:
    """Whether to capture at all: explicit > PINNPROV_CAPTURE > yes."""
    return bool(resolve("enabled", explicit, CAPTURE_ENV, True, parse_bool))


def _export_timeout(explicit: float | None) -> float | None:
    """Seconds one OTLP export may take. None lets the SDK read OTEL_EXPORTER_OTLP[_TRACES]_TIMEOUT.

    pinnprov's default (3 s, the SDK's is 10 s) keeps a dead collector's failure, and so the hand-over to the
    spool, well inside the bounded shutdown.
    """
    if explicit is not None:
        if explicit <= 0:
            raise ValueError(f"export_timeout_s: must be positive, got {explicit!r}")
        return float(explicit)
    if any(os.environ.get(name, "").strip() for name in TIMEOUT_ENVS):
        return None
    return DEFAULT_EXPORT_TIMEOUT_S


def resolve_capture_settings(
    *,
    store: str | None = None,
    otlp_endpoint: str | None = None,
    capture_every: int | None = None,
    service_name: str | None = None,
    protocol: str | None = None,
    headers: str | Mapping[str, str] | None = None,
    schedule_delay_ms: float | None = None,
    shutdown_timeout_s: float | None = None,
    spool: bool | None = None,
    spool_dir: Path | None = None,
    export_timeout_s: float | None = None,
    set_global: bool = False,
    enabled: bool | None = None,
    steering_endpoint_url: str | None = None,
    steering_interval_s: float | None = None,
    system_metrics: bool | None = None,
    system_metrics_interval_s: float | None = None,
) -> CaptureSettings:
    """Resolve every capture setting by precedence; ValueError naming the setting for a bad one.

    With capture off (`enabled=False` or PINNPROV_CAPTURE=0) nothing else is resolved: a disabled capture never
    fails on a setting it would not use."""
    if not capture_enabled(enabled):
        return CaptureSettings(1, None, None, LOCAL_SHUTDOWN_TIMEOUT_S, None, None, service_name, protocol,
                               schedule_delay_ms, set_global, enabled=False)
    interval = float(resolve("steering_interval_s", steering_interval_s, STEERING_INTERVAL_ENV,
                             DEFAULT_STEERING_INTERVAL_S, float))
    if not interval > 0:
        raise ValueError(f"steering_interval_s: steering poll interval must be > 0 seconds, got {interval!r}")
    every = parse_capture_every(capture_every)
    from pinnprov.capture.system_metrics import resolve_system_metrics

    system = resolve_system_metrics(system_metrics, system_metrics_interval_s)  # PINNPROV_SYSTEM_METRICS[_INTERVAL]
    destination = resolve_destination(otlp_endpoint, protocol=protocol, headers=headers)
    if store is None and destination is None:
        store = resolve_store_url(None)  # $PINNPROV_STORE, else the default SQLite file
    if store is not None and not store.strip():
        raise ValueError("store: must not be empty")
    timeout_default = NETWORK_SHUTDOWN_TIMEOUT_S if destination else LOCAL_SHUTDOWN_TIMEOUT_S
    timeout = float(resolve("shutdown_timeout_s", shutdown_timeout_s, SHUTDOWN_TIMEOUT_ENV, timeout_default, float))
    if timeout <= 0:
        raise ValueError(f"shutdown_timeout_s: must be positive, got {timeout!r}")
    spool_root = None
    if resolve("spool", spool, SPOOL_ENV, True, parse_bool):
        from pinnprov.capture.spool_exporter import default_spool_dir

        spool_root = Path(spool_dir).expanduser() if spool_dir is not None else default_spool_dir()
    return CaptureSettings(every, store, destination, timeout, spool_root, _export_timeout(export_timeout_s),
                           service_name, protocol, schedule_delay_ms, set_global, True, steering_endpoint_url,
                           interval, system.enabled, system.interval_s)


def settings_from(settings: CaptureSettings | None, options: Mapping[str, object]) -> CaptureSettings:
    """`settings` as given, else resolved from `options` (CaptureOptions keywords); both at once is a TypeError."""
    if settings is not None:
        if options:
            raise TypeError(f"pass either settings= or capture keywords, not both (got {', '.join(sorted(options))})")
        return settings
    unknown = set(options) - CAPTURE_OPTION_NAMES
    if unknown:
        raise TypeError(f"unknown capture keyword(s): {', '.join(sorted(unknown))}")
    return resolve_capture_settings(**options)  # type: ignore[arg-type]
