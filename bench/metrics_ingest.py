"""Metrics ingest: OTLP metric data points/s stored through a real collector into SQLite, and the epoch-span
ingest figure of bench/ingest.py in the same run (so the two can be compared on one machine state).

- metrics_ingest: N sender processes (half gRPC, half HTTP/protobuf) send pre-encoded OTLP metrics requests of
  1,000 data points each (250 gauge points `pinn.loss{pinn.loss.component}`, 250 cumulative sum points, 250
  explicit-bucket histogram points with 16 buckets, 250 exponential histogram points; a trainer resource with a
  run id), every request at a time of its own so every point is a new row. points_per_s counts points *stored*
  (rows of metric_point) from the first send to the last row; collector_cpu_us_per_point is the collector's CPU.
- metrics_micro: in this process, median thread-CPU microseconds per point of translation (decoded request ->
  records) and of one SQLite transaction writing them.
- ingest: bench/ingest.py's epoch-span figure (spans_per_s), same senders and requests.

`--kinds scalar` sends gauge and sum points only (half each), what trainers mostly send.

Usage: python bench/metrics_ingest.py [--senders 4] [--requests 40] [--kinds mixed|scalar] [--skip-spans]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "tests" / "support"))
sys.path.insert(0, str(ROOT / "bench"))

from ingest import _cpu_s, _rss_peak_mb, _start_collector, bench_ingest  # noqa: E402

POINTS_PER_REQUEST = 1000
T0 = time.time_ns()


KINDS = "mixed"
"""mixed: a quarter each of gauge, sum, histogram and exponential histogram points; scalar: half gauge, half sum
points (what trainers mostly send: the loss and learning-rate gauges, counters, the system metrics)."""


def build_request(sender: int, index: int) -> bytes:
    """One request of POINTS_PER_REQUEST points (KINDS), all at this request's own time."""
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
    from opentelemetry.proto.metrics.v1 import metrics_pb2

    from pinnprov.core import vocabulary as v

    quarter = POINTS_PER_REQUEST // 4
    scalar = KINDS == "scalar"
    now = T0 + (sender * 1_000_000 + index) * 1_000_000
    request = ExportMetricsServiceRequest()
    resource = request.resource_metrics.add()
    for key, value in (("service.name", "bench-trainer"), ("host.name", "node-1"),
                       (v.RUN_ID, f"{sender + 1:032x}")):
        attribute = resource.resource.attributes.add(key=key)
        attribute.value.string_value = value
    scope = resource.scope_metrics.add()
    scope.scope.name = v.INSTRUMENTATION_SCOPE
    cumulative = metrics_pb2.AggregationTemporality.AGGREGATION_TEMPORALITY_CUMULATIVE
    gauge = scope.metrics.add(name=v.METRIC_LOSS, unit="1")
    total = scope.metrics.add(name=v.METRIC_EPOCHS, unit="1")
    total.sum.aggregation_temporality, total.sum.is_monotonic = cumulative, True
    histogram = scope.metrics.add(name=v.METRIC_EPOCH_DURATION, unit="s")
    histogram.histogram.aggregation_temporality = cumulative
    exponential = scope.metrics.add(name="pinn.step.duration", unit="s")
    exponential.exponential_histogram.aggregation_temporality = cumulative
    for k in range(2 * quarter if scalar else quarter):
        point = gauge.gauge.data_points.add(time_unix_nano=now, as_double=1.0 / (k + 1))
        point.attributes.add(key=v.LOSS_COMPONENT).value.string_value = f"c{k}"
        point = total.sum.data_points.add(time_unix_nano=now, start_time_unix_nano=T0, as_int=index + k)
        point.attributes.add(key="worker").value.int_value = k
        if scalar:
            continue
        point = histogram.histogram.data_points.add(time_unix_nano=now, start_time_unix_nano=T0, count=15,
                                                     sum=3.75, min=0.1, max=0.5)
        point.explicit_bounds.extend([0.005 * 2**b for b in range(15)])
        point.bucket_counts.extend([1] * 15 + [0])
        point.attributes.add(key="worker").value.int_value = k
        point = exponential.exponential_histogram.data_points.add(time_unix_nano=now, start_time_unix_nano=T0,
                                                                 count=10, sum=1.5, scale=3, zero_count=0)
        point.positive.offset = -20
        point.positive.bucket_counts.extend([1, 2, 3, 4])
        point.attributes.add(key="worker").value.int_value = k
    if scalar:
        del scope.metrics[2:]
    return request.SerializeToString()


def _send(args: tuple[int, str, str, int, multiprocessing.Queue]) -> None:
    sender, protocol, endpoint, count, results = args
    payloads = [build_request(sender, index) for index in range(count)]
    started = time.time()
    if protocol == "grpc":
        import grpc
        from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2_grpc
        from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest

        stub = metrics_service_pb2_grpc.MetricsServiceStub(grpc.insecure_channel(endpoint))
        for payload in payloads:
            stub.Export(ExportMetricsServiceRequest.FromString(payload), timeout=120)
    else:
        import requests

        session = requests.Session()
        for payload in payloads:
            answer = session.post(f"http://{endpoint}/v1/metrics", data=payload, timeout=120,
                                  headers={"Content-Type": "application/x-protobuf"})
            answer.raise_for_status()
    results.put({"sender": sender, "started": started, "ended": time.time(), "ok": count})


def _points(db: Path) -> int:
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
        try:
            return int(conn.execute("SELECT COUNT(*) FROM metric_point").fetchone()[0])
        finally:
            conn.close()
    except sqlite3.OperationalError:
        return 0


def bench_metrics_ingest(workdir: Path, senders: int, count: int) -> dict:
    db = workdir / "metrics.db"
    proc, endpoints = _start_collector(workdir, f"sqlite:///{db}")
    try:
        results: multiprocessing.Queue = multiprocessing.Queue()
        protocols = [("grpc", "http")[i % 2] for i in range(senders)]
        processes = [multiprocessing.Process(target=_send, args=((i, protocols[i], endpoints[protocols[i]], count,
                                                                  results),)) for i in range(senders)]
        for process in processes:
            process.start()
        collected = [results.get(timeout=900) for _ in processes]
        for process in processes:
            process.join()
        expected = senders * count * POINTS_PER_REQUEST
        deadline = time.time() + 600
        while _points(db) < expected and time.time() < deadline:
            time.sleep(0.05)
        ended = time.time()
        started = min(r["started"] for r in collected)
        stored = _points(db)
        return {"bench": "metrics_ingest", "kinds": KINDS, "sink": "sqlite",
                "points_per_s": round(stored / (ended - started)),
                "collector_cpu_us_per_point": round(_cpu_s(proc.pid) / max(stored, 1) * 1e6, 1),
                "acked_points_per_s": round(expected / (max(r["ended"] for r in collected) - started)),
                "points": stored, "expected": expected, "senders": senders, "points_per_request": POINTS_PER_REQUEST,
                "rss_mb": _rss_peak_mb(proc.pid), "seconds": round(ended - started, 2),
                "load_avg_1m": os.getloadavg()[0]}
    finally:
        proc.terminate()
        proc.wait(60)


def bench_micro(workdir: Path, repeats: int = 9) -> dict:
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest

    from pinnprov.collector.translate_metrics import translate_metrics
    from pinnprov.store import sqlite_writes
    from pinnprov.store.migrations import upgrade_sqlite
    from pinnprov.store.sqlite_sink import connect_writer

    translate, write = [], []
    conn = connect_writer(workdir / "micro.db", busy_timeout_s=30)
    upgrade_sqlite(conn)
    for index in range(repeats):
        request = ExportMetricsServiceRequest.FromString(build_request(99, index))
        begin = time.thread_time()
        records = translate_metrics(request).records
        translate.append((time.thread_time() - begin) / POINTS_PER_REQUEST * 1e6)
        begin = time.thread_time()
        conn.execute("BEGIN")
        sqlite_writes.write_records(conn, records)
        conn.execute("COMMIT")
        write.append((time.thread_time() - begin) / POINTS_PER_REQUEST * 1e6)
    conn.close()
    return {"bench": "metrics_micro", "kinds": KINDS, "translate_us_per_point": round(statistics.median(translate), 2),
            "sqlite_us_per_point": round(statistics.median(write), 2), "points_per_request": POINTS_PER_REQUEST}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--senders", type=int, default=4)
    parser.add_argument("--requests", type=int, default=40, help="requests per sender (1,000 points; 512 spans)")
    parser.add_argument("--skip-spans", action="store_true", help="no epoch-span ingest figure")
    parser.add_argument("--kinds", choices=("mixed", "scalar"), default="mixed",
                        help="mixed: all four kinds (default); scalar: gauges and sums only")
    args = parser.parse_args()
    global KINDS
    KINDS = args.kinds
    with tempfile.TemporaryDirectory(prefix="pinnprov-metrics-ingest-") as tmp:
        workdir = Path(tmp)
        print(json.dumps(bench_metrics_ingest(workdir, args.senders, args.requests)), flush=True)
        if not args.skip_spans:
            print(json.dumps(bench_ingest(workdir, f"sqlite:///{workdir / 'spans.db'}", "sqlite", args.senders,
                                          args.requests)), flush=True)
        print(json.dumps(bench_micro(workdir)), flush=True)


if __name__ == "__main__":
    main()
