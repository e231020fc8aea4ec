"""Latency of the named queries on a big store: 1,000 runs x 10,000 epochs (10M epoch rows) by default.

The store is generated once through the real sink (bulk batches of PROV records, one transaction per run)
and cached under /tmp, keyed by its size; a half-built store is never reused. Each query is then timed on a
read-only connection, and one JSON line per query is printed:

  {"bench": "query", "store": "sqlite", "query": "epochs", "ms_median": ..., "ms_p99": ..., "runs": 1000, ...}

--store monetdb: the same store in MonetDB, written through the MonetDB sink (COPY ON CLIENT) into schema
bench_query of a server whose data lives in /tmp/pinnprov-bench-query-monetdb-RUNSxEPOCHS (started from
PINNPROV_TEST_MONETDB_LAUNCHER or mserver5, see bench/monetdb_target.py), or of PINNPROV_TEST_MONETDB_URL.

Usage: python bench/query.py [--runs 1000] [--epochs 10000] [--repeat 50] [--path FILE] [--store sqlite|monetdb]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from pinnprov.store.access import open_store  # noqa: E402
from pinnprov.store.queries import QueryOptions, run_query  # noqa: E402
from pinnprov.store.records import EpochRecord, RunEndRecord, RunStartRecord  # noqa: E402
from pinnprov.store.sqlite_sink import SqliteSink  # noqa: E402

T0 = 1_700_000_000.0


def _run_id(n: int) -> str:
    return f"{random.Random(n).getrandbits(128):032x}"


def generate(path: Path, runs: int, epochs: int) -> float:
    """Write the SQLite store through the sink; returns seconds taken."""
    partial = path.with_name(path.name + ".partial")
    for suffix in ("", "-wal", "-shm"):
        Path(str(partial) + suffix).unlink(missing_ok=True)
    seconds = write_runs(SqliteSink(partial, synchronous="OFF", export_timeout_s=600), runs, epochs)
    partial.replace(path)
    return seconds


def write_runs(sink: Any, runs: int, epochs: int, first: int = 0) -> float:
    """Runs first..runs-1 through `sink`, one batch (start, epochs, end) each; shuts the sink down."""
    started = time.perf_counter()
    optimizers = ("adam", "rmsprop")
    for n in range(first, runs):
        run_id, start = _run_id(n), T0 + n * 3600.0
        hyper = {
            "optimizer": optimizers[n % 2],
            "activation": "sigmoid",
            "lr.schedule": "exponential_decay",
            "lr.initial": 1e-3,
            "lr.decay_rate": 0.99,
            "lr.decay_steps": 1000,
            "seed": n,
        }
        batch: list = [
            RunStartRecord(
                run_id,
                f"{n:016x}",
                f"run-{n:05d}",
                f"exp-{n % 10}",
                start,
                hyper,
                "crosshole",
                "ab" * 32,
                100,
                "benchmark",
                "node-1",
                "bench",
            )
        ]
        clock = start
        for epoch in range(epochs):
            elapsed = 2.0 + (epoch % 7) * 0.1
            lr = 1e-3 * 0.99 ** (epoch / 1000)
            loss = 1000.0 / (epoch + 1)
            batch.append(
                EpochRecord(
                    run_id,
                    f"{epoch + 1:016x}",
                    epoch,
                    clock,
                    clock + elapsed,
                    elapsed,
                    loss,
                    loss * 1e-5,
                    loss * 1e-3,
                    loss * 0.5,
                    lr,
                )
            )
            clock += elapsed
        batch.append(RunEndRecord(run_id, f"{n + 1:08x}" + "f" * 8, clock, "completed", epochs))
        result = sink.export(batch)
        if not result.ok:
            raise SystemExit(f"generation failed: {result}")
        if n % 100 == 99:
            print(f"# generated {n + 1}/{runs} runs in {time.perf_counter() - started:.0f}s", file=sys.stderr)
    sink.shutdown()
    return time.perf_counter() - started


def is_complete(url: str, runs: int, epochs: int) -> bool:
    return _complete_runs(url, epochs) == runs


def _complete_runs(url: str, epochs: int) -> int:
    """Runs with every epoch (a run's batch is one transaction, so a run is all there or absent)."""
    try:
        with open_store(url) as store:
            rows = store.execute("SELECT COUNT(*) FROM run WHERE last_epoch = :e", {"e": epochs - 1}).rows
    except (ValueError, OSError):
        return 0
    return int(rows[0][0])


def timed(store: object, name: str, options: QueryOptions, repeat: int) -> tuple[list[float], int]:
    samples, count = [], 0
    run_query(store, name, options)  # warm the page cache once
    for _ in range(repeat):
        begin = time.perf_counter()
        count = len(run_query(store, name, options).rows)
        samples.append((time.perf_counter() - begin) * 1000)
    return samples, count


def _generation_line(store: str, runs: int, epochs: int, seconds: float, written_runs: int) -> str:
    rows = written_runs * epochs
    return json.dumps({"bench": "query_store_generation", "store": store, "runs": runs, "epochs": epochs,
                       "rows": rows, "seconds": round(seconds, 1), "rows_per_s": round(rows / seconds),
                       "load_avg_1m": os.getloadavg()[0]})


def _sqlite_store(args: argparse.Namespace) -> tuple[str, int]:
    path = args.path or Path(f"/tmp/pinnprov-bench-query-{args.runs}x{args.epochs}.db")
    if not is_complete(str(path), args.runs, args.epochs):
        seconds = generate(path, args.runs, args.epochs)
        print(_generation_line("sqlite", args.runs, args.epochs, seconds, args.runs), flush=True)
    return str(path), round(os.path.getsize(path) / 1e6)


def _monetdb_store(args: argparse.Namespace, stack: contextlib.ExitStack) -> tuple[str, int]:
    from monetdb_target import admin_url, persistent_schema_url

    from pinnprov.store.monetdb_sink import MonetdbSink

    directory = args.path or Path(f"/tmp/pinnprov-bench-query-monetdb-{args.runs}x{args.epochs}")
    url = persistent_schema_url(stack.enter_context(admin_url(directory)), "bench_query")
    done = _complete_runs(url, args.epochs)  # runs are written in order, each in one transaction: resume there
    if done < args.runs:
        seconds = write_runs(MonetdbSink(url), args.runs, args.epochs, first=done)
        print(_generation_line("monetdb", args.runs, args.epochs, seconds, args.runs - done), flush=True)
    size = sum(f.stat().st_size for f in directory.rglob("*") if f.is_file()) if directory.exists() else 0
    return url, round(size / 1e6)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=10000)
    parser.add_argument("--repeat", type=int, default=50)
    parser.add_argument("--path", type=Path, help="SQLite file, or the MonetDB server's directory")
    parser.add_argument("--store", choices=("sqlite", "monetdb"), default="sqlite")
    args = parser.parse_args()
    with contextlib.ExitStack() as stack:
        url, size_mb = _sqlite_store(args) if args.store == "sqlite" else _monetdb_store(args, stack)
        _time_queries(args, url, size_mb)
    return 0


def _time_queries(args: argparse.Namespace, url: str, size_mb: int) -> None:
    middle = _run_id(args.runs // 2)
    cases = [
        ("epochs", QueryOptions(run_id=middle)),
        ("epochs_every_1000", QueryOptions(run_id=middle, every=1000)),
        ("epochs_last_100", QueryOptions(run_id=middle, last=100)),
        ("latest", QueryOptions()),
        ("latest_experiment", QueryOptions(experiment="exp-3")),
        ("lr", QueryOptions()),
    ]
    with open_store(url) as store:
        for label, options in cases:
            name = label.split("_")[0]
            samples, rows = timed(store, name, options, args.repeat)
            samples.sort()
            p99 = samples[min(len(samples) - 1, round(0.99 * (len(samples) - 1)))]
            print(
                json.dumps(
                    {
                        "bench": "query",
                        "store": args.store,
                        "query": label,
                        "ms_median": round(statistics.median(samples), 2),
                        "ms_p99": round(p99, 2),
                        "rows_returned": rows,
                        "runs": args.runs,
                        "epochs": args.epochs,
                        "store_mb": size_mb,
                        "repeat": args.repeat,
                        "load_avg_1m": os.getloadavg()[0],
                    }
                ),
                flush=True,
            )


if __name__ == "__main__":
    sys.exit(main())
