"""Freshness of the embedded store: seconds from an epoch's end to its row being readable by another process.

A `pinnprov train` subprocess (benchmark configuration, one TensorFlow thread, stopping rule off) writes the
embedded SQLite store; this process polls it read-only, as `pinnprov query` would, and for every new row
records `now - ended_at` (same machine, same clock). Two views:

- from_epoch_end: the brief's definition. It includes the trainer's own batching: the compiled loop runs
  `steps_per_call` epochs at once and reports them after the call, so early epochs of a chunk wait for it;
- from_epoch_end_after_first_chunk: the same without the first chunk, whose epoch times are interpolated
  across TensorFlow's one-off graph tracing (seconds) and so look older than they are;
- from_report: only the last epoch of each chunk, whose end is when the trainer hands the chunk to the
  observers, so this is the capture pipeline alone (span, batch processor, OTLP encoding, translation,
  SQLite commit, WAL visibility).

--collector: the trainer sends OTLP (`--otlp-endpoint`) to a real `pinnprov collector`, which writes the store;
--store monetdb (implies --collector): that store is MonetDB (PINNPROV_TEST_MONETDB_URL, else a server started
from PINNPROV_TEST_MONETDB_LAUNCHER or mserver5, bench/monetdb_target.py), polled through pinnprov's own store
reader (each poll its own transaction, so it sees every commit).

    .venv/bin/python bench/freshness.py                    # 60 s of training
    .venv/bin/python bench/freshness.py --seconds 15 --tiny   # smoke run, small fast network
    .venv/bin/python bench/freshness.py --store monetdb --tiny
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TINY = {"tau_layers": 2, "tau_units": 8, "velocity_layers": 2, "velocity_units": 8, "collocation_count": 200,
        "boundary_points": 20}


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _summary(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    return {"median_s": round(statistics.median(values), 4), "p99_s": round(_quantile(values, 0.99), 4),
            "max_s": round(max(values), 4), "rows": len(values)}


class _Reader:
    """The three reads the measurement needs, from SQLite (sqlite3, read-only) or MonetDB (pinnprov's store)."""

    def __init__(self, url: str, deadline: float) -> None:
        self.sqlite = url.startswith("sqlite:")
        while True:
            try:
                if self.sqlite:
                    path = url.removeprefix("sqlite:///")
                    self.conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None, timeout=5)
                    self.conn.execute("SELECT 1 FROM epoch_metric LIMIT 1")
                else:
                    from pinnprov.store.access import open_store

                    self.store = open_store(url)
                    self.store.execute("SELECT 1 FROM epoch_metric LIMIT 1")
                return
            except (sqlite3.Error, ValueError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def rows(self, sql: str, params: dict) -> list:
        if self.sqlite:
            return self.conn.execute(sql, params).fetchall()
        return self.store.execute(sql, params).rows


def _collector(workdir: Path, store: str) -> tuple[subprocess.Popen, str]:
    ready = workdir / "ready.json"
    proc = subprocess.Popen([sys.executable, "-m", "pinnprov", "collector", "--grpc-endpoint", "127.0.0.1:0",
                             "--http-endpoint", "127.0.0.1:0", "--store", store, "--spool-dir", str(workdir / "spool"),
                             "--ready-file", str(ready), "--log-interval-s", "0"],
                            stdout=open(workdir / "collector.log", "a"), stderr=subprocess.STDOUT,  # noqa: SIM115
                            env={**os.environ, "PYTHONPATH": str(REPO / "src")})
    deadline = time.monotonic() + 60
    while not ready.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"collector did not start: {(workdir / 'collector.log').read_text()[-2000:]}")
        time.sleep(0.05)
    return proc, "http://" + json.loads(ready.read_text())["grpc"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60.0, help="seconds of measurement after the first row")
    parser.add_argument("--poll-ms", type=float, default=10.0, help="reader poll interval (default 10 ms)")
    parser.add_argument("--tiny", action="store_true", help="small network: hundreds of epochs per second")
    parser.add_argument("--capture-every", type=int, default=1)
    parser.add_argument("--store", choices=("sqlite", "monetdb"), default="sqlite")
    parser.add_argument("--collector", action="store_true", help="through a collector (always for monetdb)")
    args = parser.parse_args()
    with contextlib.ExitStack() as stack:
        url = None
        if args.store == "monetdb":
            sys.path.insert(0, str(REPO / "bench"))
            from monetdb_target import admin_url, fresh_schema

            url = stack.enter_context(fresh_schema(stack.enter_context(admin_url()), f"bench_fresh_{os.getpid()}"))
        _measure(args, url)


def _measure(args: argparse.Namespace, monetdb_url: str | None) -> None:
    via_collector = args.collector or monetdb_url is not None

    load_before = [round(x, 2) for x in os.getloadavg()]
    config = {"epochs": 10_000_000, "threads": 1, "stopping": "none"} | (TINY if args.tiny else {})
    with tempfile.TemporaryDirectory() as tmp:
        store_url = monetdb_url or f"sqlite:///{Path(tmp) / 'fresh.sqlite'}"
        collector, endpoint = _collector(Path(tmp), store_url) if via_collector else (None, "")
        config_file = Path(tmp) / "config.json"
        config_file.write_text(json.dumps(config))
        run_name = f"freshness-{uuid.uuid4().hex[:8]}"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "PINNPROV_"))}
        env.update(TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=str(REPO / "src"))
        trainer = subprocess.Popen(
            [sys.executable, "-m", "pinnprov", "train", "--config", str(config_file), "--run-name", run_name,
             "--no-progress", *(["--otlp-endpoint", endpoint] if via_collector else ["--store", store_url]),
             "--out", str(Path(tmp) / "out"),
             "--capture-every", str(args.capture_every)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env,
        )
        from_end: list[float] = []
        from_end_warm: list[float] = []  # without the first chunk, whose interpolated times include tracing
        from_report: list[float] = []
        elapsed: list[float] = []
        try:
            reader = _Reader(store_url, time.monotonic() + 300)
            run_id, steps_per_call = None, 0
            last_epoch, stop_at = -1, None
            while trainer.poll() is None and (stop_at is None or time.monotonic() < stop_at):
                if run_id is None:
                    found = reader.rows("SELECT run_id FROM run WHERE run_name = :name", {"name": run_name})
                    if found:
                        run_id = found[0][0]
                        steps = reader.rows('SELECT "value" FROM run_hyperparameter WHERE run_id = :r AND '
                                            "\"name\" = 'steps_per_call'", {"r": run_id})
                        steps_per_call = int(steps[0][0]) if steps else 0
                else:
                    rows = reader.rows('SELECT "epoch", ended_at, elapsed_s FROM epoch_metric WHERE run_id = :r '
                                       'AND "epoch" > :e ORDER BY "epoch"', {"r": run_id, "e": last_epoch})
                    now = time.time()
                    for epoch, ended_at, epoch_s in rows:
                        from_end.append(now - ended_at)
                        if epoch >= steps_per_call:
                            from_end_warm.append(now - ended_at)
                        elapsed.append(epoch_s)
                        if steps_per_call and epoch % steps_per_call == steps_per_call - 1:
                            from_report.append(now - ended_at)
                    if rows:
                        last_epoch = rows[-1][0]
                        if stop_at is None:
                            stop_at = time.monotonic() + args.seconds
                time.sleep(args.poll_ms / 1000)
        finally:
            if trainer.poll() is None:
                trainer.send_signal(signal.SIGINT)
            _, stderr = trainer.communicate(timeout=120)
            if collector is not None:
                collector.terminate()
                collector.wait(60)
        if not from_end:
            raise SystemExit(f"no epochs seen; trainer said:\n{stderr[-3000:]}")
    print(json.dumps({
        "bench": "freshness", "store": args.store, "via": "collector" if via_collector else "embedded",
        "config": "tiny" if args.tiny else "benchmark", "capture_every": args.capture_every,
        "from_epoch_end": _summary(from_end), "from_epoch_end_after_first_chunk": _summary(from_end_warm),
        "from_report": _summary(from_report),
        "steps_per_call": steps_per_call, "epoch_s_mean": round(statistics.fmean(elapsed), 5),
        "poll_ms": args.poll_ms, "cpus": os.cpu_count(), "load_before": load_before,
        "load_after": [round(x, 2) for x in os.getloadavg()],
    }), flush=True)


if __name__ == "__main__":
    main()
