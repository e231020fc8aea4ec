"""uvicorn's httptools protocol with the limits a server facing many clients needs, which uvicorn leaves out.

uvicorn parses HTTP/1.1 (keep-alive, chunked bodies, pipelining) with httptools and times out idle
keep-alive connections. It does not bound the number of connections, never times out a connection that
opens and sends nothing or sends its headers byte by byte, and logs a warning for every unparseable
request. This subclass adds, per connection:

- a bound: past `max_connections` open connections a new one gets `503` and is closed at once;
- a head timeout: a request's line and headers must arrive within `head_timeout_s` of the connection
  opening (or of the request's first byte), else `408` and close;
- a bounded drain: when the app answers before reading the whole body (413, 401, 415), uvicorn reads
  and drops the rest to keep the connection; past `drain_limit_bytes` or `drain_timeout_s` it closes;
- framing errors (bad chunk sizes, garbage instead of HTTP) counted, answered `400` and closed, logged at
  debug level only (a fuzzer must not be able to fill the log).

Limits are class attributes: `bounded_protocol(...)` makes a subclass per server, since uvicorn builds
protocols itself with a fixed signature.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import httptools
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

log = logging.getLogger(__name__)

Refuse = Callable[[str | None, str, str], None]
"""(path or None, reason, kind): counts a refusal the app never saw."""

_BUSY = (b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain; charset=utf-8\r\n"
         b"content-length: 34\r\nretry-after: 1\r\nconnection: close\r\n\r\ntoo many connections, retry later\n")
_SLOW = (b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\n"
         b"content-length: 35\r\nconnection: close\r\n\r\nrequest headers not received in time")


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    max_connections: int = 256
    head_timeout_s: float = 30.0
    drain_limit_bytes: int = 16 << 20
    drain_timeout_s: float = 10.0
    refuse: Refuse = staticmethod(lambda path, reason, kind: None)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._refused = False
        self._head_timer: asyncio.TimerHandle | None = None
        self._drain_timer: asyncio.TimerHandle | None = None
        self._drained = 0
        self._in_head = False

    # --- connection bound -------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        if len(self.connections) >= self.max_connections:
            self._refused = True
            self.transport = transport
            self.refuse(None, "overload", "connections")
            transport.write(_BUSY)
            transport.close()
            return
        super().connection_made(transport)
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel(self._head_timer)
        self._cancel(self._drain_timer)
        if self._refused:
            return
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as error:
            self.refuse(self._path(), "malformed", "http_framing")
            log.debug("unparseable HTTP from %s: %s", self.client, error)
            self.send_400_response("Invalid HTTP request received.")
        except httptools.HttpParserUpgrade:
            self.refuse(self._path(), "unsupported", "upgrade")
            self.send_400_response("Protocol upgrades are not supported.")

    # --- head timeout -----------------------------------------------------------------------------
    def _arm_head_timer(self) -> None:
        self._cancel(self._head_timer)
        self._head_timer = self.loop.call_later(self.head_timeout_s, self._head_timed_out)

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.transport.is_closing():
            return
        if self._in_head:  # a request started and its headers never completed (slowloris)
            self.refuse(None, "timeout", "headers")
            self.transport.write(_SLOW)
        self.transport.close()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._unset_keepalive_if_required()  # a request is starting: the head timer takes over
        self._in_head = True
        self._arm_head_timer()

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._cancel(self._head_timer)
        self._head_timer = None
        super().on_headers_complete()

    # --- bounded drain of bodies the app did not read ---------------------------------------------
    def on_body(self, body: bytes) -> None:
        if self.cycle is not None and self.cycle.response_complete:
            self._drained += len(body)
            if self._drained > self.drain_limit_bytes and not self.transport.is_closing():
                self.transport.close()
            return
        super().on_body(body)

    def on_message_complete(self) -> None:
        draining = self._drain_timer is not None
        self._cancel(self._drain_timer)
        self._drain_timer = None
        self._drained = 0
        super().on_message_complete()
        if draining and not self.transport.is_closing():  # drained: idle again, as after any response
            self._unset_keepalive_if_required()
            self.timeout_keep_alive_task = self.loop.call_later(self.timeout_keep_alive,
                                                                self.timeout_keep_alive_handler)

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self.cycle is not None and self.cycle.more_body and not self.transport.is_closing():
            self._drained = 0
            self._cancel(self._drain_timer)
            self._drain_timer = self.loop.call_later(self.drain_timeout_s, self._drain_timed_out)

    def _drain_timed_out(self) -> None:
        self._drain_timer = None
        if not self.transport.is_closing():
            self.transport.close()

    # --- helpers ----------------------------------------------------------------------------------
    def _path(self) -> str | None:
        scope = self.scope
        return str(scope.get("path")) if scope is not None and scope.get("path") else None

    @staticmethod
    def _cancel(timer: asyncio.TimerHandle | None) -> None:
        if timer is not None:
            timer.cancel()


def bounded_protocol(*, max_connections: int, head_timeout_s: float, drain_limit_bytes: int,
                     drain_timeout_s: float, refuse: Refuse) -> type[BoundedHttpToolsProtocol]:
    """A protocol class with these limits (uvicorn's `http=` setting takes a class)."""
    return type("PinnprovHttpProtocol", (BoundedHttpToolsProtocol,), {
        "max_connections": max_connections, "head_timeout_s": head_timeout_s,
        "drain_limit_bytes": drain_limit_bytes, "drain_timeout_s": drain_timeout_s,
        "refuse": staticmethod(refuse),
    })
