"""Serve the UI with uvicorn on a socket bound here, so the URL (with the real port when port 0) is known first.

Exposure rule: loopback by default. Another address is refused unless TLS is configured (the token would
otherwise cross the network in clear text) or the user says `--allow-insecure-remote` knowingly.
"""

from __future__ import annotations

import errno
import ipaddress
import socket
import threading
from dataclasses import dataclass
from typing import Any

LOOPBACK_NAMES = ("localhost",)
DEFAULT_PORT = 8765  # tried first when no --port is given; if it is taken the OS picks one (the URL says which)


def is_loopback(host: str) -> bool:
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a name: it may resolve to anything


def check_exposure(host: str, *, tls: bool, allow_insecure_remote: bool) -> None:
    if is_loopback(host) or tls or allow_insecure_remote:
        return
    raise ValueError(
        f"refusing to serve on {host} without TLS: the token would travel in clear text "
        "(give --certfile and --keyfile, or --allow-insecure-remote on a network you trust, or use an SSH tunnel)"
    )


def allowed_hosts(host: str, extra: tuple[str, ...] = ()) -> frozenset[str]:
    """Host header values accepted: loopback names always; the bound address and this machine's names when exposed."""
    names = {"localhost", "127.0.0.1", "::1", host.lower().strip("[]")}
    if not is_loopback(host):
        names |= {socket.gethostname().lower(), socket.getfqdn().lower(), *_addresses(socket.gethostname())}
    names |= {name.lower().strip("[]") for name in extra}
    names.discard("0.0.0.0")
    names.discard("::")
    return frozenset(names)


def _addresses(name: str) -> set[str]:
    """This machine's addresses by its name (what a browser on the network types when 0.0.0.0 is bound)."""
    try:
        return {str(info[4][0]) for info in socket.getaddrinfo(name, None)}
    except OSError:
        return set()


def bind(host: str, port: int | None) -> socket.socket:
    """A listening socket; no --port: DEFAULT_PORT if free, else any free port; an explicit busy port is an error."""
    family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
    candidates = [DEFAULT_PORT, 0] if port is None else [port]
    for candidate in candidates:
        # proto IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on such sockets, and without it every small
        # response on a keep-alive connection waits ~40 ms for a delayed ACK (headers and body are two writes)
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host.strip("[]"), candidate))
        except OSError as error:
            sock.close()
            if error.errno == errno.EADDRINUSE and candidate != candidates[-1]:
                continue
            raise ValueError(f"cannot listen on {host}:{candidate}: {error.strerror}") from None
        sock.listen(128)
        sock.set_inheritable(True)
        return sock
    raise AssertionError("unreachable: the last candidate raises")


def url_for(host: str, port: int, token: str, *, tls: bool, path: str = "/") -> str:
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    if ":" in shown and not shown.startswith("["):
        shown = f"[{shown}]"
    return f"{'https' if tls else 'http'}://{shown}:{port}{path}?token={token}"


@dataclass
class Served:
    """A running server (for tests and benchmarks that serve from a thread)."""

    server: Any
    thread: threading.Thread | None
    port: int

    def stop(self) -> None:
        self.server.should_exit = True
        if self.thread is not None:
            self.thread.join(timeout=10)


def make_server(app: Any, *, certfile: str | None = None, keyfile: str | None = None) -> Any:
    import uvicorn

    config = uvicorn.Config(
        app, log_level="warning", access_log=False,  # access logs would record ?token= URLs
        ssl_certfile=certfile, ssl_keyfile=keyfile, lifespan="on", server_header=False,
        timeout_graceful_shutdown=3,  # Ctrl-C must not wait for a browser tab's keep-alive connection
    )
    return uvicorn.Server(config)


def serve_forever(app: Any, sock: socket.socket, *, certfile: str | None = None, keyfile: str | None = None) -> None:
    make_server(app, certfile=certfile, keyfile=keyfile).run(sockets=[sock])


def serve_in_thread(app: Any, sock: socket.socket) -> Served:
    server = make_server(app)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True, name="pinnprov-ui")
    thread.start()
    return Served(server, thread, sock.getsockname()[1])
