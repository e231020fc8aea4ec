"""An ASGI app served by uvicorn (httptools) on its own event loop in a background thread.

Why a thread and not uvicorn's own `run()`: the collector is a threaded service (gRPC server, delivery
workers, stats) with one main thread waiting for signals; the HTTP server is one more part that starts and
stops with it. The socket is bound in the constructor, so a busy port or a bad address fails at once with
an OSError (and port 0 tells its real port before start), exactly like the gRPC receiver.
Any ASGI app can be served this way (the collector's OTLP/HTTP receiver, `pinnprov ui`).
"""

from __future__ import annotations

import asyncio
import socket
import threading
from dataclasses import dataclass
from ssl import SSLContext
from typing import TYPE_CHECKING

import uvicorn

from pinnprov.collector.receivers.http_protocol import Refuse, bounded_protocol

if TYPE_CHECKING:
    from starlette.types import ASGIApp


@dataclass(frozen=True)
class HttpLimits:
    """Connection-level limits (the body limits are the app's)."""

    max_connections: int = 256  # open connections; more are answered 503 and closed
    idle_timeout_s: float = 15.0  # keep-alive: an idle connection is closed after this long
    head_timeout_s: float = 30.0  # request line + headers must arrive within this
    drain_limit_bytes: int = 64 << 20  # unread body bytes dropped to keep a connection after an early answer
    drain_timeout_s: float = 10.0
    shutdown_grace_s: float = 5.0  # in-flight requests finish within this at stop()
    backlog: int = 512


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket; OSError if the address is in use or not available."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto=IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY on accepted sockets only when it sees TCP there.
    # Without it Nagle holds every response body written after its headers for a delayed ACK (40 ms).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT only; a listener still conflicts
        sock.bind((host, port))
        sock.listen(512)
    except BaseException:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


class ThreadedAsgiServer:
    """`start()` returns once the server accepts connections; `stop()` finishes in-flight requests first."""

    def __init__(self, app: ASGIApp, host: str, port: int, *, limits: HttpLimits = HttpLimits(),
                 ssl_context: SSLContext | None = None, refuse: Refuse = lambda path, reason, kind: None,
                 name: str = "http", server_header: str = "pinnprov") -> None:
        self.socket = bind_socket(host, port)
        self.port: int = self.socket.getsockname()[1]
        protocol = bounded_protocol(max_connections=limits.max_connections, head_timeout_s=limits.head_timeout_s,
                                    drain_limit_bytes=limits.drain_limit_bytes,
                                    drain_timeout_s=limits.drain_timeout_s, refuse=refuse)
        config = uvicorn.Config(
            app, http=protocol, ws="none", lifespan="off", loop="asyncio", log_config=None, access_log=False,
            proxy_headers=False, server_header=False, headers=[("server", server_header)],
            timeout_keep_alive=int(max(1, limits.idle_timeout_s)),
            timeout_graceful_shutdown=int(max(1, limits.shutdown_grace_s)), backlog=limits.backlog,
        )
        config.load()
        config.ssl = ssl_context  # our context (TLS 1.2+, the collector's certificate), not uvicorn's defaults
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._failed: BaseException | None = None
        self._ready = threading.Event()

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as error:  # noqa: BLE001 - reported to start(); the thread must end quietly
            self._failed = error
        finally:
            self._ready.set()

    async def _serve(self) -> None:
        task = asyncio.create_task(self._server.serve(sockets=[self.socket]))
        while not self._server.started and not task.done():
            await asyncio.sleep(0.01)
        self._ready.set()
        await task

    def start(self, timeout_s: float = 30.0) -> None:
        self._thread.start()
        if not self._ready.wait(timeout_s) or self._failed is not None or not self._server.started:
            self._server.should_exit = True
            raise OSError(f"HTTP server on port {self.port} did not start: {self._failed or 'timed out'}")

    def stop(self, timeout_s: float = 30.0) -> None:
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout_s)
        self.socket.close()
