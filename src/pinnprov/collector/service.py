"""The collector service: receivers -> durable spool -> one delivery worker per sink -> stores.

Composition only; each part lives in its own module:
    receivers/grpc.py, receivers/http.py  decode, authenticate, bound size  -> receivers/intake.py
    spool.py                               durable, bounded, per-sink cursors
    delivery.py                            batching, retry/backoff, dead letters, one worker per sink
    pipeline.py (one per sink)             translate OTLP -> PROV records -> the sink
    health.py                              /healthz, /metrics-json, periodic log line
Each sink has its own pipeline and worker, so a store that is down holds back only itself.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from pinnprov.collector.auth import BearerToken, grpc_server_credentials, http_ssl_context
from pinnprov.collector.config import CollectorConfig
from pinnprov.collector.counters import Counters
from pinnprov.collector.delivery import DeliverySettings, DeliveryWorker, pipeline_handler
from pinnprov.collector.health import Health, StatsLogger
from pinnprov.collector.pipeline import Pipeline, RecordProcessor
from pinnprov.collector.receivers.intake import Intake
from pinnprov.collector.sinks import open_sink
from pinnprov.core.spool import Spool, SpoolBusy
from pinnprov.core.urls import redact, sql_store_url

if TYPE_CHECKING:
    from pinnprov.collector.alerts import AlertEngine
    from pinnprov.store.access import Store
    from pinnprov.store.sink import Sink

log = logging.getLogger(__name__)


class Receiver(Protocol):
    """What the service does with a receiver (receivers/grpc.py, receivers/http.py) once it is listening."""

    @property
    def endpoint(self) -> str:
        """host:port it listens on, the port resolved (port 0 asks for any free one)."""

    def start(self) -> None: ...

    def stop(self) -> None: ...


def consumer_name(url: str) -> str:
    """A stable spool cursor name per store URL, with no password in it."""
    scheme = url.split("://", 1)[0].split("+")[0] if "://" in url else "sqlite"
    return f"{scheme}-{hashlib.sha256(url.encode()).hexdigest()[:12]}"


def _sink_name(sink: Sink, url: str, taken: set[str]) -> str:
    base = str(getattr(sink, "name", "") or consumer_name(url).split("-")[0])
    name, n = base, 2
    while name in taken:
        name, n = f"{base}{n}", n + 1
    taken.add(name)
    return name


class CollectorService:
    """Start with `start()`, stop with `stop()`; `endpoints` tells where it listens (ports resolved)."""

    def __init__(self, config: CollectorConfig, *, sinks: Sequence[tuple[str, Sink]] | None = None,
                 processors: Callable[[], Sequence[RecordProcessor]] = tuple) -> None:
        self.config = config
        self.counters = Counters()
        urls = list(config.stores)
        try:
            self.spool = Spool(config.spool_dir, consumers=tuple(consumer_name(u) for u in urls) if sinks is None
                               else tuple(consumer_name(u) for u, _ in sinks),
                               max_bytes=config.max_spool_bytes, fsync=config.fsync)
        except SpoolBusy as error:
            raise ValueError(f"{error} (is another collector running with spool_dir {config.spool_dir}?)") from None
        opened: list[tuple[str, Sink]] = []
        try:
            for url, sink in sinks if sinks is not None else [(u, None) for u in urls]:
                try:
                    opened.append((url, sink if sink is not None else open_sink(url)))
                except ValueError:
                    raise
                except Exception as error:  # sqlite3/pymonetdb errors: one clear line for the CLI
                    raise ValueError(f"cannot open store {redact(url)}: {error}") from None
        except BaseException:
            for _, sink in opened:
                sink.shutdown()
            self.spool.close()
            raise
        self.alerts = self._alert_engine(config, [url for url, _ in opened])
        settings = DeliverySettings(config.batch_max_requests, config.batch_max_bytes, config.batch_linger_s,
                                    config.retry_initial_s, config.retry_max_s)
        taken: set[str] = set()
        self.pipelines: dict[str, Pipeline] = {}
        self.workers: list[DeliveryWorker] = []
        self.store_urls: dict[str, str] = {}
        for url, sink in opened:
            name = _sink_name(sink, url, taken)
            extra = [self.alerts] if self.alerts is not None else []
            self.pipelines[name] = Pipeline([sink], [*processors(), *extra])
            self.store_urls[name] = redact(url)
            self.workers.append(DeliveryWorker(name, self.spool, consumer_name(url),
                                               pipeline_handler(self.pipelines[name]), self.counters, settings))
        self.intake = Intake(self.spool, self.counters)
        self.token = BearerToken(config.token)
        self.endpoints: dict[str, str] = {}
        self._receivers: list[Receiver] = []
        self.health = Health(self.spool, self.counters, self.workers, self.pipelines, self.endpoints)
        self._stats = StatsLogger(self.health, config.log_interval_s)
        self._steering_store: Store | None = None
        self._steering_lock = threading.Lock()

    @staticmethod
    def _alert_engine(config: CollectorConfig, urls: list[str]) -> AlertEngine | None:
        """One engine shared by every sink's pipeline, so an alert fires (and acts) once, not once per sink."""
        if not config.rules:
            return None
        from pinnprov.collector.alerts import AlertEngine, StoreAlertState, StoreSteering

        steer_url = sql_store_url(urls)
        if steer_url is None:
            log.warning("alert rules without a SQLite or MonetDB store: their state is not kept across restarts")
        return AlertEngine(list(config.rules), steer=StoreSteering(steer_url) if steer_url else None,
                           state=StoreAlertState(steer_url) if steer_url else None)

    # --- lifecycle --------------------------------------------------------------------------------
    def start(self) -> None:
        config = self.config
        try:
            if config.grpc_endpoint:
                from pinnprov.collector.receivers.grpc import GrpcReceiver

                credentials = (grpc_server_credentials(config.tls_cert_file, config.tls_key_file)
                               if config.tls_cert_file and config.tls_key_file else None)
                grpc_receiver = GrpcReceiver(config.grpc_endpoint, self.intake, token=self.token,
                                             max_request_bytes=config.max_request_bytes, workers=config.workers,
                                             credentials=credentials)
                self._receivers.append(grpc_receiver)
                self.endpoints["grpc"] = grpc_receiver.endpoint
            if config.http_endpoint:
                from pinnprov.collector.receivers.http import HttpReceiver, drain_limit
                from pinnprov.collector.receivers.http_server import HttpLimits

                context = (http_ssl_context(config.tls_cert_file, config.tls_key_file)
                           if config.tls_cert_file and config.tls_key_file else None)
                try:
                    receiver = HttpReceiver(config.http_endpoint, self.intake, token=self.token,
                                            max_request_bytes=config.max_request_bytes, health=self.health.health,
                                            metrics=self.health.metrics, routes=[self._steering_route],
                                            ssl_context=context, max_concurrent=config.workers * 2,
                                            limits=HttpLimits(max_connections=config.http_max_connections,
                                                              idle_timeout_s=config.http_idle_timeout_s,
                                                              head_timeout_s=config.http_request_timeout_s,
                                                              drain_limit_bytes=drain_limit(config.max_request_bytes)),
                                            body_timeout_s=config.http_request_timeout_s)
                except OSError as error:
                    raise OSError(f"cannot listen for OTLP/HTTP on {config.http_endpoint}: {error.strerror}") \
                        from None
                self._receivers.append(receiver)
                self.endpoints["http"] = receiver.endpoint
        except BaseException:
            self.stop(drain_s=0)
            raise
        for worker in self.workers:
            worker.start()
        for listening in self._receivers:
            listening.start()
        self._stats.start()
        tls = "TLS" if config.tls_cert_file else "plaintext"
        auth = "bearer token required" if self.token.required else "no token (loopback)"
        log.warning("collector listening: %s (%s, %s); stores: %s; spool %s",
                    ", ".join(f"{k} {v}" for k, v in self.endpoints.items()), tls, auth,
                    ", ".join(self.store_urls.values()), config.spool_dir)

    def stop(self, drain_s: float = 5.0) -> None:
        """Stop accepting, give the sinks `drain_s` to catch up, then stop; undelivered data stays spooled."""
        for receiver in self._receivers:
            with contextlib.suppress(Exception):
                receiver.stop()
        self._receivers.clear()
        deadline = time.monotonic() + drain_s
        # A sink that is retrying (its store is down) will not catch up in seconds: do not wait for it.
        while drain_s > 0 and time.monotonic() < deadline and not all(
                w.drained() or w.state == "retrying" for w in self.workers):
            time.sleep(0.05)
        for worker in self.workers:
            worker.stop()
        self._stats.stop()
        for pipeline in self.pipelines.values():
            pipeline.shutdown()
        if self.alerts is not None:
            with contextlib.suppress(Exception):
                self.alerts.close()
        if self._steering_store is not None:
            with contextlib.suppress(Exception):
                self._steering_store.close()
        self.spool.close()

    def run_forever(self, ready_file: Path | None = None) -> None:
        """Serve until SIGTERM/SIGINT; writes `ready_file` (JSON endpoints) once listening."""
        stop = threading.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
        self.start()
        try:
            if ready_file is not None:
                temporary = ready_file.with_name(ready_file.name + ".tmp")
                temporary.write_text(json.dumps({**self.endpoints, "pid": os.getpid()}))
                os.replace(temporary, ready_file)
            while not stop.wait(1.0):
                pass
            log.warning("collector stopping")
        finally:
            self.stop()

    # --- remote steering on the HTTP port ---------------------------------------------------------
    def _steering_route(self, method: str, path: str, body: bytes) -> tuple[int, bytes] | None:
        from pinnprov.collector.steering_http import PREFIX, handle_steering_request

        if not path.startswith(PREFIX):
            return None
        with self._steering_lock:  # one store connection, used by one request at a time
            if self._steering_store is None:
                try:
                    from pinnprov.store.access import open_store

                    url = sql_store_url(list(self.config.stores))
                    if url is None:
                        return 503, json.dumps({"error": "steering needs a SQLite or MonetDB store"}).encode()
                    self._steering_store = open_store(url, read_only=False)
                except Exception as error:  # noqa: BLE001 - the store may be down; the trainer retries
                    return 503, json.dumps({"error": f"store unavailable: {error}"}).encode()
            return handle_steering_request(self._steering_store, method, path, body)
