"""Reading an OTLP/HTTP request body safely: bounded while it is read, bounded again when it is inflated.

Why here and not in the server: the size limit must hold for every way a body can arrive (Content-Length,
`Transfer-Encoding: chunked` with no length at all, gzip or deflate that inflates far beyond what was sent),
so it is enforced on the bytes as they come in and on the inflated output, never by trusting a header.
Every refusal is a `Refusal` carrying the HTTP status, a counted reason (the vocabulary of
`Intake.refuse`) and a finer `kind`, so /metrics-json tells *why* requests were refused.

Reasons and kinds used here:
    too_large / body, decompressed          413
    malformed / gzip, deflate               400 (not valid, truncated, trailing bytes)
    unsupported / content_encoding          415
    timeout / body                          408 (the client stalled while sending the body)
"""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterator

import anyio

GZIP_MAGIC = b"\x1f\x8b"


class Refusal(Exception):
    """A request answered with an error status; `close` asks to drop the connection (the client misbehaves)."""

    def __init__(self, status: int, message: str, reason: str, kind: str = "", *, close: bool = False) -> None:
        super().__init__(message)
        self.status, self.reason, self.kind, self.close = status, reason, kind, close


def check_declared_length(content_length: str | None, limit: int, drain_limit: int) -> None:
    """Refuse a declared length above the limit before reading a byte of it.

    The server then reads and drops the unread body to keep the connection (closing a socket with unread
    data resets it, and the client may never see the 413); a body it would not drain gets `Connection: close`.
    """
    if content_length is not None and content_length.strip().isdigit() and int(content_length) > limit:
        length = int(content_length)
        raise Refusal(413, f"request of {length} bytes exceeds the {limit}-byte limit", "too_large", "body",
                      close=length > drain_limit)


async def read_limited(chunks: AsyncIterator[bytes], limit: int, timeout_s: float) -> bytes:
    """Join the body's chunks, refusing it as soon as it passes `limit` bytes or takes longer than `timeout_s`."""
    parts: list[bytes] = []
    size = 0
    try:
        with anyio.fail_after(timeout_s):
            async for chunk in chunks:
                size += len(chunk)
                if size > limit:
                    raise Refusal(413, f"request body exceeds the {limit}-byte limit", "too_large", "body")
                parts.append(chunk)
    except TimeoutError:
        raise Refusal(408, f"request body not received within {timeout_s:g} s", "timeout", "body",
                      close=True) from None
    return b"".join(parts)


def check_encoding(encoding: str) -> None:
    if encoding not in ("", "identity", "gzip", "deflate"):
        raise Refusal(415, f"unsupported Content-Encoding {encoding!r} (use gzip, deflate or none)", "unsupported",
                      "content_encoding")


def decompress(body: bytes, encoding: str, limit: int) -> bytes:
    """The inflated body, never more than `limit` bytes of it in memory (a zip bomb stops at limit + 1).

    gzip may hold several members (RFC 1952); `deflate` is the zlib format of RFC 9110 (a gzip header is
    accepted too, as senders confuse the two). Truncated streams and trailing garbage are refusals: a
    prefix of a protobuf can itself be a valid, but wrong, message.
    """
    check_encoding(encoding)
    if encoding in ("", "identity"):
        return body
    wbits = zlib.MAX_WBITS | (16 if encoding == "gzip" else 32)
    parts: list[bytes] = []
    size = 0
    data = body
    while True:
        inflater = zlib.decompressobj(wbits)
        try:
            part = inflater.decompress(data, limit + 1 - size)
        except zlib.error as error:
            raise Refusal(400, f"body is not valid {encoding}: {error}", "malformed", encoding) from None
        size += len(part)
        if size > limit:
            raise Refusal(413, f"decompressed request exceeds the {limit}-byte limit", "too_large", "decompressed")
        parts.append(part)
        if not inflater.eof:
            raise Refusal(400, f"{encoding} body is truncated", "malformed", encoding)
        data = inflater.unused_data
        if not data:
            return b"".join(parts)
        if encoding != "gzip" or not data.startswith(GZIP_MAGIC):
            raise Refusal(400, f"{len(data)} unexpected bytes after the {encoding} stream", "malformed", encoding)
