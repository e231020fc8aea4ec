"""Who may talk to `pinnprov ui`: a per-process token (as Jupyter does), the Host header, and for writes the Origin.

Threats and answers:
- another user or process on the machine, or anyone on the network if exposed: every request needs the random
  token printed with the URL (in the `X-PinnProv-Token` header, a `?token=` query, or the cookie set after the
  first visit);
- a web page in the user's browser forging a steering POST (CSRF): a POST counts only with the token in the
  header, which another site cannot set or read (no CORS here), and a foreign Origin is refused outright;
- DNS rebinding (a foreign site's name resolved to 127.0.0.1): the Host header must name this server.
The cookie is per port (cookies are not port-scoped) and SameSite=Strict; pages get the token in a meta tag for
their own fetches. Compared in constant time.
"""

from __future__ import annotations

import http.cookies
import secrets
import urllib.parse
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

TOKEN_HEADER = "x-pinnprov-token"
TOKEN_QUERY = "token"
READ_METHODS = ("GET", "HEAD")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Asgi = Callable[[Scope, Receive, Send], Awaitable[None]]


def new_token() -> str:
    return secrets.token_hex(24)


@dataclass(frozen=True)
class Guard:
    token: str
    allowed_hosts: frozenset[str]  # host names or addresses (lower case, IPv6 without brackets)
    port: int
    secure: bool = False  # TLS: the cookie gets the Secure flag

    @property
    def cookie_name(self) -> str:
        return f"pinnprov_ui_{self.port}"

    def cookie(self) -> str:
        secure = "; Secure" if self.secure else ""
        return f"{self.cookie_name}={self.token}; Path=/; HttpOnly; SameSite=Strict{secure}"

    def matches(self, presented: str | None) -> bool:
        return presented is not None and secrets.compare_digest(presented.encode(), self.token.encode())

    def host_allowed(self, host_header: str | None) -> bool:
        if not host_header:
            return False
        host, port = split_host(host_header)
        return host in self.allowed_hosts and (port is None or port == self.port)


def split_host(value: str) -> tuple[str, int | None]:
    """'127.0.0.1:8765' -> ('127.0.0.1', 8765); '[::1]:80' -> ('::1', 80); a bad port -> (host, -1)."""
    value = value.strip().lower()
    if value.startswith("["):
        host, _, rest = value[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else ""
    else:
        host, _, port_text = value.partition(":")
    if not port_text:
        return host, None
    return (host, int(port_text)) if port_text.isdigit() else (host, -1)


def _headers(scope: Scope) -> dict[str, str]:
    return {key.decode("latin-1").lower(): value.decode("latin-1") for key, value in scope.get("headers", [])}


def _query_token(scope: Scope) -> str | None:
    values = urllib.parse.parse_qs(scope.get("query_string", b"").decode("latin-1")).get(TOKEN_QUERY)
    return values[0] if values else None


def _cookie_token(headers: dict[str, str], name: str) -> str | None:
    jar: http.cookies.SimpleCookie = http.cookies.SimpleCookie()
    try:
        jar.load(headers.get("cookie", ""))
    except http.cookies.CookieError:
        return None
    morsel = jar.get(name)
    return morsel.value if morsel is not None else None


def _origin_allowed(origin: str, guard: Guard) -> bool:
    parts = urllib.parse.urlsplit(origin)
    expected_scheme = "https" if guard.secure else "http"
    port = parts.port if parts.port is not None else (443 if parts.scheme == "https" else 80)
    return parts.scheme == expected_scheme and (parts.hostname or "") in guard.allowed_hosts and port == guard.port


async def _refuse(send: Send, status: int, message: str, *, json_body: bool) -> None:
    import json

    body = (json.dumps({"error": message}) if json_body else message + "\n").encode()
    kind = b"application/json" if json_body else b"text/plain; charset=utf-8"
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", kind), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


class GuardMiddleware:
    """ASGI middleware: refuses requests without the token, with a foreign Host, or writes with a foreign Origin.

    A page opened with `?token=` is redirected to itself without it, with the cookie set, so the token leaves the
    address bar and the browser history.
    """

    def __init__(self, app: Asgi, guard: Guard) -> None:
        self.app = app
        self.guard = guard

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = _headers(scope)
        path = str(scope.get("path", "/"))
        api = path.startswith("/api/")
        if not self.guard.host_allowed(headers.get("host")):
            await _refuse(send, 403, "Host header not allowed (DNS rebinding protection)", json_body=api)
            return
        method = str(scope.get("method", "GET")).upper()
        header_token = headers.get(TOKEN_HEADER)
        if method not in READ_METHODS:
            origin = headers.get("origin")
            if origin is not None and not _origin_allowed(origin, self.guard):
                await _refuse(send, 403, f"cross-origin request refused (Origin {origin})", json_body=api)
            elif not self.guard.matches(header_token):
                await _refuse(send, 403, f"missing or wrong token: send it in the {TOKEN_HEADER} header",
                              json_body=api)
            else:
                await self.app(scope, receive, send)
            return
        query_token = _query_token(scope)
        if self.guard.matches(query_token) and not api and method == "GET":
            await self._redirect_with_cookie(scope, send)
            return
        presented = (header_token, query_token, _cookie_token(headers, self.guard.cookie_name))
        if not any(self.guard.matches(token) for token in presented):
            await _refuse(send, 403, "missing or wrong token: open the URL `pinnprov ui` printed (with ?token=...)",
                          json_body=api)
            return
        await self.app(scope, receive, send)

    async def _redirect_with_cookie(self, scope: Scope, send: Send) -> None:
        query = [(k, v) for k, v in urllib.parse.parse_qsl(scope.get("query_string", b"").decode("latin-1"))
                 if k != TOKEN_QUERY]
        location = str(scope.get("path", "/")) + ("?" + urllib.parse.urlencode(query) if query else "")
        await send({"type": "http.response.start", "status": 303, "headers": [
            (b"location", location.encode("latin-1")),
            (b"set-cookie", self.guard.cookie().encode("latin-1")),
            (b"cache-control", b"no-store"),
            (b"content-length", b"0"),
        ]})
        await send({"type": "http.response.body", "body": b""})


class HeadersMiddleware:
    """Headers on every response: no MIME sniffing, no framing, no Referer (it could carry a ?token=)."""

    HEADERS = ((b"x-content-type-options", b"nosniff"), (b"x-frame-options", b"DENY"),
               (b"referrer-policy", b"no-referrer"))

    def __init__(self, app: Asgi) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *self.HEADERS]
            await send(message)

        await self.app(scope, receive, with_headers)
