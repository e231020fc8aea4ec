"""The OTLP/HTTP receiver in-process, over real sockets: chunked bodies, limits while reading, keep-alive,
the connection bound and timeouts, and an event loop that a blocked spool cannot stall.

Real parts only: a uvicorn server on loopback, a real Spool and Intake, requests and raw sockets as clients.
"""

from __future__ import annotations

import gzip
import http.client
import socket
import threading
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from google.rpc.status_pb2 import Status
from prov_builders import request_for, sample_run

from pinnprov.collector.auth import BearerToken
from pinnprov.collector.counters import Counters
from pinnprov.collector.receivers.http import HttpReceiver
from pinnprov.collector.receivers.http_server import HttpLimits, bind_socket
from pinnprov.collector.receivers.intake import Intake
from pinnprov.core.spool import Signal, Spool

LIMIT = 200_000
TOKEN = "t0ken"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
PROTOBUF = {"Content-Type": "application/x-protobuf", **AUTH}


class Receiver:
    def __init__(self, tmp_path: Path, limits: HttpLimits | None = None, body_timeout_s: float = 30.0) -> None:
        self.counters = Counters()
        self.spool = Spool(tmp_path / "spool", consumers=("test",))
        self.server = HttpReceiver("127.0.0.1:0", Intake(self.spool, self.counters), token=BearerToken(TOKEN),
                                   max_request_bytes=LIMIT, health=lambda: (True, {"status": "ok"}),
                                   metrics=lambda: {"refused": self.counters.snapshot()}, limits=limits,
                                   max_concurrent=4, body_timeout_s=body_timeout_s)
        self.server.start()
        self.url = f"http://127.0.0.1:{self.server.port}"

    def spooled(self) -> list[bytes]:
        return [entry.payload for entry in self.spool.read(self.spool.cursor("test"))]

    def close(self) -> None:
        self.server.stop()
        self.spool.close()


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[Receiver]:
    made = Receiver(tmp_path)
    yield made
    made.close()


def _good(n: int = 1, epochs: int = 3) -> bytes:
    return request_for(sample_run(n, epochs=epochs)).SerializeToString()


def _chunks(data: bytes, size: int = 1000) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start:start + size]


def test_chunked_bodies_without_content_length_are_accepted_and_spooled_as_sent(receiver: Receiver) -> None:
    body = _good(1, epochs=40)
    prepared = requests.Request("POST", f"{receiver.url}/v1/traces", data=_chunks(body), headers=PROTOBUF).prepare()
    assert prepared.headers["Transfer-Encoding"] == "chunked" and "Content-Length" not in prepared.headers
    with requests.Session() as session:
        answer = session.send(prepared, timeout=30)
        assert answer.status_code == 200, answer.content
        zipped = gzip.compress(_good(2))
        answer = session.post(f"{receiver.url}/v1/traces", data=_chunks(zipped, 100), timeout=30,
                              headers={**PROTOBUF, "Content-Encoding": "gzip"})
        assert answer.status_code == 200, answer.content
    assert receiver.spooled() == [body, _good(2)]
    assert receiver.counters.get("received.traces.requests") == 2


def test_a_chunked_body_past_the_limit_is_413_and_the_connection_stays_usable(receiver: Receiver) -> None:
    with requests.Session() as session:
        answer = session.post(f"{receiver.url}/v1/traces", data=_chunks(b"\x00" * (LIMIT * 3), 10_000),
                              headers=PROTOBUF, timeout=30)
        assert answer.status_code == 413 and str(LIMIT) in Status.FromString(answer.content).message
        assert session.post(f"{receiver.url}/v1/traces", data=_good(), headers=PROTOBUF, timeout=30).ok
    assert receiver.counters.get("refused.traces.too_large") == 1
    assert receiver.counters.get("refused_kind.traces.too_large.body") == 1
    assert len(receiver.spooled()) == 1


@pytest.mark.parametrize(
    ("body", "encoding", "status", "kind"),
    [
        (gzip.compress(_good())[:-9], "gzip", 400, "refused_kind.traces.malformed.gzip"),  # truncated
        (gzip.compress(_good()) + b"garbage", "gzip", 400, "refused_kind.traces.malformed.gzip"),
        (b"not gzip at all", "gzip", 400, "refused_kind.traces.malformed.gzip"),
        (gzip.compress(b"\x00" * (LIMIT + 1)), "gzip", 413, "refused_kind.traces.too_large.decompressed"),
        (_good(), "br", 415, "refused_kind.traces.unsupported.content_encoding"),
    ],
)
def test_bad_compression_is_refused_by_kind(receiver: Receiver, body: bytes, encoding: str, status: int,
                                            kind: str) -> None:
    answer = requests.post(f"{receiver.url}/v1/traces", data=body, timeout=30,
                           headers={**PROTOBUF, "Content-Encoding": encoding})
    assert answer.status_code == status
    assert receiver.counters.get(kind) == 1 and receiver.spooled() == []


def test_gzip_members_and_zlib_deflate_are_accepted(receiver: Receiver) -> None:
    first, second = _good(1, epochs=2), _good(2, epochs=2)
    members = gzip.compress(first) + gzip.compress(second)  # two members: one concatenated message
    for body, encoding in ((members, "gzip"), (zlib.compress(first), "deflate")):
        answer = requests.post(f"{receiver.url}/v1/traces", data=body, timeout=30,
                               headers={**PROTOBUF, "Content-Encoding": encoding})
        assert answer.status_code == 200, answer.content
    assert receiver.spooled() == [first + second, first]


def test_keep_alive_serves_many_requests_on_one_connection(receiver: Receiver) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", receiver.server.port, timeout=30)
    ports = set()
    for n in range(5):
        connection.request("POST", "/v1/traces", body=_good(n + 1, epochs=1), headers=PROTOBUF)
        answer = connection.getresponse()
        answer.read()
        assert answer.status == 200 and answer.getheader("connection") != "close"
        ports.add(connection.sock.getsockname()[1])
    connection.close()
    assert len(ports) == 1 and len(receiver.spooled()) == 5


def test_deep_json_bad_protobuf_and_garbage_http_are_400_counted_by_kind(receiver: Receiver) -> None:
    deep = requests.post(f"{receiver.url}/v1/traces", data=b"[" * 100_000, timeout=30,
                         headers={**AUTH, "Content-Type": "application/json"})
    assert deep.status_code == 400 and "too deeply" in deep.json()["message"]
    flipped = bytearray(_good())
    flipped[3] ^= 0xFF
    assert requests.post(f"{receiver.url}/v1/traces", data=bytes(flipped), headers=PROTOBUF, timeout=30
                         ).status_code == 400
    with socket.create_connection(("127.0.0.1", receiver.server.port), timeout=30) as raw:
        raw.sendall(b"\x16\x03\x01 this is not HTTP\r\n\r\n")
        assert raw.recv(100).startswith(b"HTTP/1.1 400")
    counts = receiver.counters.snapshot()
    assert counts["refused_kind.traces.malformed.json_depth"] == 1
    assert counts["refused_kind.traces.malformed.protobuf"] == 1
    assert counts["refused_kind.other.malformed.http_framing"] == 1
    assert counts["refused.traces.malformed"] == 2 and receiver.spooled() == []


def test_unknown_paths_and_methods_answer_json_after_authentication(receiver: Receiver) -> None:
    assert requests.get(f"{receiver.url}/nowhere", timeout=30).status_code == 401
    missing = requests.get(f"{receiver.url}/nowhere", headers=AUTH, timeout=30)
    assert missing.status_code == 404 and "nowhere" in missing.json()["error"]
    wrong = requests.get(f"{receiver.url}/v1/traces", headers=AUTH, timeout=30)
    assert wrong.status_code == 405 and wrong.headers["Allow"] == "POST" and "GET" in wrong.json()["error"]
    assert requests.get(f"{receiver.url}/healthz", timeout=30).json() == {"status": "ok"}  # open
    assert receiver.counters.get("refused.other.unauthenticated") == 1


def test_connections_past_the_bound_get_503_and_are_closed(tmp_path: Path) -> None:
    made = Receiver(tmp_path, HttpLimits(max_connections=2))
    try:
        held = [socket.create_connection(("127.0.0.1", made.server.port), timeout=30) for _ in range(2)]
        time.sleep(0.2)  # the server has accepted both
        with socket.create_connection(("127.0.0.1", made.server.port), timeout=30) as third:
            answer = third.recv(200)
            assert answer.startswith(b"HTTP/1.1 503") and b"too many connections" in answer
            assert third.recv(100) == b""  # closed
        for sock in held:
            sock.close()
        assert made.counters.get("refused_kind.other.overload.connections") == 1
        assert requests.post(f"{made.url}/v1/traces", data=_good(), headers=PROTOBUF, timeout=30).ok
    finally:
        made.close()


def test_slow_headers_and_slow_bodies_time_out(tmp_path: Path) -> None:
    made = Receiver(tmp_path, HttpLimits(head_timeout_s=0.5), body_timeout_s=0.5)
    try:
        with socket.create_connection(("127.0.0.1", made.server.port), timeout=30) as idle:
            assert idle.recv(100) == b""  # opened and sent nothing: closed after the head timeout
        with socket.create_connection(("127.0.0.1", made.server.port), timeout=30) as slowloris:
            slowloris.sendall(b"POST /v1/traces HTTP/1.1\r\nHost: x\r\n")
            assert slowloris.recv(100).startswith(b"HTTP/1.1 408")
        with socket.create_connection(("127.0.0.1", made.server.port), timeout=30) as stalled:
            stalled.sendall(f"POST /v1/traces HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"
                            "Content-Type: application/x-protobuf\r\nContent-Length: 100\r\n\r\n0123456789".encode())
            answer = stalled.recv(500)
            assert answer.startswith(b"HTTP/1.1 408") and b"connection: close" in answer.lower()
        assert made.counters.get("refused_kind.other.timeout.headers") == 1
        assert made.counters.get("refused_kind.traces.timeout.body") == 1
    finally:
        made.close()


def test_a_blocked_spool_does_not_stall_other_clients(receiver: Receiver) -> None:
    results: dict[str, Any] = {}
    with receiver.spool._lock:  # the disk "hangs": appends (and fsyncs) wait in their worker thread
        sender = threading.Thread(target=lambda: results.update(good=requests.post(
            f"{receiver.url}/v1/traces", data=_good(), headers=PROTOBUF, timeout=60)))
        sender.start()
        time.sleep(0.3)
        assert "good" not in results  # still waiting for the spool ...
        bad = requests.post(f"{receiver.url}/v1/traces", data=b"\xff\xff", headers=PROTOBUF, timeout=10)
        assert bad.status_code == 400  # ... and yet another client is answered at once
        assert requests.get(f"{receiver.url}/nowhere", headers=AUTH, timeout=10).status_code == 404
    sender.join(60)
    assert results["good"].status_code == 200 and receiver.spooled() == [_good()]


def test_metrics_requests_in_json_are_spooled_as_protobuf(receiver: Receiver) -> None:
    body = (b'{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"name":"pinn.loss","gauge":{"dataPoints":'
            b'[{"asDouble":1.5,"timeUnixNano":"1"}]}}]}]}]}')
    answer = requests.post(f"{receiver.url}/v1/metrics", data=body, timeout=30,
                           headers={**AUTH, "Content-Type": "application/json"})
    assert answer.status_code == 200 and answer.json() == {}
    (entry,) = receiver.spool.read(receiver.spool.cursor("test"))
    assert entry.signal is Signal.METRICS and receiver.counters.get("received.metrics.items") == 1


def test_listening_socket_is_tcp_so_asyncio_disables_nagle_on_connections() -> None:
    # asyncio sets TCP_NODELAY on accepted sockets only when their proto is IPPROTO_TCP; with proto 0 every
    # response body written after its headers waited ~40 ms for a delayed ACK (refusals took 45 ms each).
    sock = bind_socket("127.0.0.1", 0)
    try:
        assert sock.proto == socket.IPPROTO_TCP
    finally:
        sock.close()
