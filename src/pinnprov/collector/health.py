"""Self-metrics of the collector: what /healthz and /metrics-json return and what is logged periodically.

Counts are per signal (received, refused by reason) and per sink (requests, spans accepted/rejected,
retried, dead-lettered), with each sink's queue depth (spooled requests it has not delivered) and state
(idle | delivering | retrying), and the spool's size. Healthy means "accepting": a sink that is down
makes the collector *degraded* (it still spools), a full spool makes it unhealthy (503).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

from pinnprov.collector.counters import Counters
from pinnprov.collector.delivery import DeliveryWorker
from pinnprov.core.spool import Spool

log = logging.getLogger(__name__)


def _nested(counters: Mapping[str, int], prefix: str) -> dict[str, int]:
    return {name[len(prefix):]: value for name, value in counters.items() if name.startswith(prefix)}


class Health:
    def __init__(self, spool: Spool, counters: Counters, workers: Sequence[DeliveryWorker],
                 pipelines: Mapping[str, Any], endpoints: Mapping[str, str]) -> None:
        self.spool, self.counters, self.workers = spool, counters, list(workers)
        self.pipelines, self.endpoints = dict(pipelines), endpoints  # filled in by start()
        self.started = time.monotonic()

    def metrics(self) -> dict[str, Any]:
        counters = self.counters.snapshot()
        sinks: dict[str, Any] = {}
        for worker in self.workers:
            pipeline = self.pipelines.get(worker.name)
            sinks[worker.name] = {
                "state": worker.state,
                "last_error": worker.last_error[:500],
                "queue_depth": self.spool.pending_records(worker.consumer),
                "queue_bytes": self.spool.pending_bytes(worker.consumer),
                "delivery": _nested(counters, f"sink.{worker.name}."),
                "pipeline": pipeline.counters.snapshot() if pipeline is not None else {},
            }
        pending = self.spool.pending_bytes()
        return {
            "uptime_s": round(time.monotonic() - self.started, 3),
            "endpoints": self.endpoints,
            "received": _nested(counters, "received."),
            "refused": _nested(counters, "refused."),
            "refused_kind": _nested(counters, "refused_kind."),  # the same refusals, by finer kind
            "aborted": _nested(counters, "aborted."),  # clients gone mid-request
            "spool": {"dir": str(self.spool.directory), "size_bytes": self.spool.size_bytes(),
                      "pending_bytes": pending, "max_bytes": self.spool.max_bytes},
            "sinks": sinks,
        }

    def health(self) -> tuple[bool, dict[str, Any]]:
        pending = self.spool.pending_bytes()
        full = pending >= self.spool.max_bytes * 0.95
        retrying = sorted(worker.name for worker in self.workers if worker.state == "retrying")
        status = "unavailable" if full else "degraded" if retrying else "ok"
        return not full, {"status": status, "sinks_retrying": retrying, "spool_pending_bytes": pending}

    def log_line(self) -> str:
        metrics = self.metrics()
        received = metrics["received"]
        parts = [f"received traces={received.get('traces.requests', 0)} req/{received.get('traces.items', 0)} "
                 f"spans, metrics={received.get('metrics.requests', 0)} req",
                 f"refused={sum(metrics['refused'].values())}",
                 f"spool={metrics['spool']['pending_bytes']}/{metrics['spool']['size_bytes']} bytes"]
        for name, sink in metrics["sinks"].items():
            delivery = sink["delivery"]
            parts.append(f"sink {name}: {sink['state']}, queue={sink['queue_depth']}, "
                         f"spans={delivery.get('traces.accepted', 0)}, retried={delivery.get('traces.retried', 0)}, "
                         f"dead_lettered={delivery.get('traces.dead_lettered', 0)}")
        return "; ".join(parts)


class StatsLogger:
    """Logs `Health.log_line()` every `interval_s` seconds (INFO), so an operator sees the flow in the log."""

    def __init__(self, health: Health, interval_s: float) -> None:
        self._health, self._interval = health, interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="collector-stats", daemon=True)

    def start(self) -> None:
        if self._interval > 0:
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                log.info("collector: %s", self._health.log_line())
            except Exception:  # noqa: BLE001 - statistics must never take the service down
                log.exception("could not compute collector statistics")
