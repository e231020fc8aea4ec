"""Trainer-side steering command sources: the embedded store (SQLite/MonetDB) or the collector over HTTP.

Why a background thread: the trainer calls `poll()` at every epoch boundary of its hot loop, so `poll()` must
cost nothing measurable. All I/O (store reads, HTTP requests, acknowledgements) happens on one daemon thread
per source that fetches at most every `interval_s` seconds (wall clock) and hands new commands over through a
deque; `poll()` is a length check. A store or collector that is down, slow or black-holed therefore never stalls
training: the fetch fails on the worker, is logged once per outage and retried with backoff.

Commands are delivered at least once by the store (pending until acknowledged); the source remembers the ids it
has handed out, so a command whose acknowledgement is still in flight is never applied twice.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import os
import ssl
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import weakref
from collections import deque
from collections.abc import Mapping

from collector.steering_channel import Acknowledgement, command_from_json
from pinn.steering import CommandSource, NoCommands, SteeringCommand
from pinnprov.settings import resolve

log = logging.getLogger("pinnprov.steering")

DEFAULT_INTERVAL_S = 0.5
INTERVAL_ENV = "PINNPROV_STEERING_INTERVAL"
STEERING_ENDPOINT_ENV = "PINNPROV_STEERING_ENDPOINT"
TOKEN_ENV = "PINNPROV_COLLECTOR_TOKEN"
CAPTURE_ENV = "PINNPROV_CAPTURE"  # capture off means no store knows the run: nothing to poll
MAX_BACKOFF_S = 10.0
MAX_PENDING_ACKS = 1000  # an unreachable store must not grow memory without bound


class _BackgroundSource:
    """Shared machinery: worker thread, rate limit, backoff, de-duplication and acknowledgement queue."""

    def __init__(self, interval_s: float = DEFAULT_INTERVAL_S) -> None:
        if not interval_s > 0:
            raise ValueError(f"steering poll interval: must be > 0 seconds, got {interval_s!r}")
        self.interval_s = interval_s
        self._inbox: deque[SteeringCommand] = deque()
        self._acks: deque[tuple[str, Acknowledgement]] = deque()
        self._seen: set[str] = set()
        self._run_id = ""
        self._wake = threading.Event()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._failing = False
        self.fetches = 0  # counters for tests and benchmarks
        self.acknowledged = 0

    # --- CommandSource -----------------------------------------------------------------------------
    def poll(self, run_id: str, epoch: int) -> list[SteeringCommand]:
        if self._thread is None:
            self._start(run_id)
        if not self._inbox:
            return []
        commands = []
        while self._inbox:
            commands.append(self._inbox.popleft())
        return commands

    def acknowledge(self, run_id: str, command: SteeringCommand, applied: bool, detail: str) -> None:
        if len(self._acks) < MAX_PENDING_ACKS:
            self._acks.append((run_id, Acknowledgement(command.command_id, applied, detail)))
        self._wake.set()

    def close(self, timeout_s: float = 5.0) -> None:
        """Stop the worker after it has sent the acknowledgements still queued (bounded by timeout_s)."""
        self._stopping = True
        self._wake.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout_s)

    def __enter__(self) -> _BackgroundSource:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # --- implemented by the concrete sources (called on the worker thread only) ---------------------
    def _fetch(self, run_id: str) -> list[SteeringCommand]:
        raise NotImplementedError

    def _send_ack(self, run_id: str, ack: Acknowledgement) -> None:
        raise NotImplementedError

    def _release(self) -> None:
        """Free connections; called once on the worker thread when it ends."""

    def describe(self) -> str:
        return type(self).__name__

    # --- worker ------------------------------------------------------------------------------------
    def _start(self, run_id: str) -> None:
        with self._lock:
            if self._thread is not None:
                return
            self._run_id = run_id
            self._thread = threading.Thread(target=self._work, name="pinnprov-steering", daemon=True)
            self._thread.start()
        # A process that exits without close() still delivers its last acknowledgements (e.g. a stop's).
        ref = weakref.ref(self)
        atexit.register(lambda: (source := ref()) is not None and source.close(2.0))

    def _work(self) -> None:
        backoff = self.interval_s
        next_fetch = time.monotonic()
        try:
            while True:
                self._wake.clear()  # before the work: a wake-up set during it is not lost
                acks_ok = self._flush_acks()
                if self._stopping:
                    return
                if time.monotonic() >= next_fetch:
                    ok = self._fetch_once() and acks_ok
                    backoff = self.interval_s if ok else min(backoff * 2, MAX_BACKOFF_S)
                    next_fetch = time.monotonic() + backoff
                self._wake.wait(max(0.0, next_fetch - time.monotonic()))
        finally:
            with contextlib.suppress(Exception):  # nothing useful to do about a failing close at shutdown
                self._release()

    def _fetch_once(self) -> bool:
        try:
            commands = self._fetch(self._run_id)
        except Exception as error:  # noqa: BLE001 - steering must never break training
            self._report_failure("fetch", error)
            return False
        self.fetches += 1
        self._report_recovery()
        for command in commands:
            if command.command_id not in self._seen:
                self._seen.add(command.command_id)
                self._inbox.append(command)
        return True

    def _flush_acks(self) -> bool:
        """Send queued acknowledgements in order; False at the first failure (retried on the fetch schedule)."""
        while self._acks:
            run_id, ack = self._acks[0]
            try:
                self._send_ack(run_id, ack)
            except Exception as error:  # noqa: BLE001 - kept and retried, never raised into training
                self._report_failure("acknowledge", error)
                return False
            self._acks.popleft()
            self.acknowledged += 1
        return True

    def _report_failure(self, what: str, error: Exception) -> None:
        if not self._failing:  # once per outage, not every half second
            log.warning("steering %s via %s failed (will retry): %s", what, self.describe(), error)
        self._failing = True

    def _report_recovery(self) -> None:
        if self._failing:
            log.warning("steering via %s works again", self.describe())
        self._failing = False


class HttpCommandSource(_BackgroundSource):
    """Polls the collector: GET {endpoint}/v1/steering/<run_id>, POST {endpoint}/v1/steering/<run_id>/ack.

    `headers` carries the same authentication as the OTLP exporter (e.g. Authorization: Bearer ...).
    """

    def __init__(
        self,
        endpoint: str,
        headers: Mapping[str, str] | None = None,
        interval_s: float = DEFAULT_INTERVAL_S,
        timeout_s: float = 5.0,
        ca_file: str | None = None,
    ) -> None:
        super().__init__(interval_s)
        parsed = urllib.parse.urlsplit(endpoint)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ValueError(f"steering endpoint: expected http(s)://host:port, got {endpoint!r}")
        self.endpoint = f"{parsed.scheme}://{parsed.netloc}{parsed.path.rstrip('/')}"
        self.headers = dict(headers or {})
        self.timeout_s = timeout_s
        self._context = ssl.create_default_context(cafile=ca_file) if parsed.scheme == "https" else None

    def describe(self) -> str:
        return self.endpoint

    def _url(self, run_id: str, suffix: str = "") -> str:
        return f"{self.endpoint}/v1/steering/{urllib.parse.quote(run_id, safe='')}{suffix}"

    def _request(self, url: str, body: bytes | None = None) -> tuple[int, bytes]:
        headers = {"Accept": "application/json", **self.headers}
        if body is not None:
            headers["Content-Type"] = "application/json"
        request = urllib.request.Request(url, data=body, headers=headers, method="POST" if body is not None else "GET")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s, context=self._context) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()

    def _fetch(self, run_id: str) -> list[SteeringCommand]:
        status, body = self._request(self._url(run_id))
        if status == 404:
            return []  # the collector has not seen this run's start yet: nothing can be pending for it
        if status != 200:
            raise RuntimeError(f"GET steering: HTTP {status} {body[:200]!r}")
        commands = []
        for item in json.loads(body).get("commands", []):
            try:
                commands.append(command_from_json(item))
            except ValueError as error:  # a bad command is skipped, the others still apply
                log.warning("steering: ignoring malformed command from %s: %s", self.endpoint, error)
        return commands

    def _send_ack(self, run_id: str, ack: Acknowledgement) -> None:
        status, body = self._request(self._url(run_id, "/ack"), json.dumps(ack.to_json()).encode())
        if status == 404:
            log.warning("steering: collector does not know command %s of run %s", ack.command_id, run_id)
            return  # nothing to retry: the command is gone
        if status != 200:
            raise RuntimeError(f"POST steering ack: HTTP {status} {body[:200]!r}")


class StoreCommandSource(_BackgroundSource):
    """Polls the provenance store itself (embedded mode): the SQLite file or MonetDB the capture writes to.

    The worker holds one store connection; each fetch is one indexed read of the run's pending commands.
    """

    def __init__(self, store_url: str, interval_s: float = DEFAULT_INTERVAL_S) -> None:
        super().__init__(interval_s)
        if not store_url or not store_url.strip():
            raise ValueError("steering store: URL must not be empty")
        self.store_url = store_url
        self._store: object | None = None

    def describe(self) -> str:
        from collector.service import redact

        return redact(self.store_url)

    def _open(self) -> object:
        if self._store is None:
            from collector.store import open_store

            # Writable: acknowledgements update the command rows. Opening also creates the schema if the
            # capture has not yet written its first batch.
            self._store = open_store(self.store_url, read_only=False)
        return self._store

    def _fetch(self, run_id: str) -> list[SteeringCommand]:
        from collector.steering_channel import pending

        try:
            return pending(self._open(), run_id)
        except Exception:
            self._release()  # reconnect next time (MonetDB restarted, file replaced, ...)
            raise

    def _send_ack(self, run_id: str, ack: Acknowledgement) -> None:
        from collector.steering_channel import acknowledge

        if not acknowledge(self._open(), run_id, ack):
            log.warning("steering: store has no command %s for run %s", ack.command_id, run_id)

    def _release(self) -> None:
        store, self._store = self._store, None
        if store is not None:
            store.close()  # type: ignore[attr-defined]


def _parse_bool(text: str) -> bool:
    value = text.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError("expected true or false")


def _env(name: str) -> str | None:
    value = os.environ.get(name, "").strip()
    return value or None


def steering_endpoint(otlp_endpoint: str, explicit: str | None = None) -> str:
    """Where the collector serves /v1/steering: explicit > PINNPROV_STEERING_ENDPOINT > derived from OTLP.

    The steering routes live on the collector's OTLP/HTTP port. For an HTTP OTLP endpoint that is the same
    base URL; for gRPC it is the same host on the OTLP/HTTP port (4318), the collector's default layout.
    """
    from instrumentation import otlp

    chosen = explicit or _env(STEERING_ENDPOINT_ENV)
    if chosen:
        return chosen if "://" in chosen else "http://" + chosen
    base = otlp._with_scheme(otlp_endpoint)  # validates; adds http:// to host:port
    parts = urllib.parse.urlsplit(base)
    path = parts.path.rstrip("/").removesuffix(otlp.TRACES_PATH)
    if otlp.resolve_protocol(otlp_endpoint) == "grpc":
        host = f"[{parts.hostname}]" if ":" in (parts.hostname or "") else parts.hostname
        return urllib.parse.urlunsplit((parts.scheme, f"{host}:{otlp.HTTP_PORT}", "", "", ""))
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, path, "", ""))


def command_source_for(
    *,
    store: str | None = None,
    otlp_endpoint: str | None = None,
    headers: str | Mapping[str, str] | None = None,
    steering_endpoint_url: str | None = None,
    enabled: bool | None = None,
    interval_s: float | None = None,
) -> CommandSource:
    """The command source matching a capture configured with the same arguments as `open_capture`.

    - an OTLP endpoint (argument or OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT): poll that collector over HTTP,
      with the exporter's headers (OTEL_EXPORTER_OTLP_[TRACES_]HEADERS, else PINNPROV_COLLECTOR_TOKEN as a
      bearer token) so the same authentication applies;
    - otherwise the embedded store (argument, PINNPROV_STORE, or the default SQLite file);
    - capture disabled (PINNPROV_CAPTURE=0): no commands (the run is not in any store to be steered).
    The result has `close()`; use it as a context manager or call close() after training so the last
    acknowledgements (a stop's, typically) are delivered.
    """
    from instrumentation import otlp

    if not resolve("enabled", enabled, CAPTURE_ENV, True, _parse_bool):
        return _NoCommandsClosing()
    interval = float(resolve("steering_interval_s", interval_s, INTERVAL_ENV, DEFAULT_INTERVAL_S, float))
    endpoint = otlp.traces_endpoint(otlp_endpoint)
    if endpoint:
        # The exporter's rule (pinnprov.capture): explicit headers, else OTEL_* headers, else the collector token.
        header_text = headers if headers is not None else (
            _env("OTEL_EXPORTER_OTLP_TRACES_HEADERS") or _env("OTEL_EXPORTER_OTLP_HEADERS")
        )
        parsed = otlp.parse_headers(header_text) or {}
        if header_text is None and _env(TOKEN_ENV):
            parsed = {"authorization": f"Bearer {_env(TOKEN_ENV)}"}
        ca_file = _env("OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE") or _env("OTEL_EXPORTER_OTLP_CERTIFICATE")
        return HttpCommandSource(
            steering_endpoint(endpoint, steering_endpoint_url),
            parsed,
            interval_s=interval,
            ca_file=ca_file,
        )
    from collector.store import resolve_store_url

    return StoreCommandSource(resolve_store_url(store), interval_s=interval)


class _NoCommandsClosing(NoCommands):
    def close(self, timeout_s: float = 0.0) -> None:
        return None

    def __enter__(self) -> _NoCommandsClosing:
        return self

    def __exit__(self, *_: object) -> None:
        return None
