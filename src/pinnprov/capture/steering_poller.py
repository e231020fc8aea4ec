"""Trainer-side steering command sources: the embedded store (SQLite/MonetDB) or the collector over HTTP.

Both run their I/O on a worker thread (pinnprov/capture/steering_worker.py), so the trainer's per-epoch `poll()`
is a deque check. `command_source_for(...)` picks the source that matches a capture configured with the same
settings: the store the embedded capture writes, or the collector the OTLP exporter sends to.
"""

from __future__ import annotations

import json
import logging
import os
import ssl
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from typing import Protocol, Self

from pinnprov.capture.capture_settings import CaptureSettings
from pinnprov.capture.steering_worker import DEFAULT_INTERVAL_S, BackgroundSource
from pinnprov.core.settings import parse_bool, resolve, resolve_store_url
from pinnprov.core.steering import Acknowledgement, SteeringCommand, command_from_json
from pinnprov.core.urls import redact
from pinnprov.pinn.steering import CommandSource, NoCommands

log = logging.getLogger(__name__)

INTERVAL_ENV = "PINNPROV_STEERING_INTERVAL"
STEERING_ENDPOINT_ENV = "PINNPROV_STEERING_ENDPOINT"
CAPTURE_ENV = "PINNPROV_CAPTURE"  # capture off means no store knows the run: nothing to poll


class ClosingCommandSource(CommandSource, Protocol):
    """A CommandSource with a worker or a connection behind it: close it (or use `with`) after training, so that
    the last acknowledgements (a stop's, typically) are delivered."""

    def close(self, timeout_s: float = ...) -> None: ...

    def __enter__(self) -> Self: ...

    def __exit__(self, *_: object) -> None: ...


class HttpCommandSource(BackgroundSource):
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


class CommandChannel(Protocol):
    """What the store-backed source needs from a provenance store: the composition root hands in
    `pinnprov.store.steering_channel.StoreChannel`, so this layer never knows SQL or the store's schema."""

    def pending(self, run_id: str) -> list[SteeringCommand]: ...

    def acknowledge(self, run_id: str, ack: Acknowledgement) -> bool: ...

    def close(self) -> None: ...


ChannelOpener = Callable[[str], CommandChannel]
"""Opens the command channel of a store URL (called on the worker thread, again after a failure)."""


class StoreCommandSource(BackgroundSource):
    """Polls the provenance store itself (embedded mode): the SQLite file or MonetDB the capture writes to.

    The worker holds one channel (one store connection); each fetch is one indexed read of the run's pending
    commands. A failing channel is closed and reopened on the next attempt (MonetDB restarted, file replaced).
    """

    def __init__(self, store_url: str, open_channel: ChannelOpener, interval_s: float = DEFAULT_INTERVAL_S) -> None:
        super().__init__(interval_s)
        if not store_url or not store_url.strip():
            raise ValueError("steering store: URL must not be empty")
        self.store_url = store_url
        self._open_channel = open_channel
        self._channel: CommandChannel | None = None

    def describe(self) -> str:
        return redact(self.store_url)

    def _open(self) -> CommandChannel:
        if self._channel is None:
            self._channel = self._open_channel(self.store_url)
        return self._channel

    def _fetch(self, run_id: str) -> list[SteeringCommand]:
        try:
            return self._open().pending(run_id)
        except Exception:
            self._release()  # reconnect next time
            raise

    def _send_ack(self, run_id: str, ack: Acknowledgement) -> None:
        if not self._open().acknowledge(run_id, ack):
            log.warning("steering: store has no command %s for run %s", ack.command_id, run_id)

    def _release(self) -> None:
        channel, self._channel = self._channel, None
        if channel is not None:
            channel.close()


def _env(name: str) -> str | None:
    value = os.environ.get(name, "").strip()
    return value or None


def steering_endpoint(otlp_endpoint: str, explicit: str | None = None) -> str:
    """Where the collector serves /v1/steering: explicit > PINNPROV_STEERING_ENDPOINT > derived from OTLP.

    The steering routes live on the collector's OTLP/HTTP port. For an HTTP OTLP endpoint that is the same
    base URL; for gRPC it is the same host on the OTLP/HTTP port (4318), the collector's default layout.
    """
    from pinnprov.capture import otlp

    chosen = explicit or _env(STEERING_ENDPOINT_ENV)
    if chosen:
        return chosen if "://" in chosen else "http://" + chosen
    base = otlp.with_scheme(otlp_endpoint)  # validates; adds http:// to host:port
    parts = urllib.parse.urlsplit(base)
    path = parts.path.rstrip("/").removesuffix(otlp.TRACES_PATH)
    if otlp.resolve_protocol(otlp_endpoint) == "grpc":
        host = f"[{parts.hostname}]" if ":" in (parts.hostname or "") else parts.hostname
        return urllib.parse.urlunsplit((parts.scheme, f"{host}:{otlp.HTTP_PORT}", "", "", ""))
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, path, "", ""))


def command_source_for(
    *,
    open_channel: ChannelOpener,
    store: str | None = None,
    otlp_endpoint: str | None = None,
    headers: str | Mapping[str, str] | None = None,
    steering_endpoint_url: str | None = None,
    enabled: bool | None = None,
    interval_s: float | None = None,
) -> ClosingCommandSource:
    """The command source matching a capture configured with the same arguments as `open_capture`.

    - an OTLP endpoint (argument or OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT): poll that collector over HTTP,
      with the exporter's headers (OTEL_EXPORTER_OTLP_[TRACES_]HEADERS, else PINNPROV_COLLECTOR_TOKEN as a
      bearer token) so the same authentication applies;
    - otherwise the embedded store (argument, PINNPROV_STORE, or the default SQLite file);
    - capture disabled (PINNPROV_CAPTURE=0): no commands (the run is not in any store to be steered).
    `open_channel` opens a store's command channel (the composition root passes the collector's; users call
    `pinnprov.capture.command_source_for`, which does). The result has `close()`; use it as a context manager
    or call close() after training so the last
    acknowledgements (a stop's, typically) are delivered.
    """
    from pinnprov.capture.destination import resolve_destination

    if not resolve("enabled", enabled, CAPTURE_ENV, True, parse_bool):
        return _NoCommandsClosing()
    interval = float(resolve("steering_interval_s", interval_s, INTERVAL_ENV, DEFAULT_INTERVAL_S, float))
    destination = resolve_destination(otlp_endpoint, headers=headers)  # the exporter's own rules
    if destination is not None:
        return HttpCommandSource(
            steering_endpoint(destination.endpoint, steering_endpoint_url),
            destination.headers,
            interval_s=interval,
            ca_file=destination.ca_file,
        )
    return StoreCommandSource(resolve_store_url(store), open_channel, interval_s=interval)


def command_source_from(settings: CaptureSettings, open_channel: ChannelOpener) -> ClosingCommandSource:
    """The command source for a resolved capture configuration (the same choice as `command_source_for`): the
    collector over HTTP with the exporter's headers and TLS, else the store the spans go to; none when capture
    is off."""
    if not settings.enabled:
        return _NoCommandsClosing()
    destination = settings.destination
    if destination is not None:
        return HttpCommandSource(
            steering_endpoint(destination.endpoint, settings.steering_endpoint_url),
            destination.headers,
            interval_s=settings.steering_interval_s,
            ca_file=destination.ca_file,
        )
    return StoreCommandSource(settings.store_url or resolve_store_url(None), open_channel,
                              interval_s=settings.steering_interval_s)


class _NoCommandsClosing(NoCommands):
    def close(self, timeout_s: float = 0.0) -> None:
        return None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        return None
