"""Collector ingest: sustained epoch spans/s into a store, memory under overload, end-to-end latency.

Runs a real `pinnprov collector` subprocess on loopback and measures, one JSON line per result:
- ingest: N sender processes (half gRPC, half HTTP/protobuf) send pre-encoded OTLP requests of 512 epoch
  spans (a distinct run each, so every row is new) as fast as the collector acknowledges; spans_per_s counts
  spans *stored* (rows in epoch_metric) from the first send to the last row; rss_mb is the collector's peak RSS;
- overload: the store is locked and the spool bounded (16 MiB): the collector must refuse with
  UNAVAILABLE / 503 instead of growing; shows accepted vs refused and the peak RSS;
- latency: a real SDK trainer (BatchSpanProcessor, pinnprov's 200 ms delay) ending epochs at 20/s; time from
  an epoch span's end to its row being visible in the store, median and p99 (SQLite, and MonetDB with --monetdb).
- ingest_micro: the two big costs in isolation, in this process, as median thread-CPU microseconds per span
  (CPU time, so other work on a shared machine inflates them less than wall time): translation of a decoded
  512-span request (`translate_us_per_span`; `translate_general_us_per_span` is the same through the general
  path only, for the ratio; `decode_us_per_span` is the protobuf decode before it) and one SQLite transaction
  writing 512 EpochRecords into a growing store (`sqlite_us_per_span`; `sqlite_wall_us_per_span` includes
  the commit's fsync). Printed last, or alone with --micro-only.
The SQLite sink always; MonetDB too with --monetdb (or when PINNPROV_TEST_MONETDB_URL is set): the server of
PINNPROV_TEST_MONETDB_URL, else one started from PINNPROV_TEST_MONETDB_LAUNCHER or mserver5 (bench/monetdb_target.py),
each measurement in a fresh schema.

`--protocols http` (or `grpc`) sends every request over that protocol only, to compare receivers.

Usage: python bench/ingest.py [--senders 4] [--requests 40] [--protocols grpc,http] [--skip-overload]
                              [--skip-latency] [--micro-only] [--monetdb]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "tests" / "support"))
sys.path.insert(0, str(ROOT / "bench"))
SPANS_PER_REQUEST = 512


def _template() -> bytes:
    from prov_builders import request_for, sample_run

    from pinnprov.core import vocabulary as v

    request = request_for(sample_run(1, epochs=SPANS_PER_REQUEST, ended=False))
    scope = request.resource_spans[0].scope_spans[0]
    epochs = [span for span in scope.spans if span.name == v.EPOCH_SPAN]
    del scope.spans[:]
    scope.spans.extend(epochs)  # only epoch spans: the bulk of what a trainer sends
    return request.SerializeToString()


def _requests(sender: int, count: int) -> list[bytes]:
    """`count` requests, each one run (distinct trace id) of 512 epoch spans."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    template = ExportTraceServiceRequest.FromString(_template())
    encoded = []
    for index in range(count):
        trace_id = (sender * 1_000_000 + index + 1).to_bytes(16, "big")
        for span in template.resource_spans[0].scope_spans[0].spans:
            span.trace_id = trace_id
        encoded.append(template.SerializeToString())
    return encoded


def _send(args: tuple[int, str, str, int, float, multiprocessing.Queue]) -> None:
    sender, protocol, endpoint, count, deadline, results = args
    payloads = _requests(sender, count)
    ok = refused = 0
    started = time.time()
    if protocol == "grpc":
        import grpc
        from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

        channel = grpc.insecure_channel(endpoint, options=[("grpc.max_send_message_length", 64 << 20)])
        stub = trace_service_pb2_grpc.TraceServiceStub(channel)
        for payload in payloads:
            while time.time() < deadline:
                try:
                    stub.Export(ExportTraceServiceRequest.FromString(payload), timeout=60)
                    ok += 1
                    break
                except grpc.RpcError as error:
                    if error.code() is not grpc.StatusCode.UNAVAILABLE:
                        raise
                    refused += 1
                    time.sleep(0.05)
    else:
        import requests

        session = requests.Session()
        for payload in payloads:
            while time.time() < deadline:
                answer = session.post(f"http://{endpoint}/v1/traces", data=payload, timeout=60,
                                      headers={"Content-Type": "application/x-protobuf"})
                if answer.status_code == 200:
                    ok += 1
                    break
                if answer.status_code != 503:
                    raise RuntimeError(f"HTTP {answer.status_code}: {answer.text[:200]}")
                refused += 1
                time.sleep(0.05)
    results.put({"sender": sender, "ok": ok, "refused": refused, "started": started, "ended": time.time()})


def _rss_peak_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return float("nan")


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds the process has used (to report cost per span independently of load)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _start_collector(workdir: Path, store: str, *extra: str) -> tuple[subprocess.Popen, dict]:
    ready = workdir / "ready.json"
    ready.unlink(missing_ok=True)
    proc = subprocess.Popen([sys.executable, "-m", "pinnprov", "collector", "--grpc-endpoint", "127.0.0.1:0",
                             "--http-endpoint", "127.0.0.1:0", "--store", store,
                             "--spool-dir", str(workdir / f"spool-{time.monotonic_ns()}"),
                             "--ready-file", str(ready), "--log-interval-s", "0", *extra],
                            stdout=open(workdir / "collector.log", "a"), stderr=subprocess.STDOUT)  # noqa: SIM115
    deadline = time.time() + 60
    while not ready.exists():
        if proc.poll() is not None or time.time() > deadline:
            raise SystemExit(f"collector did not start: {(workdir / 'collector.log').read_text()[-2000:]}")
        time.sleep(0.05)
    return proc, json.loads(ready.read_text())


def _count(db: Path) -> int:
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
        try:
            return conn.execute("SELECT COUNT(*) FROM epoch_metric").fetchone()[0]
        finally:
            conn.close()
    except sqlite3.OperationalError:
        return 0


def _store_count(store: str, db: Path | None) -> int:
    if db is not None:
        return _count(db)
    from pinnprov.store.access import open_store

    with open_store(store) as opened:
        return int(opened.execute("SELECT COUNT(*) FROM epoch_metric").rows[0][0])


def _senders(endpoints: dict, senders: int, count: int, seconds: float, first: int = 0,
             protocols: tuple[str, ...] = ("grpc", "http")) -> list[dict]:
    """Sender i uses protocols[i % len(protocols)]: alternating gRPC and HTTP by default."""
    results: multiprocessing.Queue = multiprocessing.Queue()
    deadline = time.time() + seconds
    chosen = [protocols[i % len(protocols)] for i in range(senders)]
    jobs = [(first + i, chosen[i], endpoints[chosen[i]], count, deadline, results) for i in range(senders)]
    processes = [multiprocessing.Process(target=_send, args=(job,)) for job in jobs]
    for process in processes:
        process.start()
    collected = [results.get(timeout=seconds + 120) for _ in processes]
    for process in processes:
        process.join()
    return collected


def bench_ingest(workdir: Path, store: str, sink: str, senders: int, count: int,
                 protocols: tuple[str, ...] = ("grpc", "http"), server_pid: int | None = None) -> dict:
    db = Path(store.removeprefix("sqlite:///")) if store.startswith("sqlite:") else None
    if db is None:  # MonetDB: create the schema before the clock starts, as a deployed store has it
        from pinnprov.store.access import open_store

        open_store(store, read_only=False).close()
    baseline = _store_count(store, db) if db is None or db.exists() else 0  # a MonetDB may hold earlier rows
    proc, endpoints = _start_collector(workdir, store)
    server_cpu = _cpu_s(server_pid) if server_pid else 0.0
    try:
        results = _senders(endpoints, senders, count, seconds=600, protocols=protocols)
        accepted = sum(r["ok"] for r in results) * SPANS_PER_REQUEST
        deadline = time.time() + 600
        while _store_count(store, db) - baseline < accepted and time.time() < deadline:
            time.sleep(0.05)
        ended = time.time()
        started = min(r["started"] for r in results)
        acked = max(r["ended"] for r in results)
        stored = _store_count(store, db) - baseline
        cpu = _cpu_s(proc.pid)
        server = {"mserver5_cpu_us_per_span": round((_cpu_s(server_pid) - server_cpu) / max(stored, 1) * 1e6, 1)
                  } if server_pid else {}
        return {"bench": "ingest", "sink": sink, "spans_per_s": round(stored / (ended - started)),
                "collector_cpu_us_per_span": round(cpu / max(stored, 1) * 1e6, 1), **server,
                "acked_spans_per_s": round(accepted / (acked - started)), "spans": stored, "senders": senders,
                "protocols": ",".join(protocols), "spans_per_request": SPANS_PER_REQUEST,
                "rss_mb": _rss_peak_mb(proc.pid),
                "seconds": round(ended - started, 2), "load_avg_1m": os.getloadavg()[0]}
    finally:
        proc.terminate()
        proc.wait(60)


def bench_overload(workdir: Path, senders: int, count: int) -> dict:
    db = workdir / "overload.db"
    proc, endpoints = _start_collector(workdir, f"sqlite:///{db}", "--max-spool-bytes", str(16 << 20))
    blocker = sqlite3.connect(db, isolation_level=None, timeout=60)
    blocker.execute("BEGIN EXCLUSIVE")  # the store stops taking writes: the only way out is refusing
    try:
        results = _senders(endpoints, senders, count * 2, seconds=8, first=100)  # more than the spool holds
        rss = _rss_peak_mb(proc.pid)
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    import requests

    pending = requests.get(f"http://{endpoints['http']}/metrics-json", timeout=30).json()["spool"]
    proc.terminate()
    proc.wait(60)
    return {"bench": "ingest_overload", "sink": "sqlite(locked)", "senders": senders,
            "accepted_requests": sum(r["ok"] for r in results),
            "refused_unavailable": sum(r["refused"] for r in results),
            "spool_max_bytes": 16 << 20, "spool_pending_bytes": pending["pending_bytes"], "rss_mb": rss}


def _poll(db: Path, conn: sqlite3.Connection | None, seen: dict[int, float]) -> sqlite3.Connection | None:
    if conn is None:
        if not db.exists():
            return None
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        numbers = conn.execute("SELECT epoch FROM epoch_metric").fetchall()
    except sqlite3.OperationalError:  # schema not created yet
        return conn
    now = time.time()
    for (number,) in numbers:
        seen.setdefault(number, now)
    return conn


class _MonetdbPoller:
    """`_poll` for a MonetDB store: one connection, each read in a transaction of its own (sees new commits)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.store: object | None = None

    def __call__(self, seen: dict[int, float]) -> None:
        from pinnprov.store.access import open_store

        try:
            if self.store is None:
                self.store = open_store(self.url)
            numbers = self.store.execute('SELECT "epoch" FROM epoch_metric').rows  # type: ignore[attr-defined]
        except ValueError:  # schema not created yet
            return
        now = time.time()
        for (number,) in numbers:
            seen.setdefault(number, now)


def _poll_any(monetdb: _MonetdbPoller | None, db: Path, conn: sqlite3.Connection | None,
              seen: dict[int, float]) -> sqlite3.Connection | None:
    if monetdb is None:
        return _poll(db, conn, seen)
    monetdb(seen)
    return None


def bench_latency(workdir: Path, epochs: int = 200, rate: float = 20.0, monetdb_url: str | None = None) -> dict:
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import set_span_in_context
    from prov_builders import RunIdGenerator, epoch_attributes

    from pinnprov.capture.provider import batch_processor
    from pinnprov.core import vocabulary as v

    db = workdir / "latency.db"
    proc, endpoints = _start_collector(workdir, monetdb_url or f"sqlite:///{db}")
    monetdb = _MonetdbPoller(monetdb_url) if monetdb_url else None
    run_id = "c" * 32
    provider = TracerProvider(id_generator=RunIdGenerator(run_id))
    provider.add_span_processor(batch_processor(OTLPSpanExporter(endpoint=f"http://{endpoints['grpc']}",
                                                                 insecure=True)))
    tracer = provider.get_tracer(v.INSTRUMENTATION_SCOPE)
    root = tracer.start_span(v.RUN_SPAN)
    context = set_span_in_context(root)
    ended: dict[int, float] = {}
    seen: dict[int, float] = {}
    conn: sqlite3.Connection | None = None
    for epoch in range(epochs):
        span = tracer.start_span(v.EPOCH_SPAN, context=context, attributes=epoch_attributes(
            epoch, loss=1.0, bc=1.0, residual=1.0, data=1.0, lr=1e-3))
        span.end()
        ended[epoch] = time.time()
        next_epoch = time.time() + 1.0 / rate
        while time.time() < next_epoch:  # poll the store between epochs, as a user's query would
            conn = _poll_any(monetdb, db, conn, seen)
            time.sleep(0.005)
    deadline = time.time() + 30
    while len(seen) < epochs and time.time() < deadline:
        conn = _poll_any(monetdb, db, conn, seen)
        time.sleep(0.005)
    provider.shutdown()
    proc.terminate()
    proc.wait(60)
    latencies = sorted((seen[e] - ended[e]) * 1000 for e in seen)
    return {"bench": "ingest_latency", "sink": "monetdb" if monetdb else "sqlite", "epochs": len(latencies),
            "rate_per_s": rate,
            "bsp_schedule_delay_ms": 200, "median_ms": round(statistics.median(latencies), 1),
            "p99_ms": round(latencies[int(0.99 * (len(latencies) - 1))], 1), "max_ms": round(latencies[-1], 1),
            "load_avg_1m": os.getloadavg()[0]}


def _median_us_per_span(run: object, spans: int, repeats: int) -> float:
    """Median thread-CPU time of `run()` over `repeats` calls, in microseconds per span."""
    times = []
    for _ in range(repeats):
        started = time.thread_time()
        run()  # type: ignore[operator]
        times.append((time.thread_time() - started) / spans * 1e6)
    return round(statistics.median(times), 2)


def bench_micro(workdir: Path, repeats: int = 15) -> dict:
    import dataclasses

    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    from pinnprov.collector.translate import translate_traces
    from pinnprov.store.sqlite_sink import connect_writer
    from pinnprov.store.sqlite_writes import write_records

    payload = _requests(7, 1)[0]
    decode = _median_us_per_span(lambda: ExportTraceServiceRequest.FromString(payload), SPANS_PER_REQUEST, repeats)
    fresh = iter([ExportTraceServiceRequest.FromString(payload) for _ in range(2 * repeats)])  # decoded untimed
    translate = _median_us_per_span(lambda: translate_traces(next(fresh)), SPANS_PER_REQUEST, repeats)
    general = _median_us_per_span(lambda: translate_traces(next(fresh), fast=False), SPANS_PER_REQUEST, repeats)
    records = translate_traces(ExportTraceServiceRequest.FromString(payload)).records
    assert len(records) == SPANS_PER_REQUEST
    batches = iter([[dataclasses.replace(r, run_id=f"{n:032x}") for r in records] for n in range(1, repeats + 1)])
    conn = connect_writer(workdir / "micro.db", busy_timeout_s=30)
    walls: list[float] = []

    def write() -> None:
        started = time.perf_counter()
        conn.execute("BEGIN IMMEDIATE")
        write_records(conn, next(batches))
        conn.execute("COMMIT")
        walls.append((time.perf_counter() - started) / SPANS_PER_REQUEST * 1e6)

    try:
        sqlite = _median_us_per_span(write, SPANS_PER_REQUEST, repeats)
    finally:
        conn.close()
    return {"bench": "ingest_micro", "translate_us_per_span": translate, "sqlite_us_per_span": sqlite,
            "decode_us_per_span": decode, "translate_general_us_per_span": general,
            "sqlite_wall_us_per_span": round(statistics.median(walls), 2), "spans_per_request": SPANS_PER_REQUEST,
            "repeats": repeats, "clock": "thread_cpu", "load_avg_1m": os.getloadavg()[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--senders", type=int, default=4)
    parser.add_argument("--requests", type=int, default=40, help="requests of 512 spans per sender")
    parser.add_argument("--protocols", default="grpc,http",
                        help="comma-separated; senders alternate between them (http alone measures the HTTP receiver)")
    parser.add_argument("--skip-overload", action="store_true")
    parser.add_argument("--skip-latency", action="store_true")
    parser.add_argument("--micro-only", action="store_true", help="only the in-process translate/SQLite line")
    parser.add_argument("--monetdb", action="store_true", help="also measure ingest and latency into MonetDB")
    args = parser.parse_args()
    protocols = tuple(p.strip() for p in args.protocols.split(",") if p.strip())
    if not protocols or set(protocols) - {"grpc", "http"}:
        parser.error(f"--protocols: choose from grpc, http (got {args.protocols!r})")
    with tempfile.TemporaryDirectory(prefix="pinnprov-ingest-") as tmp:
        workdir = Path(tmp)
        if args.micro_only:
            print(json.dumps(bench_micro(workdir)), flush=True)
            return
        print(json.dumps(bench_ingest(workdir, f"sqlite:///{workdir / 'ingest.db'}", "sqlite", args.senders,
                                      args.requests, protocols)), flush=True)
        with contextlib.ExitStack() as stack:
            admin = None
            if args.monetdb or os.environ.get("PINNPROV_TEST_MONETDB_URL"):
                from monetdb_target import admin_url, fresh_schema, server_pid

                admin = stack.enter_context(admin_url())
                with fresh_schema(admin, f"bench_ingest_{os.getpid()}") as url:
                    print(json.dumps(bench_ingest(workdir, url, "monetdb", args.senders, args.requests, protocols,
                                                  server_pid())), flush=True)
            if not args.skip_overload:
                print(json.dumps(bench_overload(workdir, args.senders, args.requests)), flush=True)
            if not args.skip_latency:
                print(json.dumps(bench_latency(workdir)), flush=True)
                if admin is not None:
                    with fresh_schema(admin, f"bench_latency_{os.getpid()}") as url:
                        print(json.dumps(bench_latency(workdir, monetdb_url=url)), flush=True)
        print(json.dumps(bench_micro(workdir)), flush=True)


if __name__ == "__main__":
    main()
